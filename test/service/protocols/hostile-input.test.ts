import type { Express } from "express";
import request, { type Response } from "supertest";
import { createApp } from "../../../service/src/app";
import type { Model } from "../../../service/src/model/model";
import { int64Input } from "../../fixtures/onnx-models";
import { IRIS_ROWS, identityModel, irisModel, onnxModel } from "./support";

/**
 * What an attacker found (issue 8): inputs that answered 500, ignored names, NaN answered as
 * `null`, client text echoed without limit, and element values whose parsing stalled the process.
 * Each has a 4xx now; the bodies here are larger than the other tests' limit, so the app gets room.
 */

const FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"];
/** Longest message any answer here may carry: client text is quoted as a short prefix only. */
const SHORT = 600;

const appOf = (model: Model, bodyLimitBytes = 8_000_000): Express =>
  createApp({ model, maxBatchSize: 8, bodyLimitBytes });

const deep = (depth: number): string => "[".repeat(depth) + "]".repeat(depth);
const v2Body = (datatype: string) =>
  `{"inputs": [{"name": "input", "shape": [1, 4], "datatype": ${datatype}, "data": [1, 2, 3, 4]}]}`;

/** The message of any protocol's error body. */
const messageOf = (res: Response): string =>
  res.body.error ?? res.body.message ?? res.body.status?.info ?? JSON.stringify(res.body);

