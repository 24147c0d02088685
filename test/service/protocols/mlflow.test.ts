import request from "supertest";
import type { Model } from "../../../service/src/model/model";
import servicePackage from "../../../service/package.json";
import { KERAS_DENSE, kerasDense } from "../../fixtures/onnx-models";
import { IRIS_ROWS, appFor, argmax, identityModel, irisModel, onnxModel } from "./support";

const FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"];
const records = IRIS_ROWS.map((row) =>
  Object.fromEntries(FEATURES.map((name, i) => [name, row[i]])),
);

describe("MLflow scoring server", () => {
  let iris: Model;
  beforeAll(async () => {
    iris = await irisModel();
  });
  afterAll(() => iris.close());

  const classes = (predictions: number[][]) => predictions.map(argmax);

  it.each([
    [
      "dataframe_split",
      { dataframe_split: { columns: FEATURES, index: [7, 8, 9], data: IRIS_ROWS } },
    ],
    [
      "dataframe_split with columns out of order",
      {
        dataframe_split: {
          columns: [...FEATURES].reverse(),
          data: IRIS_ROWS.map((row) => [...row].reverse()),
        },
      },
    ],
    ["dataframe_split without columns", { dataframe_split: { data: IRIS_ROWS } }],
    ["dataframe_records", { dataframe_records: records }],
    [
      "dataframe_records with keys in another order",
      { dataframe_records: records.map((r) => Object.fromEntries(Object.entries(r).reverse())) },
    ],
    ["instances as rows", { instances: IRIS_ROWS, params: { threshold: 0.5 } }],
    ["instances as records", { instances: records }],
    ["inputs as rows", { inputs: IRIS_ROWS }],
    ["inputs by input name", { inputs: { input: IRIS_ROWS } }],
    [
      "inputs by column",
      {
        inputs: Object.fromEntries(
          FEATURES.map((name, i) => [name, IRIS_ROWS.map((row) => row[i])]),
        ),
      },
    ],
    ["the older columns/data", { columns: FEATURES, data: IRIS_ROWS }],
  ])("scores %s", async (_format, body) => {
    const res = await request(appFor(iris)).post("/invocations").send(body);
    expect(res.status).toBe(200);
    expect(classes(res.body.predictions)).toEqual([0, 1, 2]);
  });

  it("scores MLflow 1.x's bare list of records", async () => {
    const res = await request(appFor(iris))
      .post("/invocations")
      .set("Content-Type", "application/json; format=pandas-records")
      .send(JSON.stringify(records));
    expect(res.status).toBe(200);
    expect(classes(res.body.predictions)).toEqual([0, 1, 2]);
  });

  it.each(["text/csv", "application/csv"])("scores a %s body with a header row", async (type) => {
    const csv = [FEATURES.join(","), ...IRIS_ROWS.map((row) => row.join(","))].join("\n") + "\n";
    const res = await request(appFor(iris))
      .post("/invocations")
      .set("Content-Type", type)
      .send(csv);
    expect(res.status).toBe(200);
    expect(classes(res.body.predictions)).toEqual([0, 1, 2]);
  });

  it("returns the Keras model's softmax for instances", async () => {
    const model = await onnxModel(kerasDense(), "keras");
    try {
      const row = [1, -2, 0.5, 3];
      const res = await request(appFor(model))
        .post("/invocations")
        .send({ instances: [row] });
      expect(res.status).toBe(200);
      const { kernel, bias, kernel1, bias1 } = KERAS_DENSE;
      const hidden = bias.map((b, j) =>
        Math.max(
          0,
          row.reduce((sum, x, i) => sum + x * kernel[i][j], b),
        ),
      );
      const logits = bias1.map((b, j) => hidden.reduce((sum, h, i) => sum + h * kernel1[i][j], b));
      const exps = logits.map(Math.exp);
      const expected = exps.map((e) => e / exps.reduce((a, b) => a + b, 0));
      expect(res.body.predictions).toHaveLength(1);
      (res.body.predictions[0] as number[]).forEach((value, j) =>
        expect(value).toBeCloseTo(expected[j], 5),
      );
    } finally {
      await model.close();
    }
  });

  it("keeps the identity model's values", async () => {
    const res = await request(appFor(identityModel()))
      .post("/invocations")
      .send({
        dataframe_split: {
          columns: ["a", "b"],
          data: [
            [1, 2],
            [3, 4],
          ],
        },
      });
    expect(res.body).toEqual({
      predictions: [
        [1, 2],
        [3, 4],
      ],
    });
  });

  it("answers /ping and /health 200 when ready and 503 when not, and /version", async () => {
    let ready = true;
    const app = appFor(iris, () => ready);
    expect((await request(app).get("/ping")).status).toBe(200);
    expect((await request(app).get("/health")).status).toBe(200);
    ready = false;
    const ping = await request(app).get("/ping");
    expect(ping.status).toBe(503);
    expect(ping.body.error_code).toBe("TEMPORARILY_UNAVAILABLE");
    const version = await request(app).get("/version");
    expect(version.status).toBe(200);
    expect(version.text).toBe(servicePackage.version);
  });

  it.each([
    [{}, /send exactly one of dataframe_split, dataframe_records, instances, inputs/],
    [{ instances: IRIS_ROWS, inputs: IRIS_ROWS }, /exactly one of.*not instances and inputs/],
    [{ dataframe_split: { columns: FEATURES } }, /dataframe_split.data must be a list of rows/],
    [
      { dataframe_split: { columns: ["a", "b", "c", "d"], data: IRIS_ROWS } },
      /dataframe_split.columns has the unknown columns "a", "b", "c", "d" and lacks "sepal_length", .*; model "iris" takes the columns "sepal_length", "sepal_width", "petal_length", "petal_width"$/,
    ],
    [
      { dataframe_split: { columns: FEATURES.slice(0, 3), data: IRIS_ROWS } },
      /dataframe_split.columns has 3 names, but each row of dataframe_split.data has 4 values/,
    ],
    [
      { dataframe_records: [records[0], { sepal_length: 1 }] },
      /dataframe_records\[1\] lacks the column "sepal_width"/,
    ],
    [{ dataframe_records: [] }, /empty batch/],
    [{ dataframe_records: [5] }, /dataframe_records must be a list of \{"column": value\} objects/],
    [
      {
        instances: [
          [1, 2, 3, 4],
          [1, 2],
        ],
      },
      /row 1 has 2 values, expected 4/,
    ],
    [
      { instances: [[1, 2, 3, "Infinity"]] },
      /instances\[0\]\[3\] is the string "Infinity".*no NaN or Infinity/,
    ],
    [{ params: "x", instances: IRIS_ROWS }, /params must be an object/],
  ])("rejects %j with 400 in MLflow's error format", async (body, message) => {
    const res = await request(appFor(iris)).post("/invocations").send(body);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error_code: "BAD_REQUEST",
      message: expect.stringMatching(message),
    });
  });

  it.each([
    ["a ragged CSV", "a,b\n1,2\n3\n", /malformed CSV/],
    [
      "a CSV without data rows",
      "sepal_length,sepal_width,petal_length,petal_width\n",
      /header row.*at least one data row/,
    ],
    [
      "a CSV with a word for a number",
      `${FEATURES.join(",")}\n1,2,x,4\n`,
      /CSV rows\[0\]\[2\] is the string "x", expected a number/,
    ],
  ])("rejects %s with 400", async (_what, csv, message) => {
    const res = await request(appFor(iris))
      .post("/invocations")
      .set("Content-Type", "text/csv")
      .send(csv);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error_code: "BAD_REQUEST",
      message: expect.stringMatching(message),
    });
  });

  it("rejects other content types with 415 naming JSON and CSV", async () => {
    const res = await request(appFor(iris))
      .post("/invocations")
      .set("Content-Type", "text/plain")
      .send("1,2,3,4");
    expect(res.status).toBe(415);
    expect(res.body).toEqual({
      error_code: "BAD_REQUEST",
      message: expect.stringMatching(/text\/plain.*application\/json or text\/csv/),
    });
  });
});
