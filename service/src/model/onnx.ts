import * as ort from "onnxruntime-node";
import { DATA_TYPE_INFO } from "./data-types";
import {
  DATA_TYPES,
  type DataType,
  ModelInputError,
  type Model,
  type Tensor,
  type TensorData,
  type TensorSpec,
} from "./model";

/** Identity and labels of a model, given by whoever loads it. */
export interface OnnxModelOptions {
  readonly name: string;
  readonly version: string;
  /** Column names of the input's last dimension, e.g. from `iris.json`. */
  readonly featureNames?: readonly string[];
  /** Class names in the order of the probability columns. */
  readonly classNames?: readonly string[];
}

/** The v2 datatype of each onnxruntime element type this service can feed or return. */
const FROM_ORT = Object.fromEntries(
  DATA_TYPES.map((datatype) => [DATA_TYPE_INFO[datatype].ort, datatype]),
) as Partial<Record<string, DataType>>;

/**
 * One process, one pod, one core: the service scales by replicas, so onnxruntime's own thread
 * pools would only fight the other pods (and the benchmark's load generator) for CPU.
 */
const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: "sequential",
  graphOptimizationLevel: "all",
  // Warnings (e.g. unused initializers) would be printed on every load, outside the JSON logs.
  logSeverityLevel: 3,
};

/** Any ONNX model, run by onnxruntime-node on the CPU. */
export class OnnxModel implements Model {
  readonly platform = "onnxruntime";
  readonly name: string;
  readonly version: string;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  readonly primaryOutput: string;
  readonly featureNames?: readonly string[];
  readonly classNames?: readonly string[];

  private readonly session: ort.InferenceSession;
  /** Runs still in flight; `close` waits for them, since freeing a busy session is a crash. */
  private readonly running = new Set<Promise<unknown>>();
  private closing: Promise<void> | undefined;

  private constructor(
    session: ort.InferenceSession,
    inputs: readonly TensorSpec[],
    outputs: readonly TensorSpec[],
    options: OnnxModelOptions,
  ) {
    this.session = session;
    this.inputs = inputs;
    this.outputs = outputs;
    this.primaryOutput = primaryOutputOf(outputs);
    this.name = options.name;
    this.version = options.version;
    if (options.featureNames) this.featureNames = options.featureNames;
    if (options.classNames) this.classNames = options.classNames;
  }

  /**
   * Parses `model` (a file path, or the bytes) as an ONNX model and opens a session on it. A path
   * spares the process a copy of the whole model. Rejects, with a message that says how to fix
   * the export, bytes that are not ONNX and models whose inputs or outputs are not tensors.
   */
  static async load(model: string | Uint8Array, options: OnnxModelOptions): Promise<OnnxModel> {
    let session: ort.InferenceSession;
    try {
      session =
        typeof model === "string"
          ? await ort.InferenceSession.create(model, SESSION_OPTIONS)
          : await ort.InferenceSession.create(model, SESSION_OPTIONS);
    } catch (error) {
      throw new Error(
        `onnxruntime cannot load it as an ONNX model (${(error as Error).message.trim()}); ` +
          "export the model to ONNX (e.g. with skl2onnx or tf2onnx) and serve the .onnx file",
        { cause: error },
      );
    }
    try {
      const inputs = session.inputMetadata.map((meta) => specOf(meta, "input"));
      const outputs = session.outputMetadata.map((meta) => specOf(meta, "output"));
      return new OnnxModel(session, inputs, outputs, options);
    } catch (error) {
      await session.release();
      throw error;
    }
  }

  /**
   * Feeds each input converted to the element type the model declares (adapters may hand over
   * plain numbers), and returns every output. INT64 and UINT64 come back as bigint arrays, BOOL as
   * booleans, FP16 as the values widened to a Float32Array.
   */
  async predict(inputs: readonly Tensor[]): Promise<Tensor[]> {
    if (this.closing) throw new Error(`model ${this.name} is closed`);
    const feeds: Record<string, ort.Tensor> = {};
    for (const spec of this.inputs) {
      const tensor = inputs.find((input) => input.name === spec.name);
      if (!tensor) throw new Error(`model ${this.name} needs input ${spec.name}`);
      // Every spec of an ONNX model has a datatype; only the identity model's are open.
      const datatype = spec.datatype ?? tensor.datatype;
      feeds[spec.name] = toOrt(datatype, tensor);
    }
    const run = this.session.run(feeds);
    this.running.add(run);
    try {
      const results = await run.catch((error: unknown) => {
        throw refusedInput(error) ?? error;
      });
      return this.outputs.map(({ name }) => fromOrt(name, results[name]));
    } finally {
      this.running.delete(run);
    }
  }

  /** Waits for runs in flight, then frees the session; later calls are no-ops. */
  close(): Promise<void> {
    this.closing ??= Promise.allSettled([...this.running]).then(() => this.session.release());
    return this.closing;
  }
}

function specOf(meta: ort.InferenceSession.ValueMetadata, role: "input" | "output"): TensorSpec {
  if (!meta.isTensor) {
    throw new Error(
      `${role} "${meta.name}" is not a tensor (a sequence or map, such as skl2onnx's ZipMap ` +
        "output of class probabilities); this service serves tensors only: re-export the model " +
        "without ZipMap by passing options={id(model): {'zipmap': False}} to skl2onnx's " +
        "convert_sklearn / to_onnx",
    );
  }
  const datatype = FROM_ORT[meta.type];
  if (!datatype) {
    throw new Error(
      `${role} "${meta.name}" has element type ${meta.type}, which this service cannot ` +
        `exchange; re-export the model with ${role}s of type ${Object.keys(FROM_ORT).join(", ")}`,
    );
  }
  // Symbolic dims ("N", "unk__0", "batch_size") and unknown ones are dynamic.
  const shape = meta.shape.map((dim) => (typeof dim === "number" && dim >= 0 ? dim : -1));
  return { name: meta.name, datatype, shape };
}

