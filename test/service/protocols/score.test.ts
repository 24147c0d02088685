import request from "supertest";
import type { Model } from "../../../service/src/model/model";
import { IRIS_ROWS, MAX_BATCH_SIZE, appFor, argmax, identityModel, irisModel } from "./support";

describe("POST /score", () => {
  describe("with the identity model", () => {
    const app = appFor(identityModel());

    it("answers the tutorial's request exactly", async () => {
      const res = await request(app)
        .post("/score")
        .send({ X: [1, 2] });
      expect(res.status).toBe(200);
      expect(res.text).toBe('{"score":[1,2]}');
    });

    it("returns nested rows, booleans and strings unchanged", async () => {
      for (const X of [
        [
          [1.5, -2],
          [3, 4e10],
        ],
        [[true, false]],
        [["a", "b"]],
        [
          [[1], [2]],
          [[3], [4]],
        ],
      ]) {
        const res = await request(app).post("/score").send({ X });
        expect(res.status).toBe(200);
        expect(res.body).toEqual({ score: X });
      }
    });
  });

  describe("with the iris classifier", () => {
    let model: Model;
    beforeAll(async () => {
      model = await irisModel();
    });
    afterAll(() => model.close());

    it("classifies typical flowers of each species as classes 0, 1 and 2", async () => {
      const res = await request(appFor(model)).post("/score").send({ X: IRIS_ROWS });
      expect(res.status).toBe(200);
      const score = res.body.score as number[][];
      expect(score).toHaveLength(3);
      expect(score.map(argmax)).toEqual([0, 1, 2]);
      for (const row of score) {
        expect(row).toHaveLength(3);
        expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      }
    });

    it("rejects a row of the wrong width, naming the row and the model's shape", async () => {
      const res = await request(appFor(model))
        .post("/score")
        .send({
          X: [
            [1, 2, 3, 4],
            [1, 2, 3],
          ],
        });
      expect(res.status).toBe(400);
      expect(res.body.error).toMatch(/row 1 has 3 values, expected 4/);
      expect(res.body.error).toMatch(/"input".*\[-1, 4\]/);
    });

    it("rejects a batch over the limit with 413", async () => {
      const X = Array.from({ length: MAX_BATCH_SIZE + 1 }, () => IRIS_ROWS[0]);
      const res = await request(appFor(model)).post("/score").send({ X });
      expect(res.status).toBe(413);
      expect(res.body.error).toMatch(
        new RegExp(`${MAX_BATCH_SIZE + 1} rows.*limit of ${MAX_BATCH_SIZE}`),
      );
    });
  });
});
