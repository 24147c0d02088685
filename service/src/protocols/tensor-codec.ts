import { badRequest, ApiError } from "../http/errors";
import type { DataType, Model, Tensor, TensorData, TensorSpec } from "../model/model";

/**
 * Turns JSON values into the model's tensors and back. Every check a protocol needs on tensor
 * contents lives here, so all protocols reject the same mistakes with the same words.
 */

/** Deeper nesting is a malformed request, and walking it recursively could exhaust the stack. */
const MAX_RANK = 32;
const FP32_MAX = 3.4028234663852886e38;
const FP16_MAX = 65504;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
const DIGITS = /^-?\d+$/;

/** The elements of nested JSON arrays in row-major order, with the arrays' dimensions. */
export interface NestedValues {
  readonly shape: number[];
  readonly values: unknown[];
  /** The values arrived flat, so messages point at `data[6]` rather than `data[1][2]`. */
  readonly flat?: boolean;
}

/** How limits and the model's declaration constrain one decoded tensor. */
export interface DecodeOptions {
  /** Most rows (first dimension) allowed. */
  readonly maxBatchSize: number;
  /** Element type the client declared (v2); otherwise taken from the spec or the values. */
  readonly datatype?: DataType;
}

/** Formats a shape as the specs print it: `[-1, 4]`. */
export function formatShape(shape: readonly (number | null)[] | null): string {
  return shape === null ? "of any shape" : `[${shape.join(", ")}]`;
}

/** `the model's input "input" has shape [-1, 4]` — the hint appended to shape errors. */
function specHint(spec: TensorSpec): string {
  const type = spec.datatype === null ? "" : ` ${spec.datatype}`;
  return `the model's input "${spec.name}" takes${type} values of shape ${formatShape(spec.shape)}`;
}

/**
 * Flattens nested JSON arrays, checking that they are rectangular. `field` names the value in
 * messages (`X`, `data.ndarray`); `spec`, when given, adds what the model expects.
 */
export function flattenNested(value: unknown, field: string, spec?: TensorSpec): NestedValues {
  const hint = spec ? ` (${specHint(spec)})` : "";
  if (!Array.isArray(value)) {
    throw badRequest(`${field} must be an array of values or of rows${hint}`);
  }
  const shape: number[] = [];
  let probe: unknown = value;
  while (Array.isArray(probe)) {
    if (shape.length === MAX_RANK) {
      throw badRequest(`${field} is nested more than ${MAX_RANK} arrays deep${hint}`);
    }
    shape.push(probe.length);
    probe = probe[0];
  }
  const values: unknown[] = [];
  const walk = (node: unknown[], depth: number, path: string): void => {
    if (node.length !== shape[depth]) {
      const what =
        depth === 1 && shape.length === 2 ? `row ${path.slice(field.length + 1, -1)}` : path;
      throw badRequest(
        `${field} must be a rectangular array: ${what} has ${node.length} values, expected ${shape[depth]} like the first${hint}`,
      );
    }
    const last = depth === shape.length - 1;
    for (let i = 0; i < node.length; i++) {
      const child = node[i];
      if (Array.isArray(child) !== !last) {
        throw badRequest(
          `${field} must be a rectangular array: ${path}[${i}] is ${last ? "an array" : "a single value"}, but ${field}${"[0]".repeat(depth + 1)} is ${last ? "a single value" : "an array"}${hint}`,
        );
      }
      if (last) values.push(child);
      else walk(child as unknown[], depth + 1, `${path}[${i}]`);
    }
  };
  walk(value, 0, field);
  return { shape, values };
}

/**
 * Values sent with an explicit shape (Seldon's `tensor`, v2's `data`): either flat in row-major
 * order, with as many values as the shape needs, or nested exactly as the shape says.
 */
export function shapedValues(
  shape: readonly number[],
  data: unknown[],
  field: string,
  shapeField: string,
): NestedValues {
  if (data.some(Array.isArray)) {
    const nested = flattenNested(data, field);
    if (nested.shape.length !== shape.length || nested.shape.some((dim, d) => dim !== shape[d])) {
      throw badRequest(
        `${field} is nested as shape ${formatShape(nested.shape)}, but ${shapeField} is ${formatShape(shape)}; send the values flat in row-major order or nested as ${shapeField} says`,
      );
    }
    return nested;
  }
  const needed = shape.reduce((product, dim) => product * dim, 1);
  if (needed !== data.length) {
    throw badRequest(
      `${field} has ${data.length} values, but ${shapeField} ${formatShape(shape)} needs ${needed}`,
    );
  }
  return { shape: [...shape], values: data, flat: true };
}

