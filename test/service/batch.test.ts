import { hasBatchAxis, planStacking, split, stack, stackKey } from "../../service/src/model/batch";
import type { Model, Tensor } from "../../service/src/model/model";
import { batchCentred, batchTwice, fixedBatch, rowSum } from "../fixtures/batch-models";
import { kerasDense } from "../fixtures/onnx-models";
import { IRIS_ROWS, identityModel, irisModel, onnxModel } from "./protocols/support";

const fp32 = (name: string, shape: number[], values: number[]): Tensor => ({
  name,
  datatype: "FP32",
  shape,
  data: Float32Array.from(values),
});

describe("stacking requests", () => {
  let iris: Model;
  let sum: Model;
  beforeAll(async () => {
    iris = await irisModel();
    sum = await onnxModel(rowSum(), "row_sum");
  });
  afterAll(async () => {
    await iris.close();
    await sum.close();
  });

  it("stacks requests of the same inputs, element type and row shape, whatever their rows", () => {
    const one = [fp32("input", [1, 4], IRIS_ROWS[0])];
    const two = [fp32("input", [2, 4], [...IRIS_ROWS[1], ...IRIS_ROWS[2]])];
    expect(stackKey(iris, one)).toBe(stackKey(iris, two));
    const threeWide = [fp32("x", [1, 3], [1, 2, 3])];
    const fourWide = [fp32("x", [2, 4], [1, 2, 3, 4, 5, 6, 7, 8])];
    expect(stackKey(sum, threeWide)).not.toBe(stackKey(sum, fourWide));
    const asFloat64: Tensor = { ...threeWide[0], datatype: "FP64", data: Float64Array.of(1, 2, 3) };
    expect(stackKey(sum, [asFloat64])).not.toBe(stackKey(sum, threeWide));
  });

  it("does not stack a request whose inputs disagree on rows, or lack one", () => {
    const model: Model = {
      ...identityModel(),
      inputs: [
        { name: "a", datatype: "FP32", shape: [-1, 1] },
        { name: "b", datatype: "FP32", shape: [-1, 1] },
      ],
    };
    expect(stackKey(model, [fp32("a", [1, 1], [1]), fp32("b", [2, 1], [1, 2])])).toBeUndefined();
    expect(stackKey(model, [fp32("a", [1, 1], [1])])).toBeUndefined();
    expect(stackKey(model, [fp32("a", [1, 1], [1]), fp32("b", [1, 1], [2])])).toEqual(
      expect.any(String),
    );
  });

  it("stacks rows in request order and splits each request's rows back out", () => {
    const stacked = stack([[fp32("x", [1, 2], [1, 2])], [fp32("x", [2, 2], [3, 4, 5, 6])]]);
    expect(stacked).toEqual([fp32("x", [3, 2], [1, 2, 3, 4, 5, 6])]);
    const strings: Tensor = { name: "s", datatype: "BYTES", shape: [1], data: ["a"] };
    expect(stack([[strings], [{ ...strings, shape: [2], data: ["b", "c"] }]])).toEqual([
      { name: "s", datatype: "BYTES", shape: [3], data: ["a", "b", "c"] },
    ]);

    const labels: Tensor = {
      name: "label",
      datatype: "INT64",
      shape: [3],
      data: BigInt64Array.of(7n, 8n, 9n),
    };
    const [first, second] = split([labels, fp32("p", [3, 2], [1, 2, 3, 4, 5, 6])], [1, 2])!;
    expect(first).toEqual([
      { ...labels, shape: [1], data: BigInt64Array.of(7n) },
      fp32("p", [1, 2], [1, 2]),
    ]);
    expect(second).toEqual([
      { ...labels, shape: [2], data: BigInt64Array.of(8n, 9n) },
      fp32("p", [2, 2], [3, 4, 5, 6]),
    ]);
  });

  it("cannot split outputs that do not have one row per stacked row", () => {
    expect(split([fp32("total", [1, 2], [4, 6])], [1, 1])).toBeUndefined();
    expect(split([{ ...fp32("scalar", [], [4]) }], [1])).toBeUndefined();
  });
});

describe("planStacking", () => {
  const served: Model[] = [];
  const load = async (bytes: Uint8Array, name: string) => {
    const model = await onnxModel(bytes, name);
    served.push(model);
    return model;
  };
  afterAll(() => Promise.all(served.map((model) => model.close())));

  it("stacks the iris classifier and pads its one-row runs, whose last bits onnxruntime computes otherwise", async () => {
    const iris = await irisModel();
    served.push(iris);
    // The premise: the same row, alone and beside another, comes back different in float32.
    const [alone] = await iris.predict([fp32("input", [1, 4], IRIS_ROWS[0])]);
    const [, probabilities] = await iris.predict([
      fp32("input", [2, 4], [...IRIS_ROWS[0], ...IRIS_ROWS[1]]),
    ]);
    const [, aloneProbabilities] = await iris.predict([fp32("input", [1, 4], IRIS_ROWS[0])]);
    expect(alone.name).toBe("label");
    expect(Array.from(aloneProbabilities.data as Float32Array)).not.toEqual(
      Array.from((probabilities.data as Float32Array).subarray(0, 3)),
    );
    expect(await planStacking(iris)).toEqual({
      stacks: true,
      padsOneRow: true,
      rowMs: expect.any(Number),
    });
  });

  it("stacks a Keras dense network as it is: its one-row runs match", async () => {
    expect(await planStacking(await load(kerasDense(), "dense"))).toMatchObject({
      stacks: true,
      padsOneRow: false,
    });
  });

  it.each([
    [
      "a model that centres each row on the mean of its batch",
      batchCentred,
      "its answer to a request differs when the request shares a run",
    ],
    [
      "a model that answers two rows for each row",
      batchTwice,
      "its outputs do not have one row per input row",
    ],
    [
      "a model whose first dimension is fixed",
      fixedBatch,
      "its inputs and outputs do not all start with a dynamic (batch) dimension",
    ],
  ])("runs %s one request at a time", async (_what, build, reason) => {
    const model = await load(build(), "model");
    expect(await planStacking(model)).toEqual({ stacks: false, padsOneRow: false, reason });
  });

  it("runs the identity model one request at a time: it has no batch axis", async () => {
    expect(hasBatchAxis(identityModel())).toBe(false);
    expect((await planStacking(identityModel())).stacks).toBe(false);
  });

  it("runs a model that fails on made-up inputs one request at a time, saying why", async () => {
    const dense = await load(kerasDense(), "dense");
    const failing: Model = {
      ...dense,
      inputs: dense.inputs,
      outputs: dense.outputs,
      predict: () => Promise.reject(new Error("unknown category")),
      close: () => dense.close(),
    };
    expect(await planStacking(failing)).toEqual({
      stacks: false,
      padsOneRow: false,
      reason: "it fails on made-up inputs, so stacking cannot be checked (unknown category)",
    });
  });
});
