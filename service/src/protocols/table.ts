import { badRequest } from "../http/errors";
import type { Model, Tensor, TensorSpec } from "../model/model";
import { quote, quoteAll } from "./quote";
import { formatShape } from "./spec-text";
import { flattenNested, toTensor, type DecodeOptions, type NestedValues } from "./tensor-decode";

/**
 * A model seen as a table's columns, the contract of every protocol that sends rows (`/score`,
 * Seldon v1, KServe v1, MLflow): either the columns of its one input (named by the model's feature
 * names when it ships them), or one input per column, as skl2onnx exports a pipeline over a pandas
 * DataFrame, each with its own element type. Rows name their columns or follow the model's order.
 */

/** An input that holds one column per row: shape [-1] or [-1, 1]. */
function isColumn(spec: TensorSpec): boolean {
  const { shape } = spec;
  return shape !== null && (shape.length === 1 || (shape.length === 2 && shape[1] === 1));
}

/** The model's column names in its order, when known. */
export function columnNames(model: Model): readonly string[] | undefined {
  if (model.inputs.length === 1) return model.featureNames;
  return model.inputs.every(isColumn) ? model.inputs.map((spec) => spec.name) : undefined;
}

/** The model's own names, listed in full: the client needs all of them to fix a request. */
export const listNames = (names: readonly string[]): string =>
  names.map((name) => JSON.stringify(name)).join(", ");

function describeInputs(model: Model): string {
  return model.inputs.map((spec) => `"${spec.name}" ${formatShape(spec.shape)}`).join(", ");
}

/** The advice for a model whose inputs no table can feed. */
export function namedInputsAdvice(model: Model): string {
  return (
    `model "${model.name}" takes ${model.inputs.length} inputs (${describeInputs(model)}), ` +
    `not one column each, so rows cannot feed it; send each input by name with the Open ` +
    `Inference Protocol v2 (POST /v2/models/${model.name}/infer)`
  );
}

function firstDuplicate(names: readonly string[]): string | undefined {
  const seen = new Set<string>();
  return names.find((name) => seen.has(name) || !seen.add(name));
}

/**
 * Checks the column names a client sent (`names`, `columns`, a CSV header) and reorders the rows'
 * values into the model's column order when the model knows its names.
 */
function orderColumns(
  model: Model,
  table: NestedValues,
  names: readonly string[],
  field: string,
  namesField: string,
): NestedValues {
  if (table.values.length === 0) return table;
  if (table.shape.length !== 2) {
    throw badRequest(
      `${namesField} names the columns of rows, but ${field} is not a list of rows (shape ${formatShape(table.shape)})`,
    );
  }
  const duplicate = firstDuplicate(names);
  if (duplicate !== undefined) {
    throw badRequest(`${namesField} names the column ${quote(duplicate)} twice`);
  }
  const [count, width] = table.shape;
  if (names.length !== width) {
    throw badRequest(
      `${namesField} has ${names.length} names, but each row of ${field} has ${width} values`,
    );
  }
  const expected = columnNames(model);
  if (!expected) return table;
  const given = new Set(names);
  const known = new Set(expected);
  const unknown = names.filter((name) => !known.has(name));
  const missing = expected.filter((name) => !given.has(name));
  if (unknown.length > 0 || missing.length > 0) {
    const problems = [
      unknown.length > 0 ? `has the unknown columns ${quoteAll(unknown)}` : "",
      missing.length > 0 ? `lacks ${listNames(missing)}` : "",
    ];
    throw badRequest(
      `${namesField} ${problems.filter(Boolean).join(" and ")}; model "${model.name}" takes the columns ${listNames(expected)}`,
    );
  }
  const order = expected.map((name) => names.indexOf(name));
  if (order.every((from, to) => from === to)) return table;
  const values = new Array<unknown>(table.values.length);
  const source = (index: number) => Math.floor(index / width) * width + order[index % width];
  for (let i = 0; i < values.length; i++) values[i] = table.values[source(i)];
  return {
    shape: [count, width],
    values,
    at: (index) => table.at(source(index)),
    named: table.named,
  };
}

/** Splits a table in the model's column order into one tensor per input. */
function columnTensors(
  model: Model,
  table: NestedValues,
  field: string,
  options: DecodeOptions,
): Tensor[] {
  const [count, width] = table.shape;
  return model.inputs.map((spec, c) => {
    const values = Array.from({ length: count }, (_, r) => table.values[r * width + c]);
    const shape = spec.shape?.length === 1 ? [count] : [count, 1];
    const column = table.named ? "" : ` (column "${spec.name}")`;
    const at = (r: number) => `${table.at(r * width + c)}${column}`;
    return toTensor(spec, { shape, values, at }, field, options);
  });
}

/**
 * The model's input tensors from a table: rows of values under the column `names` the client
 * sent (any order), or in the model's column order when it sent none. `field` names the rows in
 * messages, `namesField` the names.
 */
export function decodeTable(
  model: Model,
  table: NestedValues,
  names: readonly string[] | undefined,
  field: string,
  options: DecodeOptions,
  namesField = "names",
): Tensor[] {
  const ordered = names ? orderColumns(model, table, names, field, namesField) : table;
  if (model.inputs.length === 1) return [toTensor(model.inputs[0], ordered, field, options)];
  const columns = columnNames(model);
  if (!columns) throw badRequest(namedInputsAdvice(model));
  if (ordered.values.length === 0) {
    throw badRequest(`${field} is an empty batch: send at least one row`);
  }
  if (ordered.shape.length !== 2 || ordered.shape[1] !== columns.length) {
    const got =
      ordered.shape.length === 2
        ? `each row of ${field} has ${ordered.shape[1]} values`
        : `${field} has shape ${formatShape(ordered.shape)}`;
    throw badRequest(
      `${got}, expected rows of ${columns.length} values: the columns ${listNames(columns)}`,
    );
  }
  return columnTensors(model, ordered, field, options);
}

/** `decodeTable` for rows sent as nested JSON arrays. */
export function decodeRows(
  model: Model,
  rows: unknown,
  names: readonly string[] | undefined,
  field: string,
  options: DecodeOptions,
  namesField = "names",
): Tensor[] {
  const spec = model.inputs.length === 1 ? model.inputs[0] : undefined;
  const table = flattenNested(rows, field, spec);
  return decodeTable(model, table, names, field, options, namesField);
}
