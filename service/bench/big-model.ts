import { onnx } from "onnx-proto";
import { buildModel } from "../train/onnx-builder";

/**
 * An ONNX model of about `bytes`, almost all of it one initializer: `output = input × weight`,
 * `input` [N, 4], `weight` [4, K], as a real network layer keeps its weights. Generated where it
 * is needed, never committed.
 */
export function bigModel(bytes: number): Buffer {
  const columns = Math.floor(bytes / 16);
  const skeleton = buildModel({
    graphName: "big_matmul",
    opsets: { "": 17 },
    inputs: [{ name: "input", type: "float32", shape: ["N", 4] }],
    outputs: [{ name: "output", type: "float32", shape: ["N", columns] }],
    nodes: [{ opType: "MatMul", inputs: ["input", "weight"], outputs: ["output"] }],
  });
  // The builder takes values as a JS array; at hundreds of MiB the weight goes in as raw bytes.
  const model = onnx.ModelProto.decode(skeleton);
  model.graph?.initializer?.push(
    onnx.TensorProto.create({
      name: "weight",
      dataType: onnx.TensorProto.DataType.FLOAT,
      dims: [4, columns],
      rawData: Buffer.alloc(columns * 16, 0x3c),
    }),
  );
  return Buffer.from(onnx.ModelProto.encode(model).finish());
}