/** The path of the flat element `index` in a tensor of `shape`, e.g. `X[1][2]`. */
function elementPath(
  field: string,
  shape: readonly number[],
  index: number,
  nested: boolean,
): string {
  if (!nested || shape.length <= 1) return `${field}[${index}]`;
  const parts: number[] = [];
  let rest = index;
  for (let d = shape.length - 1; d >= 0; d--) {
    parts.unshift(rest % shape[d]);
    rest = Math.floor(rest / shape[d]);
  }
  return field + parts.map((p) => `[${p}]`).join("");
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") {
    const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value;
    return `the string ${JSON.stringify(shown)}`;
  }
  if (typeof value === "object") return "an object";
  return String(value);
}

/** Element types that a JSON value without a declared type is taken as. */
function inferDataType(first: unknown, field: string): DataType {
  if (typeof first === "number") return "FP64";
  if (typeof first === "boolean") return "BOOL";
  if (typeof first === "string") return "BYTES";
  throw badRequest(
    `${field}[0] is ${describe(first)}; values must be numbers, booleans or strings`,
  );
}

const INTEGER_RANGES: Partial<Record<DataType, readonly [number, number]>> = {
  INT8: [-128, 127],
  INT16: [-32768, 32767],
  INT32: [-2147483648, 2147483647],
  UINT8: [0, 255],
  UINT16: [0, 65535],
  UINT32: [0, 4294967295],
};

/** A freshly allocated tensor buffer, written element by element before it is frozen as data. */
type WritableData = { [index: number]: unknown; readonly length: number };

function allocate(datatype: DataType, length: number): WritableData {
  switch (datatype) {
    case "INT8":
      return new Int8Array(length);
    case "INT16":
      return new Int16Array(length);
    case "INT32":
      return new Int32Array(length);
    case "UINT8":
      return new Uint8Array(length);
    case "UINT16":
      return new Uint16Array(length);
    case "UINT32":
      return new Uint32Array(length);
    case "INT64":
      return new BigInt64Array(length);
    case "UINT64":
      return new BigUint64Array(length);
    case "FP32":
      return new Float32Array(length);
    case "FP64":
      return new Float64Array(length);
    // FP16 has no typed array in Node 20; the runtime adapter converts plain numbers.
    case "FP16":
      return new Array<number>(length);
    case "BOOL":
      return new Array<boolean>(length);
    case "BYTES":
      return new Array<string>(length);
  }
}

/**
 * Converts one JSON element to `datatype`, or explains why it cannot be. Returns the converted
 * value; `where` names the element for the message.
 */
function convertElement(value: unknown, datatype: DataType, where: () => string): unknown {
  const refuse = (expected: string): never => {
    const nanHint =
      typeof value === "string" && /^[+-]?(nan|inf(inity)?)$/i.test(value.trim())
        ? "; JSON has no NaN or Infinity, and they cannot be scored"
        : "";
    throw badRequest(`${where()} is ${describe(value)}, expected ${expected}${nanHint}`);
  };
  switch (datatype) {
    case "BOOL":
      return typeof value === "boolean" ? value : refuse("true or false (BOOL)");
    case "BYTES":
      return typeof value === "string" ? value : refuse("a string (BYTES)");
    case "INT64":
    case "UINT64": {
      let big: bigint;
      if (typeof value === "number" && Number.isSafeInteger(value)) big = BigInt(value);
      else if (typeof value === "string" && DIGITS.test(value)) big = BigInt(value);
      else if (typeof value === "number" && Number.isInteger(value)) {
        return refuse(
          `an integer (${datatype}); integers beyond ±2^53 must be sent as strings of digits`,
        );
      } else return refuse(`an integer (${datatype})`);
      const [min, max] = datatype === "INT64" ? [INT64_MIN, INT64_MAX] : [0n, UINT64_MAX];
      if (big < min || big > max) return refuse(`an integer in the range of ${datatype}`);
      return big;
    }
  }
  if (typeof value !== "number") return refuse(`a number (${datatype})`);
  if (!Number.isFinite(value)) return refuse(`a finite number (${datatype})`);
  const range = INTEGER_RANGES[datatype];
  if (range) {
    if (!Number.isInteger(value)) return refuse(`an integer (${datatype})`);
    if (value < range[0] || value > range[1]) {
      return refuse(`an integer from ${range[0]} to ${range[1]} (${datatype})`);
    }
    return value;
  }
  if (datatype === "FP32" && Math.abs(value) > FP32_MAX)
    return refuse("a number within FP32's range");
  if (datatype === "FP16" && Math.abs(value) > FP16_MAX)
    return refuse("a number within FP16's range");
  return value;
}

/**
 * Checks decoded values against the model's input `spec` and the batch limit, and converts them to
 * the spec's element type. `field` names the values in messages.
 */
