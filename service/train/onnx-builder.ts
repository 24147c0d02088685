/**
 * Writes ONNX ModelProto bytes from a plain, typed description of a graph. The training script
 * uses it to export the iris classifier, and the tests use it to build models in the shapes that
 * skl2onnx and tf2onnx produce, so no Python toolchain is needed anywhere.
 */
import { onnx } from "onnx-proto";

/** Tensor element types, named as onnxruntime-node names them. */
export type ElementType =
  | "float32"
  | "float64"
  | "float16"
  | "int8"
  | "int16"
  | "int32"
  | "int64"
  | "uint8"
  | "uint16"
  | "uint32"
  | "uint64"
  | "bool"
  | "string";

const ELEMENT_TYPES: Readonly<Record<ElementType, onnx.TensorProto.DataType>> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float64: onnx.TensorProto.DataType.DOUBLE,
  float16: onnx.TensorProto.DataType.FLOAT16,
  int8: onnx.TensorProto.DataType.INT8,
  int16: onnx.TensorProto.DataType.INT16,
  int32: onnx.TensorProto.DataType.INT32,
  int64: onnx.TensorProto.DataType.INT64,
  uint8: onnx.TensorProto.DataType.UINT8,
  uint16: onnx.TensorProto.DataType.UINT16,
  uint32: onnx.TensorProto.DataType.UINT32,
  uint64: onnx.TensorProto.DataType.UINT64,
  bool: onnx.TensorProto.DataType.BOOL,
  string: onnx.TensorProto.DataType.STRING,
};

/**
 * A dimension: a fixed size, a symbolic name such as `"N"` or tf2onnx's `"unk__0"`, or `null` for
 * one with neither (what skl2onnx writes for a `None` batch dimension).
 */
export type Dim = number | string | null;

/** A graph input or output that is a tensor. */
export interface TensorValue {
  readonly name: string;
  readonly type: ElementType;
  readonly shape: readonly Dim[];
}

/**
 * A graph output that is a sequence of maps, as skl2onnx's ZipMap emits for class probabilities
 * (`seq(map(int64, float))`).
 */
export interface SequenceOfMapValue {
  readonly name: string;
  readonly sequenceOfMap: { readonly key: "int64" | "string"; readonly value: ElementType };
}

/** Anything a graph may take or give. */
export type GraphValue = TensorValue | SequenceOfMapValue;

/** A node attribute; the key names the ONNX attribute type, since numbers alone cannot. */
export type Attribute =
  | { readonly int: number }
  | { readonly float: number }
  | { readonly string: string }
  | { readonly ints: readonly number[] }
  | { readonly floats: readonly number[] }
  | { readonly strings: readonly string[] };

export interface Node {
  readonly opType: string;
  /** `""` (ai.onnx, the default) or `"ai.onnx.ml"`. */
  readonly domain?: string;
  /** Defaults to `opType`, the way skl2onnx names single nodes. */
  readonly name?: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes?: Readonly<Record<string, Attribute>>;
}

/** A constant tensor stored in the graph (weights, biases). */
export interface Initializer {
  readonly name: string;
  readonly type: "float32" | "float64" | "int32" | "int64";
  readonly dims: readonly number[];
  readonly values: readonly number[] | readonly bigint[];
}

export interface ModelDescription {
  readonly graphName: string;
  /** Opset per domain, e.g. `{ "": 17, "ai.onnx.ml": 3 }`. */
  readonly opsets: Readonly<Record<string, number>>;
  readonly inputs: readonly GraphValue[];
  readonly outputs: readonly GraphValue[];
  readonly nodes: readonly Node[];
  readonly initializers?: readonly Initializer[];
  /** Default 8, the IR version that opset 17 shipped with. */
  readonly irVersion?: number;
  /** Default `mlscore`. */
  readonly producerName?: string;
  readonly producerVersion?: string;
  readonly docString?: string;
}

