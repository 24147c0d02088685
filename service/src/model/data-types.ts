import type { Tensor as OrtTensor } from "onnxruntime-node";
import type { DataType } from "./model";

/**
 * Everything that depends on a tensor's element type, in one table: what one element is as a
 * JSON value, the range it takes, the array that holds a tensor of it, and onnxruntime's name for
 * it. Decoding, the OpenAPI schemas and the ONNX runtime adapter all read this table, so a type is
 * described once.
 */

/** What one element is as a JSON value, which decides how it is read, checked and documented. */
export type ElementKind = "float" | "integer" | "bigint" | "boolean" | "string";

/** A tensor buffer, written element by element before it is frozen as `TensorData`. */
export type WritableData = { [index: number]: unknown; readonly length: number };

export interface DataTypeInfo {
  readonly kind: ElementKind;
  /**
   * Smallest and largest value: an integer type's bounds, a float type's finite range (none for
   * FP64, which any finite JSON number fits).
   */
  readonly range?: readonly [number, number] | readonly [bigint, bigint];
  /**
   * What holds a tensor of this type: a typed array where JavaScript has one; a plain array for
   * FP16 (Node 20 has no Float16Array; the runtime adapter converts), BOOL and BYTES.
   */
  readonly array: new (length: number) => WritableData;
  /** onnxruntime's name for the type. */
  readonly ort: OrtTensor.Type;
}

const FP32_MAX = 3.4028234663852886e38;
const FP16_MAX = 65504;

/** Keyed, and ordered, as `DATA_TYPES`. */
export const DATA_TYPE_INFO = {
  BOOL: { kind: "boolean", array: Array, ort: "bool" },
  UINT8: { kind: "integer", range: [0, 255], array: Uint8Array, ort: "uint8" },
  UINT16: { kind: "integer", range: [0, 65535], array: Uint16Array, ort: "uint16" },
  UINT32: { kind: "integer", range: [0, 4294967295], array: Uint32Array, ort: "uint32" },
  UINT64: { kind: "bigint", range: [0n, 2n ** 64n - 1n], array: BigUint64Array, ort: "uint64" },
  INT8: { kind: "integer", range: [-128, 127], array: Int8Array, ort: "int8" },
  INT16: { kind: "integer", range: [-32768, 32767], array: Int16Array, ort: "int16" },
  INT32: { kind: "integer", range: [-2147483648, 2147483647], array: Int32Array, ort: "int32" },
  INT64: {
    kind: "bigint",
    range: [-(2n ** 63n), 2n ** 63n - 1n],
    array: BigInt64Array,
    ort: "int64",
  },
  FP16: { kind: "float", range: [-FP16_MAX, FP16_MAX], array: Array, ort: "float16" },
  FP32: { kind: "float", range: [-FP32_MAX, FP32_MAX], array: Float32Array, ort: "float32" },
  FP64: { kind: "float", array: Float64Array, ort: "float64" },
  BYTES: { kind: "string", array: Array, ort: "string" },
} as const satisfies Record<DataType, DataTypeInfo>;