describe("hostile input to the iris classifier", () => {
  let iris: Model;
  let app: Express;
  beforeAll(async () => {
    iris = await irisModel();
    app = appOf(iris);
  });
  afterAll(() => iris.close());

  const postJson = (path: string, body: string) =>
    request(app).post(path).set("Content-Type", "application/json").send(body);

  describe("deep nesting never answers 500", () => {
    it("v2: a datatype that is an array nested 5000 deep is 400 naming it briefly", async () => {
      const res = await postJson("/v2/models/iris/infer", v2Body(deep(5000)));
      expect(res.status).toBe(400);
      expect(res.body.error).toMatch(/inputs\[0\].datatype must be one of BOOL.*\(got an array\)$/);
    });

    it("Seldon: meta.tags nested 5000 deep is 400, not echoed", async () => {
      const body = `{"meta": {"tags": {"a": ${deep(5000)}}}, "data": {"ndarray": [[1, 2, 3, 4]]}}`;
      const res = await postJson("/api/v1.0/predictions", body);
      expect(res.status).toBe(400);
      expect(res.body.status.info).toMatch(/meta.tags is nested more than 32 levels deep/);
    });

    it("Seldon: shallow tags are still echoed", async () => {
      const res = await request(app)
        .post("/predict")
        .send({ meta: { tags: { team: { name: "ml" } } }, data: { ndarray: [IRIS_ROWS[0]] } });
      expect(res.status).toBe(200);
      expect(res.body.meta.tags).toEqual({ team: { name: "ml" } });
    });
  });

  describe("Seldon names pick columns by name", () => {
    it("scores a row whose columns come in another order, named, as the row in order", async () => {
      const inOrder = await request(app)
        .post("/predict")
        .send({ data: { names: FEATURES, ndarray: IRIS_ROWS } });
      const reordered = await request(app)
        .post("/predict")
        .send({
          data: {
            names: [...FEATURES].reverse(),
            ndarray: IRIS_ROWS.map((row) => [...row].reverse()),
          },
        });
      expect(reordered.status).toBe(200);
      expect(reordered.body.data).toEqual(inOrder.body.data);
    });

    it.each([
      [["a", "b", "c", "d"], /has the unknown columns "a", "b", "c", "d" and lacks "sepal_length"/],
      [
        ["sepal_length", "sepal_length", "petal_length", "petal_width"],
        /names the column "sepal_length" twice/,
      ],
    ])("answers names %j with 400 listing the expected ones", async (names, pattern) => {
      const res = await request(app)
        .post("/predict")
        .send({ data: { names, ndarray: [IRIS_ROWS[0]] } });
      expect(res.status).toBe(400);
      expect(res.body.status.info).toMatch(pattern);
      if (!/twice/.test(res.body.status.info)) {
        expect(res.body.status.info).toMatch(
          /takes the columns "sepal_length", "sepal_width", "petal_length", "petal_width"$/,
        );
      }
    });
  });

  describe("an answer that is not a number is a 400 naming the input range", () => {
    // Far outside the training data with opposite signs: the linear scores overflow to +∞ and -∞.
    const huge = [[1e38, -1e38, 1e38, -1e38]];
    it.each([
      ["/score", { X: huge }, "X"],
      ["/predict", { data: { ndarray: huge } }, "data.ndarray"],
      ["/v1/models/iris:predict", { instances: huge }, "instances"],
      ["/invocations", { dataframe_split: { columns: FEATURES, data: huge } }, "dataframe_split"],
      [
        "/v2/models/iris/infer",
        { inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: huge[0] }] },
        "inputs",
      ],
    ])("POST %s", async (path, body, field) => {
      const res = await request(app).post(path).send(body);
      expect(res.status).toBe(400);
      expect(messageOf(res)).toMatch(
        new RegExp(
          `answers NaN in its output "probabilities" for row 0 of ${field.replace(".", "\\.")}, whose values range from -1e\\+38 to 1e\\+38: that is outside the range of inputs the model can score`,
        ),
      );
    });

    it("MLflow CSV", async () => {
      const res = await request(app)
        .post("/invocations")
        .set("Content-Type", "text/csv")
        .send(`${FEATURES.join(",")}\n1e38,-1e38,1e38,-1e38\n`);
      expect(res.status).toBe(400);
      expect(res.body.message).toMatch(/answers NaN .* for row 0 of CSV rows, whose values range/);
    });
  });

  describe("client text is quoted as a short prefix", () => {
    const long = "x".repeat(3_000_000);
    it.each([
      ["a v2 datatype", "/v2/models/iris/infer", v2Body(JSON.stringify(long))],
      [
        "a v2 input name",
        "/v2/models/iris/infer",
        JSON.stringify({ inputs: [{ name: long, shape: [1], datatype: "FP32", data: [1] }] }),
      ],
      [
        "a v2 output name",
        "/v2/models/iris/infer",
        JSON.stringify({
          inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] }],
          outputs: [{ name: long }],
        }),
      ],
      [
        "a column name",
        "/invocations",
        JSON.stringify({
          dataframe_split: { columns: [long, "b", "c", "d"], data: [[1, 2, 3, 4]] },
        }),
      ],
      ["a record key", "/invocations", JSON.stringify({ dataframe_records: [{ [long]: 1 }] })],
      ["a value", "/score", JSON.stringify({ X: [[long, 1, 2, 3]] })],
      [
        "a Seldon name",
        "/predict",
        JSON.stringify({ data: { names: [long, "b", "c", "d"], ndarray: [[1, 2, 3, 4]] } }),
      ],
    ])("%s of 3 MB", async (_what, path, body) => {
      const res = await postJson(path, body);
      expect(res.status).toBe(400);
      expect(messageOf(res).length).toBeLessThan(SHORT);
      expect(messageOf(res)).toMatch(/"x{40}…"/);
    });

    it("a model name in the path", async () => {
      const res = await request(app).get(`/v2/models/${"m".repeat(8000)}`);
      expect(res.status).toBe(404);
      expect(res.body.error.length).toBeLessThan(SHORT);
    });

    it("a Content-Type", async () => {
      const res = await request(app)
        .post("/score")
        .set("Content-Type", `text/${"y".repeat(8000)}`)
        .send("1");
      expect(res.status).toBe(415);
      expect(res.body.error.length).toBeLessThan(SHORT);
    });
  });

  describe("smaller mistakes", () => {
    it("a duplicate CSV column is 400", async () => {
      const res = await request(app)
        .post("/invocations")
        .set("Content-Type", "text/csv")
        .send("sepal_length,sepal_length,petal_length,petal_width\n1,2,3,4\n");
      expect(res.status).toBe(400);
      expect(res.body.message).toBe('the CSV header names the column "sepal_length" twice');
    });

    it("a duplicate JSON column is 400", async () => {
      const res = await request(app)
        .post("/invocations")
        .send({
          dataframe_split: { columns: ["petal_width", ...FEATURES.slice(1)], data: [[1, 2, 3, 4]] },
        });
      expect(res.status).toBe(400);
      expect(res.body.message).toBe('dataframe_split.columns names the column "petal_width" twice');
    });

    it("a CSV in another charset is 415 asking for UTF-8, not JSON", async () => {
      const res = await request(app)
        .post("/invocations")
        .set("Content-Type", "text/csv; charset=klingon")
        .send(`${FEATURES.join(",")}\n1,2,3,4\n`);
      expect(res.status).toBe(415);
      expect(res.body.message).toBe("charset klingon is not supported; send the body as UTF-8");
    });

    it("a record with a key named constructor is an unknown column, not Object's constructor", async () => {
      const res = await request(app)
        .post("/invocations")
        .send({
          dataframe_records: [
            { ...Object.fromEntries(FEATURES.map((f) => [f, 1])), constructor: 1 },
          ],
        });
      expect(res.status).toBe(400);
      expect(res.body.message).toMatch(
        /dataframe_records\[0\] has the unknown column "constructor"/,
      );
    });

    it("v2 outputs: [] is 400", async () => {
      const res = await request(app)
        .post("/v2/models/iris/infer")
        .send({
          inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] }],
          outputs: [],
        });
      expect(res.status).toBe(400);
      expect(res.body.error).toMatch(
        /outputs must name at least one output; leave it out for all outputs/,
      );
    });
  });

  it("refuses a CSV cell of 300,000 digits and a letter without stalling", async () => {
    const res = await request(app)
      .post("/invocations")
      .set("Content-Type", "text/csv")
      .send(`${FEATURES.join(",")}\n1,2,3,${"9".repeat(300_000)}x\n`);
    expect(res.status).toBe(400);
    expect(res.body.message).toMatch(
      /CSV rows\[0\]\[3\] is the string "9{40}…", expected a number/,
    );
  }, 10_000);
});

describe("hostile input to models without feature names", () => {
  it("a record lacking a column that Object's prototype has is 400 naming it", async () => {
    const res = await request(appOf(identityModel()))
      .post("/invocations")
      .set("Content-Type", "application/json")
      .send('{"dataframe_records": [{"constructor": 1}, {"toString": 2}]}');
    expect(res.status).toBe(400);
    expect(res.body.message).toBe(
      'dataframe_records[1] has the unknown column "toString"; every record needs the columns of dataframe_records[0]',
    );
  });

  it("an INT64 written as 5 million digits is refused by its length", async () => {
    const model = await onnxModel(int64Input(), "counts");
    try {
      const res = await request(appOf(model))
        .post("/v2/models/counts/infer")
        .send({
          inputs: [
            { name: "counts", shape: [1, 2], datatype: "INT64", data: ["9".repeat(5_000_000), 1] },
          ],
        });
      expect(res.status).toBe(400);
      expect(res.body.error).toMatch(
        /inputs\[0\].data\[0\] is the string "9{40}…", expected an integer in the range of INT64 \(at most 20 digits\)/,
      );
    } finally {
      await model.close();
    }
  });
});