/** `probabilities` (skl2onnx's classifiers), else the first floating output, else the first. */
function primaryOutputOf(outputs: readonly TensorSpec[]): string {
  const chosen =
    outputs.find((output) => output.name === "probabilities") ??
    outputs.find(
      (output) => output.datatype !== null && DATA_TYPE_INFO[output.datatype].kind === "float",
    ) ??
    outputs[0];
  if (!chosen) throw new Error("the model declares no outputs");
  return chosen.name;
}

function toOrt(datatype: DataType, tensor: Tensor): ort.Tensor {
  return new ort.Tensor(DATA_TYPE_INFO[datatype].ort, ortData(datatype, tensor.data), [
    ...tensor.shape,
  ]);
}

/** `data` in the array onnxruntime takes for `datatype`, converted where it is held otherwise. */
function ortData(datatype: DataType, data: TensorData): ort.Tensor.DataType | string[] {
  const { kind, array } = DATA_TYPE_INFO[datatype];
  switch (kind) {
    case "boolean":
      return Uint8Array.from(elements(data), (value) => (value ? 1 : 0));
    case "string":
      return Array.from(elements(data), String);
    case "bigint":
      return convertBig(data, array as BigIntArrayType<BigInt64Array | BigUint64Array>);
  }
  // onnxruntime takes float16 as raw bits.
  if (datatype === "FP16") return Uint16Array.from(numbers(data), toHalfBits);
  return convert(data, array as NumberArrayType<ort.Tensor.DataType>);
}

type Element = number | bigint | boolean | string;

function elements(data: TensorData): ArrayLike<Element> {
  return data;
}

/** Plain numbers for a number typed array; bigints, booleans and strings go through `Number`. */
function numbers(data: TensorData): ArrayLike<number> {
  const plain =
    !(data instanceof BigInt64Array || data instanceof BigUint64Array) &&
    (data.length === 0 || typeof data[0] === "number");
  return plain ? (data as ArrayLike<number>) : Array.from(elements(data), Number);
}

interface NumberArrayType<T> {
  new (length: number): T;
  from(source: ArrayLike<number>): T;
}

function convert<T>(data: TensorData, type: NumberArrayType<T>): T {
  return data instanceof type ? data : type.from(numbers(data));
}

interface BigIntArrayType<T> {
  new (length: number): T;
  from(source: ArrayLike<bigint>): T;
}

/** Integers become bigints exactly; a fractional number is a caller's bug and throws. */
function convertBig<T>(data: TensorData, type: BigIntArrayType<T>): T {
  if (data instanceof type) return data;
  return type.from(Array.from(elements(data), (value) => BigInt(value)));
}

function fromOrt(name: string, tensor: ort.Tensor): Tensor {
  const datatype = FROM_ORT[tensor.type] as DataType;
  const shape = [...tensor.dims];
  switch (tensor.type) {
    case "bool":
      return { name, datatype, shape, data: Array.from(tensor.data as Uint8Array, Boolean) };
    case "float16":
      return { name, datatype, shape, data: widenHalf(tensor.data) };
    default:
      return { name, datatype, shape, data: tensor.data };
  }
}

/** onnxruntime hands float16 out as raw bits, or as a Float16Array where the runtime has one. */
function widenHalf(data: ort.Tensor["data"]): Float32Array {
  if (data instanceof Uint16Array) return Float32Array.from(data, fromHalfBits);
  return Float32Array.from(data as ArrayLike<number>);
}

const float32 = new Float32Array(1);
const float32Bits = new Uint32Array(float32.buffer);

/** IEEE 754 binary16 bits of `value`, rounded to nearest even, as onnxruntime expects float16. */
export function toHalfBits(value: number): number {
  float32[0] = value;
  const bits = float32Bits[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = ((bits >>> 23) & 0xff) - 127 + 15;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff - 127 + 15) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  if (exponent >= 0x1f) return sign | 0x7c00;
  if (exponent <= 0) {
    // Subnormal in half precision: shift the implicit leading 1 in, round what falls off.
    if (exponent < -10) return sign;
    return sign | roundShift(mantissa | 0x800000, 14 - exponent);
  }
  // A carry out of the mantissa bumps the exponent, which is the right result (up to infinity).
  return sign | ((exponent << 10) + roundShift(mantissa, 13));
}

function roundShift(value: number, shift: number): number {
  const kept = value >>> shift;
  const rest = value & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return rest > half || (rest === half && kept & 1) ? kept + 1 : kept;
}

/** The number that binary16 `bits` encode. */
export function fromHalfBits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** How onnxruntime reports a kernel that failed on the values it was given. */
const KERNEL_FAILURE =
  /^Non-zero status code returned while running (\S+) node\. Name:'([^']*)' Status Message: ([^]*)$/;

/**
 * A kernel's failure on the request's values, as a {@link ModelInputError}; undefined for
 * anything else, and for running out of memory, which is the server's fault whatever the input.
 */
function refusedInput(error: unknown): ModelInputError | undefined {
  // Duck-typed: the native addon's errors need not share this context's Error.
  const message = (error as { message?: unknown } | undefined)?.message;
  const match = typeof message === "string" ? KERNEL_FAILURE.exec(message.trim()) : null;
  if (!match || /alloc|memory/i.test(match[3])) return undefined;
  const [, op, node, status] = match;
  return new ModelInputError(
    `the model cannot run on these values: its ${op} node "${node}" says: ${status.trim()}`,
  );
}