/** Encodes `model` as ONNX ModelProto bytes. The same description always gives the same bytes. */
export function buildModel(model: ModelDescription): Uint8Array {
  const proto = onnx.ModelProto.create({
    irVersion: model.irVersion ?? 8,
    producerName: model.producerName ?? "mlscore",
    producerVersion: model.producerVersion ?? "",
    docString: model.docString ?? "",
    // Sorted so the bytes do not depend on the order the caller listed the domains in.
    opsetImport: Object.keys(model.opsets)
      .sort()
      .map((domain) => ({ domain, version: model.opsets[domain] })),
    graph: {
      name: model.graphName,
      node: model.nodes.map(nodeProto),
      initializer: (model.initializers ?? []).map(initializerProto),
      input: model.inputs.map(valueInfo),
      output: model.outputs.map(valueInfo),
    },
  });
  return onnx.ModelProto.encode(proto).finish();
}

function nodeProto(node: Node): onnx.INodeProto {
  return {
    opType: node.opType,
    domain: node.domain ?? "",
    name: node.name ?? node.opType,
    input: [...node.inputs],
    output: [...node.outputs],
    attribute: Object.entries(node.attributes ?? {}).map(([name, value]) =>
      attributeProto(name, value),
    ),
  };
}

function attributeProto(name: string, value: Attribute): onnx.IAttributeProto {
  const { AttributeType } = onnx.AttributeProto;
  const utf8 = (text: string) => new TextEncoder().encode(text);
  if ("int" in value) return { name, type: AttributeType.INT, i: checkInteger(name, value.int) };
  if ("float" in value) return { name, type: AttributeType.FLOAT, f: value.float };
  if ("string" in value) return { name, type: AttributeType.STRING, s: utf8(value.string) };
  if ("ints" in value) {
    return { name, type: AttributeType.INTS, ints: value.ints.map((i) => checkInteger(name, i)) };
  }
  if ("floats" in value) return { name, type: AttributeType.FLOATS, floats: [...value.floats] };
  return { name, type: AttributeType.STRINGS, strings: value.strings.map(utf8) };
}

function checkInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value)) {
    throw new RangeError(
      `attribute ${name}: ${value} is not an integer that fits an int64 exactly`,
    );
  }
  return value;
}

/**
 * Initializers go in `raw_data`, little-endian as the ONNX spec requires whatever the host's byte
 * order; DataView makes that explicit.
 */
function initializerProto(init: Initializer): onnx.ITensorProto {
  const count = init.dims.reduce((product, dim) => product * dim, 1);
  if (init.values.length !== count) {
    throw new RangeError(
      `initializer ${init.name}: dims [${init.dims.join(", ")}] hold ${count} values, got ${init.values.length}`,
    );
  }
  const width = { float32: 4, float64: 8, int32: 4, int64: 8 }[init.type];
  const view = new DataView(new ArrayBuffer(count * width));
  init.values.forEach((value: number | bigint, index: number) => {
    const offset = index * width;
    switch (init.type) {
      case "float32":
        view.setFloat32(offset, Number(value), true);
        break;
      case "float64":
        view.setFloat64(offset, Number(value), true);
        break;
      case "int32":
        view.setInt32(offset, Number(value), true);
        break;
      case "int64":
        view.setBigInt64(offset, BigInt(value), true);
        break;
    }
  });
  return {
    name: init.name,
    dataType: ELEMENT_TYPES[init.type],
    dims: [...init.dims],
    rawData: new Uint8Array(view.buffer),
  };
}

function valueInfo(value: GraphValue): onnx.IValueInfoProto {
  if ("sequenceOfMap" in value) {
    const { key, value: element } = value.sequenceOfMap;
    return {
      name: value.name,
      type: {
        sequenceType: {
          elemType: {
            mapType: {
              keyType: ELEMENT_TYPES[key],
              valueType: { tensorType: { elemType: ELEMENT_TYPES[element] } },
            },
          },
        },
      },
    };
  }
  return {
    name: value.name,
    type: {
      tensorType: {
        elemType: ELEMENT_TYPES[value.type],
        shape: {
          dim: value.shape.map((dim) => {
            if (dim === null) return {};
            return typeof dim === "number" ? { dimValue: dim } : { dimParam: dim };
          }),
        },
      },
    },
  };
}
