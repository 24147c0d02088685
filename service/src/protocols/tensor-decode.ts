import { ApiError, badRequest } from "../http/errors";
import { DATA_TYPE_INFO } from "../model/data-types";
import type { DataType, Tensor, TensorData, TensorSpec } from "../model/model";
import { convertElement, fromText, inferDataType, isNumberText } from "./elements";
import { formatShape, specHint } from "./spec-text";

/**
 * Turns JSON values into the model's tensors: nested or shaped arrays into flat values, then
 * values checked against the model's input and converted to its element type. Every check a
 * protocol needs on tensor contents lives here (and in `elements.ts`), so all protocols reject
 * the same mistakes with the same words.
 */

/** Deeper nesting is a malformed request, and walking it recursively could exhaust the stack. */
export const MAX_RANK = 32;

/** The elements of a tensor-to-be in row-major order, with its dimensions. */
export interface NestedValues {
  readonly shape: readonly number[];
  readonly values: readonly unknown[];
  /** Where element `index` was in the request, for messages: `X[1][2]`, `data[6]`. */
  readonly at: (index: number) => string;
  /** `at` already names each element's column (records, columns by name). */
  readonly named?: boolean;
}

/** How limits and the model's declaration constrain one decoded tensor. */
export interface DecodeOptions {
  /** Most rows (first dimension) allowed. */
  readonly maxBatchSize: number;
  /** Element type the client declared (v2); otherwise taken from the spec or the values. */
  readonly datatype?: DataType;
  /** The values are text (CSV cells): numbers and booleans are read from it. */
  readonly text?: boolean;
}

/** The path of flat element `index` in nested arrays of `shape`, e.g. `X[1][2]`. */
function nestedPath(field: string, shape: readonly number[], index: number): string {
  if (shape.length <= 1) return `${field}[${index}]`;
  const parts: number[] = [];
  let rest = index;
  for (let d = shape.length - 1; d >= 0; d--) {
    parts.unshift(rest % shape[d]);
    rest = Math.floor(rest / shape[d]);
  }
  return field + parts.map((p) => `[${p}]`).join("");
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
  return { shape, values, at: (index) => nestedPath(field, shape, index) };
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
  return { shape: [...shape], values: data, at: (index) => `${field}[${index}]` };
}

/** Checks `shape` against the spec's rank and fixed dimensions. */
function checkShape(spec: TensorSpec, shape: readonly number[], field: string): void {
  if (spec.shape === null) return;
  const hint = specHint(spec);
  if (shape.length !== spec.shape.length) {
    const fix =
      spec.shape.length === shape.length + 1 && shape.length >= 1
        ? spec.shape[spec.shape.length - 1] === 1
          ? `; send shape ${formatShape([...shape, 1])}`
          : `; for one row send [${"[".repeat(shape.length)}...${"]".repeat(shape.length)}]`
        : "";
    throw badRequest(
      `${field} has ${shape.length} dimension${shape.length === 1 ? "" : "s"} (shape ${formatShape(shape)}), expected ${spec.shape.length} (${hint})${fix}`,
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

/** The element type to decode into: the model's, else the client's, else the first value's. */
function targetType(
  spec: TensorSpec,
  { values, at }: NestedValues,
  field: string,
  options: DecodeOptions,
): DataType {
  if (spec.datatype !== null) {
    if (options.datatype !== undefined && options.datatype !== spec.datatype) {
      throw badRequest(`${field} has datatype ${options.datatype}, but ${specHint(spec)}`);
    }
    return spec.datatype;
  }
  if (options.datatype) return options.datatype;
  const first = values[0];
  if (options.text && typeof first === "string") return isNumberText(first) ? "FP64" : "BYTES";
  return inferDataType(first, at(0));
}

/**
 * Checks decoded values against the model's input `spec` and the batch limit, and converts them to
 * the spec's element type. `field` names the values in messages.
 */
export function toTensor(
  spec: TensorSpec,
  table: NestedValues,
  field: string,
  options: DecodeOptions,
): Tensor {
  const { shape, values, at } = table;
  if (values.length === 0) {
    throw badRequest(
      shape[0] === 0
        ? `${field} is an empty batch: send at least one row (${specHint(spec)})`
        : `${field} has no values (shape ${formatShape(shape)}); send at least one value per row (${specHint(spec)})`,
    );
  }
  checkShape(spec, shape, field);
  if (shape.length >= 1 && shape[0] > options.maxBatchSize) {
    throw new ApiError(
      413,
      `${field} has ${shape[0]} rows, over this server's limit of ${options.maxBatchSize} rows per request; split the batch`,
    );
  }
  const datatype = targetType(spec, table, field, options);
  const data = new DATA_TYPE_INFO[datatype].array(values.length);
  for (let i = 0; i < values.length; i++) {
    const value =
      options.text && typeof values[i] === "string"
        ? fromText(values[i] as string, datatype)
        : values[i];
    data[i] = convertElement(value, datatype, () => at(i));
  }
  return { name: spec.name, datatype, shape: [...shape], data: data as TensorData };
}
