import request from "supertest";
import type { Model } from "../../../service/src/model/model";
import { IRIS_ROWS, MAX_BATCH_SIZE, appFor, argmax, identityModel, irisModel } from "./support";

describe("KServe v1 (TensorFlow Serving REST)", () => {
  let iris: Model;
  beforeAll(async () => {
    iris = await irisModel();
  });
  afterAll(() => iris.close());

  it("GET /v1/models/{name} reports readiness, 503 while not ready", async () => {
    let ready = true;
    const app = appFor(iris, () => ready);
    const res = await request(app).get("/v1/models/iris");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ name: "iris", ready: true });
    ready = false;
    const draining = await request(app).get("/v1/models/iris");
    expect(draining.status).toBe(503);
    expect(draining.body).toEqual({ name: "iris", ready: false });
    expect((await request(app).get("/v1/models")).body).toEqual({ models: ["iris"] });
  });

  it.each([
    ["instances", { instances: IRIS_ROWS }],
    ["inputs", { inputs: IRIS_ROWS }],
    ["inputs by name", { inputs: { input: IRIS_ROWS } }],
    ["instances keyed by input", { instances: IRIS_ROWS.map((row) => ({ input: row })) }],
  ])("POST /v1/models/iris:predict with %s answers predictions", async (_format, body) => {
    const res = await request(appFor(iris)).post("/v1/models/iris:predict").send(body);
    expect(res.status).toBe(200);
    expect((res.body.predictions as number[][]).map(argmax)).toEqual([0, 1, 2]);
  });

  it("answers the identity model's instances unchanged", async () => {
    const res = await request(appFor(identityModel()))
      .post("/v1/models/identity:predict")
      .send({
        instances: [
          [1, 2],
          [3, 4],
        ],
      });
    expect(res.body).toEqual({
      predictions: [
        [1, 2],
        [3, 4],
      ],
    });
  });

  it.each([
    ["GET", "/v1/models/other"],
    ["POST", "/v1/models/other:predict"],
  ])("%s %s is 404 for an unknown model", async (method, path) => {
    const app = appFor(iris);
    const res =
      method === "GET"
        ? await request(app).get(path)
        : await request(app).post(path).send({ instances: IRIS_ROWS });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({
      error: expect.stringMatching(/model "other" is not served here.*"iris"/),
    });
  });

  it.each([
    [{}, 400, /exactly one of instances or inputs/],
    [{ instances: IRIS_ROWS, inputs: IRIS_ROWS }, 400, /exactly one of instances or inputs/],
    [{ instances: "rows" }, 400, /instances must be a list of rows/],
    [{ instances: [] }, 400, /empty batch/],
    [{ instances: [[1, 2, 3, 4, 5]] }, 400, /each row of instances has 5 values, expected 4/],
    [
      { instances: [{ x: [1, 2, 3, 4] }] },
      400,
      /instances\[0\] has the unknown key "x"; objects in instances are keyed by the model's inputs "input"/,
    ],
    [{ instances: [{}] }, 400, /instances\[0\] lacks the input "input"/],
    [
      { inputs: { x: IRIS_ROWS } },
      400,
      /inputs has the unknown key "x"; its keys must be the model's inputs "input"/,
    ],
    [{ inputs: {} }, 400, /inputs lacks the input "input"/],
    [{ instances: [[1, 2, 3, null]] }, 400, /instances\[0\]\[3\] is null, expected a number/],
    [
      { instances: Array.from({ length: MAX_BATCH_SIZE + 1 }, () => IRIS_ROWS[0]) },
      413,
      /over this server's limit/,
    ],
  ])("rejects %j with its status and an error", async (body, status, message) => {
    const res = await request(appFor(iris)).post("/v1/models/iris:predict").send(body);
    expect(res.status).toBe(status);
    expect(res.body).toEqual({ error: expect.stringMatching(message) });
  });
});
