import { readFileSync } from "node:fs";
import path from "node:path";
import { onnx } from "onnx-proto";
import { buildModel } from "../../service/train/onnx-builder";
import { MODELS_DIR, stratifiedSplit, trainIris } from "../../service/train/train";

describe("npm run train (trainIris)", () => {
  const first = trainIris();

  it("rebuilds the committed iris.onnx, iris.json and iris.golden.json byte for byte", () => {
    const again = trainIris();
    expect(Buffer.from(again.onnx).equals(Buffer.from(first.onnx))).toBe(true);
    expect(Buffer.from(first.onnx).equals(readFileSync(path.join(MODELS_DIR, "iris.onnx")))).toBe(
      true,
    );
    expect(readFileSync(path.join(MODELS_DIR, "iris.json"), "utf8")).toBe(
      `${JSON.stringify(first.metadata, null, 2)}\n`,
    );
    expect(readFileSync(path.join(MODELS_DIR, "iris.golden.json"), "utf8")).toBe(
      `${JSON.stringify(first.golden, null, 2)}\n`,
    );
  });

  it("learns iris: at least 90% on both the training and the held-out rows", () => {
    expect(first.metadata).toMatchObject({ trainSize: 120, testSize: 30 });
    expect(first.metadata.trainAccuracy).toBeGreaterThanOrEqual(0.9);
    expect(first.metadata.testAccuracy).toBeGreaterThanOrEqual(0.9);
  });

  it("writes the graph skl2onnx writes: Scaler then a softmax LinearClassifier", () => {
    const model = onnx.ModelProto.decode(first.onnx);
    const graph = model.graph as onnx.GraphProto;
    expect(model.opsetImport.map(({ domain, version }) => [domain, Number(version)])).toEqual([
      ["", 17],
      ["ai.onnx.ml", 3],
    ]);
    expect(graph.node.map((node) => [node.domain, node.opType, node.input, node.output])).toEqual([
      ["ai.onnx.ml", "Scaler", ["input"], ["variable"]],
      ["ai.onnx.ml", "LinearClassifier", ["variable"], ["label", "probabilities"]],
    ]);
    const attributes = Object.fromEntries(
      (graph.node[1] as onnx.NodeProto).attribute.map((attribute) => [attribute.name, attribute]),
    );
    expect(new TextDecoder().decode(attributes.post_transform.s)).toBe("SOFTMAX");
    expect(attributes.classlabels_ints.ints.map(Number)).toEqual([0, 1, 2]);
    expect(attributes.coefficients.floats).toHaveLength(12);
  });

  it("gives a different model for a different seed (the seed really drives the split)", () => {
    const other = trainIris({ seed: 7, epochs: 50 });
    const sameSeedShort = trainIris({ seed: 42, epochs: 50 });
    expect(Buffer.from(other.onnx).equals(Buffer.from(sameSeedShort.onnx))).toBe(false);
  });
});

describe("stratifiedSplit", () => {
  const samples = Array.from({ length: 150 }, (_, i) => ({ x: [i], y: Math.floor(i / 50) }));

  it("holds out 20% of every class, disjoint from the training rows", () => {
    const { train, test } = stratifiedSplit(samples, 0.2, 1);
    for (const label of [0, 1, 2]) {
      expect(test.filter((s) => s.y === label)).toHaveLength(10);
      expect(train.filter((s) => s.y === label)).toHaveLength(40);
    }
    const ids = [...train, ...test].map((s) => s.x[0]).sort((a, b) => a - b);
    expect(ids).toEqual(samples.map((s) => s.x[0]));
  });

  it("is the same for the same seed and differs for another", () => {
    const ids = (seed: number) => stratifiedSplit(samples, 0.2, seed).test.map((s) => s.x[0]);
    expect(ids(1)).toEqual(ids(1));
    expect(ids(2)).not.toEqual(ids(1));
  });
});

describe("buildModel", () => {
  const base = { graphName: "g", opsets: { "": 17 }, inputs: [], outputs: [], nodes: [] };

  it("refuses an integer attribute that is not a safe integer", () => {
    expect(() =>
      buildModel({
        ...base,
        nodes: [{ opType: "Cast", inputs: [], outputs: [], attributes: { to: { int: 1.5 } } }],
      }),
    ).toThrow("attribute to: 1.5 is not an integer that fits an int64 exactly");
  });

  it("refuses an initializer whose values do not fill its dims", () => {
    expect(() =>
      buildModel({
        ...base,
        initializers: [{ name: "w", type: "float32", dims: [2, 2], values: [1, 2, 3] }],
      }),
    ).toThrow("initializer w: dims [2, 2] hold 4 values, got 3");
  });

  it("stores initializers little-endian in raw_data and opsets sorted by domain", () => {
    const bytes = buildModel({
      ...base,
      opsets: { "ai.onnx.ml": 3, "": 17 },
      initializers: [{ name: "n", type: "int64", dims: [1], values: [258n] }],
    });
    const model = onnx.ModelProto.decode(bytes);
    expect(model.opsetImport.map((opset) => opset.domain)).toEqual(["", "ai.onnx.ml"]);
    expect(Array.from(model.graph?.initializer?.[0]?.rawData ?? [])).toEqual([
      2, 1, 0, 0, 0, 0, 0, 0,
    ]);
  });
});
