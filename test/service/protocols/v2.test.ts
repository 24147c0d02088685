import request from "supertest";
import type { DataType, Model } from "../../../service/src/model/model";
import servicePackage from "../../../service/package.json";
import type { ElementType } from "../../../service/train/onnx-builder";
import { INT64_OFFSET, identityOf, int64Input, treeClassifier } from "../../fixtures/onnx-models";
import { IRIS_ROWS, appFor, argmax, identityModel, irisModel, onnxModel } from "./support";

/** A model with two inputs, which only v2 can feed: answers `a + b`. */
function twoInputModel(): Model {
  const spec = (name: string) => ({ name, datatype: "FP64" as const, shape: [-1] });
  return {
    name: "pair",
    version: "1",
    platform: "test",
    inputs: [spec("a"), spec("b")],
    outputs: [spec("sum")],
    primaryOutput: "sum",
    async predict([a, b]) {
      const data = Float64Array.from(
        a.data as Float64Array,
        (x, i) => x + (b.data as Float64Array)[i],
      );
      return [{ name: "sum", datatype: "FP64", shape: a.shape, data }];
    },
    async close() {},
  };
}

const irisInput = (rows: number[][] = IRIS_ROWS) => ({
  name: "input",
  shape: [rows.length, 4],
  datatype: "FP32",
  data: rows.flat(),
});

