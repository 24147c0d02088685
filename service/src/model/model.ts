/**
 * The one contract between the protocol adapters and whatever runs the model. Adapters decode a
 * request into named tensors, call `predict`, and encode the named tensors it returns.
 */

/** Tensor element types, named as the Open Inference Protocol v2 names them. */
export const DATA_TYPES = [
  "BOOL",
  "UINT8",
  "UINT16",
  "UINT32",
  "UINT64",
  "INT8",
  "INT16",
  "INT32",
  "INT64",
  "FP16",
  "FP32",
  "FP64",
  "BYTES",
] as const;

export type DataType = (typeof DATA_TYPES)[number];

/**
 * Elements of a tensor in row-major order. 64-bit integers are `bigint`s so no value is rounded;
 * adapters turn them into JSON numbers (or strings, past 2^53) at the edge.
 */
export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array
  | readonly boolean[]
  | readonly string[]
  | readonly number[];

export interface Tensor {
  readonly name: string;
  readonly datatype: DataType;
  /** Dimensions; the product equals `data.length`. */
  readonly shape: readonly number[];
  readonly data: TensorData;
}

/** What a model declares about one input or output. */
export interface TensorSpec {
  readonly name: string;
  /** `null`: any element type is accepted (the identity model). */
  readonly datatype: DataType | null;
  /** `-1` marks a dynamic dimension; `null`: any rank (the identity model). */
  readonly shape: readonly number[] | null;
}

export interface Model {
  readonly name: string;
  readonly version: string;
  /** Runtime that executes the model, as reported in metadata: `identity` or `onnxruntime`. */
  readonly platform: string;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  /**
   * The output that single-answer protocols (`/score`, Seldon v1, KServe v1, MLflow) return:
   * class probabilities for a classifier, the prediction for a regressor.
   */
  readonly primaryOutput: string;
  /** Column names of the primary input's last dimension, when the model ships them. */
  readonly featureNames?: readonly string[];
  /** Class names in the order of the primary output's columns, when the model ships them. */
  readonly classNames?: readonly string[];
  /**
   * Runs the model. Inputs must already match `inputs` (adapters validate); the promise rejects
   * only for faults of the model or the runtime, never for a client's mistake.
   */
  predict(inputs: readonly Tensor[]): Promise<Tensor[]>;
  /** Frees the runtime's resources. */
  close(): Promise<void>;
}

/**
 * The model's own run refused the values of a request that passed every check of its inputs (an
 * index outside a lookup table, say): the client's data, not a fault of the server.
 */
export class ModelInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ModelInputError";
  }
}
