import request from "supertest";
import type { Model } from "../../../service/src/model/model";
import { IRIS_ROWS, appFor, argmax, identityModel, irisModel } from "./support";

const FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"];

describe("Seldon v1 predictions", () => {
  let iris: Model;
  beforeAll(async () => {
    iris = await irisModel();
  });
  afterAll(() => iris.close());

  it.each(["/api/v1.0/predictions", "/predict"])(
    "POST %s with data.ndarray answers ndarray probabilities named by class",
    async (path) => {
      const res = await request(appFor(iris))
        .post(path)
        .send({ data: { names: FEATURES, ndarray: IRIS_ROWS } });
      expect(res.status).toBe(200);
      expect(res.body.data.names).toEqual(["setosa", "versicolor", "virginica"]);
      expect((res.body.data.ndarray as number[][]).map(argmax)).toEqual([0, 1, 2]);
      expect(res.body.data.tensor).toBeUndefined();
      expect(res.body.meta).toEqual({ requestPath: { iris: "1" } });
    },
  );

  it("answers data.tensor with a tensor of the output's shape and row-major values", async () => {
    const res = await request(appFor(iris))
      .post("/api/v1.0/predictions")
      .send({ data: { tensor: { shape: [3, 4], values: IRIS_ROWS.flat() } } });
    expect(res.status).toBe(200);
    expect(res.body.data.tensor.shape).toEqual([3, 3]);
    const values = res.body.data.tensor.values as number[];
    expect(values).toHaveLength(9);
    expect([0, 1, 2].map((r) => argmax(values.slice(r * 3, r * 3 + 3)))).toEqual([0, 1, 2]);
    expect(res.body.data.ndarray).toBeUndefined();
  });

  it("echoes the request's puid and tags in meta", async () => {
    const res = await request(appFor(identityModel()))
      .post("/predict")
      .send({ meta: { puid: "abc", tags: { team: "ml" } }, data: { ndarray: [[1, 2]] } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      data: { names: ["t:0", "t:1"], ndarray: [[1, 2]] },
      meta: { puid: "abc", tags: { team: "ml" }, requestPath: { identity: "1" } },
    });
  });

  it("names a one-dimensional output after the output", async () => {
    const res = await request(appFor(identityModel()))
      .post("/predict")
      .send({ data: { tensor: { shape: [3], values: [1, 2, 3] } } });
    expect(res.body.data).toEqual({ names: ["output"], tensor: { shape: [3], values: [1, 2, 3] } });
  });

  it.each([
    [{ jsonData: { a: 1 } }, /jsonData is not supported.*ndarray or data.tensor/],
    [{ strData: "x" }, /strData is not supported/],
    [{ binData: "AAAA" }, /binData is not supported/],
    [{ data: { tftensor: {} } }, /tftensor is not supported/],
    [{}, /data is required/],
    [{ data: {} }, /exactly one of ndarray or tensor/],
    [{ data: { ndarray: [[1]], tensor: { shape: [1], values: [1] } } }, /exactly one of/],
    [{ data: { tensor: { shape: [2, 4], values: [1, 2, 3] } } }, /3 values.*\[2, 4\] needs 8/],
    [{ data: { tensor: { shape: [-1, 4], values: [] } } }, /non-negative integers/],
    [{ data: { names: ["a"], ndarray: [IRIS_ROWS[0]] } }, /data.names has 1 names.*4 values/],
    [{ data: { ndarray: [[1, 2, 3]] } }, /each row of data.ndarray has 3 values, expected 4/],
    [
      { data: { ndarray: [[1, 2, 3, "4"]] } },
      /data.ndarray\[0\]\[3\] is the string "4", expected a number/,
    ],
  ])("rejects %j with a Seldon FAILURE status", async (body, message) => {
    const res = await request(appFor(iris)).post("/api/v1.0/predictions").send(body);
    expect(res.status).toBe(400);
    expect(res.body.status).toEqual({
      code: 400,
      info: expect.stringMatching(message),
      reason: "MICROSERVICE_BAD_DATA",
      status: "FAILURE",
    });
  });
});