export function toTensor(
  spec: TensorSpec,
  { shape, values, flat }: NestedValues,
  field: string,
  options: DecodeOptions,
): Tensor {
  const hint = specHint(spec);
  if (values.length === 0) {
    throw badRequest(
      shape[0] === 0
        ? `${field} is an empty batch: send at least one row (${hint})`
        : `${field} has no values (shape ${formatShape(shape)}); send at least one value per row (${hint})`,
    );
  }
  if (spec.shape !== null) {
    if (shape.length !== spec.shape.length) {
      const oneRow =
        spec.shape.length === shape.length + 1 && shape.length >= 1
          ? `; for one row send [${"[".repeat(shape.length)}...${"]".repeat(shape.length)}]`
          : "";
      throw badRequest(
        `${field} has ${shape.length} dimension${shape.length === 1 ? "" : "s"} (shape ${formatShape(shape)}), expected ${spec.shape.length} (${hint})${oneRow}`,
      );
    }
    spec.shape.forEach((dim, d) => {
      if (dim >= 0 && shape[d] !== dim) {
        const what =
          d === shape.length - 1 && d > 0
            ? `each row of ${field} has ${shape[d]} values, expected ${dim}`
            : `dimension ${d} of ${field} is ${shape[d]}, expected ${dim}`;
        throw badRequest(`${what} (${hint})`);
      }
    });
  }
  if (shape.length >= 1 && shape[0] > options.maxBatchSize) {
    throw new ApiError(
      413,
      `${field} has ${shape[0]} rows, over this server's limit of ${options.maxBatchSize} rows per request; split the batch`,
    );
  }
  if (
    spec.datatype !== null &&
    options.datatype !== undefined &&
    options.datatype !== spec.datatype
  ) {
    throw badRequest(`${field} has datatype ${options.datatype}, but ${hint}`);
  }
  const datatype = spec.datatype ?? options.datatype ?? inferDataType(values[0], field);
  const data = allocate(datatype, values.length);
  for (let i = 0; i < values.length; i++) {
    data[i] = convertElement(values[i], datatype, () => elementPath(field, shape, i, !flat));
  }
  return { name: spec.name, datatype, shape, data: data as TensorData };
}

/**
 * Decodes nested arrays for a model that takes one input, the case of every protocol that sends a
 * bare array (`/score`, Seldon v1, KServe v1, MLflow).
 */
export function decodeSingleInput(
  model: Model,
  value: unknown,
  field: string,
  options: DecodeOptions,
  advice = "use the Open Inference Protocol v2 (POST /v2/models/{name}/infer) to send each input by name",
): Tensor {
  const spec = onlyInput(model, advice);
  return toTensor(spec, flattenNested(value, field, spec), field, options);
}

/** The model's one input; models with several need a protocol that names inputs. */
export function onlyInput(model: Model, advice: string): TensorSpec {
  if (model.inputs.length !== 1) {
    const names = model.inputs.map((input) => `"${input.name}"`).join(", ");
    throw badRequest(
      `model "${model.name}" takes ${model.inputs.length} inputs (${names}); ${advice}`,
    );
  }
  return model.inputs[0];
}

/** Runs the model and picks the output that single-answer protocols return. */
export async function predictPrimary(model: Model, inputs: readonly Tensor[]): Promise<Tensor> {
  const outputs = await model.predict(inputs);
  const primary = outputs.find((output) => output.name === model.primaryOutput);
  // A model that does not return what it declared is a server fault, not the client's.
  if (!primary) throw new Error(`model returned no output named "${model.primaryOutput}"`);
  return primary;
}

/**
 * Prints a float32 with the fewest digits that read back as the same float32, so 0.97 is sent as
 * 0.97 rather than 0.9700000286102295.
 */
function shortestFloat32(value: number): number {
  if (!Number.isFinite(value) || Number.isSafeInteger(value)) return value;
  for (let digits = 6; digits < 9; digits++) {
    const candidate = Number(value.toPrecision(digits));
    if (Math.fround(candidate) === value) return candidate;
  }
  return Number(value.toPrecision(9));
}

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A 64-bit integer as JSON: a number, or a string of digits where a number would round. */
function jsonBigInt(value: bigint): number | string {
  return value >= MIN_SAFE && value <= MAX_SAFE ? Number(value) : value.toString();
}

/** The tensor's elements in row-major order, as JSON values. */
export function encodeFlat(tensor: Tensor): unknown[] {
  const { data } = tensor;
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    return Array.from(data, jsonBigInt);
  }
  if (data instanceof Float32Array) return Array.from(data, shortestFloat32);
  return Array.from(data as ArrayLike<unknown>);
}

/** The tensor as nested JSON arrays following its shape; a rank-0 tensor is its one value. */
export function encodeNested(tensor: Tensor): unknown {
  const flat = encodeFlat(tensor);
  if (tensor.shape.length === 0) return flat[0];
  let offset = 0;
  const build = (depth: number): unknown[] => {
    const size = tensor.shape[depth];
    if (depth === tensor.shape.length - 1) {
      const slice = flat.slice(offset, offset + size);
      offset += size;
      return slice;
    }
    const out = new Array<unknown>(size);
    for (let i = 0; i < size; i++) out[i] = build(depth + 1);
    return out;
  };
  return build(0);
}