describe("Open Inference Protocol v2", () => {
  let iris: Model;
  beforeAll(async () => {
    iris = await irisModel();
  });
  afterAll(() => iris.close());

  describe("server and model metadata", () => {
    it("GET /v2 names the server and its version", async () => {
      const res = await request(appFor(iris)).get("/v2");
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        name: "mlscore",
        version: servicePackage.version,
        extensions: [],
      });
    });

    it("reports liveness always and readiness only when ready (503 otherwise)", async () => {
      let ready = false;
      const app = appFor(iris, () => ready);
      expect((await request(app).get("/v2/health/live")).status).toBe(200);
      expect((await request(app).get("/v2/health/ready")).status).toBe(503);
      expect((await request(app).get("/v2/models/iris/ready")).status).toBe(503);
      ready = true;
      expect((await request(app).get("/v2/health/ready")).status).toBe(200);
      const model = await request(app).get("/v2/models/iris/versions/1/ready");
      expect(model.status).toBe(200);
      expect(model.body).toEqual({ name: "iris", ready: true });
    });

    it.each(["/v2/models/iris", "/v2/models/iris/versions/1"])(
      "GET %s describes inputs and outputs from the model",
      async (path) => {
        const res = await request(appFor(iris)).get(path);
        expect(res.status).toBe(200);
        expect(res.body).toEqual({
          name: "iris",
          versions: ["1"],
          platform: "onnxruntime",
          inputs: [{ name: "input", datatype: "FP32", shape: [-1, 4] }],
          outputs: [
            { name: "label", datatype: "INT64", shape: [-1] },
            { name: "probabilities", datatype: "FP32", shape: [-1, 3] },
          ],
        });
      },
    );

    it.each([
      ["GET", "/v2/models/other", /model "other" is not served here.*"iris"/],
      ["GET", "/v2/models/iris/versions/2", /no version "2".*version "1"/],
      ["GET", "/v2/models/other/ready", /"other" is not served/],
      ["POST", "/v2/models/other/infer", /"other" is not served/],
      ["POST", "/v2/models/iris/versions/9/infer", /no version "9"/],
    ])("%s %s is 404 with an error", async (method, path, message) => {
      const app = appFor(iris);
      const res =
        method === "GET"
          ? await request(app).get(path)
          : await request(app)
              .post(path)
              .send({ inputs: [irisInput()] });
      expect(res.status).toBe(404);
      expect(res.body).toEqual({ error: expect.stringMatching(message) });
    });
  });

  describe("POST /v2/models/{name}/infer", () => {
    it("classifies flat FP32 data, echoes the id and returns every output", async () => {
      const res = await request(appFor(iris))
        .post("/v2/models/iris/infer")
        .send({ id: "req-7", parameters: { trace: true }, inputs: [irisInput()] });
      expect(res.status).toBe(200);
      expect(res.body.model_name).toBe("iris");
      expect(res.body.model_version).toBe("1");
      expect(res.body.id).toBe("req-7");
      const [label, probabilities] = res.body.outputs;
      expect(label).toEqual({ name: "label", datatype: "INT64", shape: [3], data: [0, 1, 2] });
      expect(probabilities.name).toBe("probabilities");
      expect(probabilities.datatype).toBe("FP32");
      expect(probabilities.shape).toEqual([3, 3]);
      const rows = [0, 1, 2].map((r) => (probabilities.data as number[]).slice(r * 3, r * 3 + 3));
      expect(rows.map(argmax)).toEqual([0, 1, 2]);
    });

    it("accepts data nested as the shape says, and filters outputs", async () => {
      const res = await request(appFor(iris))
        .post("/v2/models/iris/versions/1/infer")
        .send({ inputs: [{ ...irisInput(), data: IRIS_ROWS }], outputs: [{ name: "label" }] });
      expect(res.status).toBe(200);
      expect(res.body.outputs).toEqual([
        { name: "label", datatype: "INT64", shape: [3], data: [0, 1, 2] },
      ]);
      expect(res.body.id).toBeUndefined();
    });

    it("returns the identity model's input with the datatype it was sent", async () => {
      const res = await request(appFor(identityModel()))
        .post("/v2/models/identity/infer")
        .send({
          inputs: [{ name: "input", shape: [2, 2], datatype: "INT32", data: [1, 2, 3, 4] }],
        });
      expect(res.status).toBe(200);
      expect(res.body.outputs).toEqual([
        { name: "output", datatype: "INT32", shape: [2, 2], data: [1, 2, 3, 4] },
      ]);
    });

    it("reads and writes INT64 beyond 2^53 exactly, as strings", async () => {
      const model = await onnxModel(int64Input(), "counts");
      try {
        const res = await request(appFor(model))
          .post("/v2/models/counts/infer")
          .send({
            inputs: [
              {
                name: "counts",
                shape: [2, 2],
                datatype: "INT64",
                data: [0, 5, "9007199254740993", -7],
              },
            ],
          });
        expect(res.status).toBe(200);
        const shifted = res.body.outputs.find((o: { name: string }) => o.name === "shifted");
        const expected = [0n, 5n, 9007199254740993n, -7n].map((v, i) => v + INT64_OFFSET[i % 2]);
        expect(shifted.datatype).toBe("INT64");
        expect(shifted.data).toEqual(
          expected.map((v) => (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString())),
        );
        expect(typeof shifted.data[0]).toBe("string");
        expect(shifted.data[1]).toBe(2);
      } finally {
        await model.close();
      }
    });

    const roundTrips: [ElementType, DataType, unknown[]][] = [
      ["bool", "BOOL", [true, false]],
      ["int8", "INT8", [-128, 127]],
      ["int16", "INT16", [-32768, 32767]],
      ["int32", "INT32", [-2147483648, 2147483647]],
      ["int64", "INT64", [-5, "-9223372036854775808"]],
      ["uint8", "UINT8", [0, 255]],
      ["uint16", "UINT16", [0, 65535]],
      ["uint32", "UINT32", [0, 4294967295]],
      ["uint64", "UINT64", [7, "18446744073709551615"]],
      ["float16", "FP16", [0.5, -65504]],
      ["float32", "FP32", [0.1, -3.4e38]],
      ["float64", "FP64", [0.1, 1e300]],
      ["string", "BYTES", ["a", "ünïcode"]],
    ];
    it.each(roundTrips)("round-trips %s tensors as %s", async (type, datatype, data) => {
      const model = await onnxModel(identityOf(type), `id_${type}`);
      try {
        const res = await request(appFor(model))
          .post(`/v2/models/id_${type}/infer`)
          .send({ inputs: [{ name: "x", shape: [2], datatype, data }] });
        expect(res.status).toBe(200);
        expect(res.body.outputs).toEqual([{ name: "y", datatype, shape: [2], data }]);
      } finally {
        await model.close();
      }
    });

    it.each([
      [{}, /inputs must be an array of tensors/],
      [{ inputs: [] }, /inputs must list at least one tensor/],
      [
        { inputs: [{ ...irisInput(), datatype: "FLOAT32" }] },
        /inputs\[0\].datatype must be one of BOOL.*\(got "FLOAT32"\)/,
      ],
      [
        { inputs: [{ ...irisInput(), datatype: "FP64" }] },
        /inputs\[0\].data has datatype FP64, but the model's input "input" takes FP32/,
      ],
      [
        { inputs: [{ ...irisInput(), shape: [3, -4] }] },
        /inputs\[0\].shape must be an array of non-negative integers/,
      ],
      [
        { inputs: [{ ...irisInput(), shape: [2, 4] }] },
        /inputs\[0\].data has 12 values, but inputs\[0\].shape \[2, 4\] needs 8/,
      ],
      [
        {
          inputs: [
            {
              ...irisInput(),
              data: [
                [1, 2],
                [3, 4],
              ],
            },
          ],
        },
        /nested as shape \[2, 2\], but inputs\[0\].shape is \[3, 4\]/,
      ],
      [
        { inputs: [{ ...irisInput(), name: "x" }] },
        /inputs\[0\].name "x" is not an input.*"input" \(FP32 \[-1, 4\]\)/,
      ],
      [{ inputs: [irisInput(), irisInput()] }, /"input" is sent twice/],
      [
        { inputs: [irisInput()], outputs: [{ name: "nope" }] },
        /outputs\[0\].name "nope" is not an output.*"label", "probabilities"/,
      ],
      [
        { inputs: [{ ...irisInput([[1, 2, 3, 4]]), data: [1, 2, "NaN", 4] }] },
        /inputs\[0\].data\[2\] is the string "NaN", expected a number.*no NaN/,
      ],
      [{ inputs: [{ name: "input", shape: [0, 4], datatype: "FP32", data: [] }] }, /empty batch/],
    ])("rejects %j with 400 and an error", async (body, message) => {
      const res = await request(appFor(iris)).post("/v2/models/iris/infer").send(body);
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ error: expect.stringMatching(message) });
    });

    it("answers a tree classifier's INT64 labels as numbers", async () => {
      const model = await onnxModel(treeClassifier(), "tree");
      try {
        const res = await request(appFor(model))
          .post("/v2/models/tree/infer")
          .send({
            inputs: [{ name: "input", shape: [2, 2], datatype: "FP32", data: [1, 0, 3, 4] }],
          });
        expect(res.status).toBe(200);
        expect(res.body.outputs[0]).toEqual({
          name: "label",
          datatype: "INT64",
          shape: [2],
          data: [10, 30],
        });
      } finally {
        await model.close();
      }
    });

    it("requires every input the model declares", async () => {
      const res = await request(appFor(twoInputModel()))
        .post("/v2/models/pair/infer")
        .send({ inputs: [{ name: "a", shape: [1], datatype: "FP64", data: [1] }] });
      expect(res.status).toBe(400);
      expect(res.body.error).toMatch(/inputs lacks "b" \(FP64 \[-1\]\)/);
    });
  });
});
