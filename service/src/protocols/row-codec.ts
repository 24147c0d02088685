import { badRequest } from "../http/errors";
import type { Model, Tensor } from "../model/model";
import { quote } from "./quote";
import { columnNames, decodeRows, decodeTable, listNames } from "./table";
import { flattenNested, toTensor, type DecodeOptions } from "./tensor-decode";

/**
 * The row- and column-oriented request shapes that TensorFlow Serving introduced and KServe v1
 * and MLflow share (`instances`, `inputs`), plus MLflow's records: all end up as a table of the
 * model's columns (`table.ts`), or, keyed by input name, as each input's tensor.
 */

const isRecord = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === "object" && !Array.isArray(value);

/** Keys that name the model's columns rather than its inputs. */
function keyedByColumn(model: Model, keys: readonly string[]): boolean {
  const columns = columnNames(model);
  return columns !== undefined && keys.some((key) => columns.includes(key));
}

/**
 * Records (`[{"column": value}]`) as rows of the model's columns; a model that does not name its
 * columns takes the first record's keys, in their order, as the columns of every record.
 */
export function decodeRecords(
  model: Model,
  records: readonly Record<string, unknown>[],
  field: string,
  options: DecodeOptions,
): Tensor[] {
  if (records.length === 0) {
    throw badRequest(`${field} is an empty batch: send at least one record`);
  }
  const expected = columnNames(model);
  const columns = expected ?? Object.keys(records[0]);
  const known = new Set(columns);
  const needs = expected
    ? `model "${model.name}" takes the columns ${listNames(columns)}`
    : `every record needs the columns of ${field}[0]`;
  const values: unknown[] = [];
  records.forEach((record, i) => {
    const unknown = Object.keys(record).find((key) => !known.has(key));
    if (unknown !== undefined) {
      throw badRequest(`${field}[${i}] has the unknown column ${quote(unknown)}; ${needs}`);
    }
    for (const column of columns) {
      // Own keys only: a record without "constructor" must not read Object's.
      if (!Object.hasOwn(record, column)) {
        throw badRequest(`${field}[${i}] lacks the column ${quote(column)}; ${needs}`);
      }
      values.push(record[column]);
    }
  });
  const width = columns.length;
  const at = (index: number) =>
    `${field}[${Math.floor(index / width)}][${quote(columns[index % width])}]`;
  return decodeTable(
    model,
    { shape: [records.length, width], values, at, named: true },
    undefined,
    field,
    options,
  );
}

const inputList = (model: Model): string => listNames(model.inputs.map((spec) => spec.name));

/** Objects keyed by input name, one per row (TensorFlow Serving's row format). */
function decodeByInput(
  model: Model,
  instances: readonly Record<string, unknown>[],
  field: string,
  options: DecodeOptions,
): Tensor[] {
  const names = new Set(model.inputs.map((spec) => spec.name));
  instances.forEach((instance, i) => {
    const unknown = Object.keys(instance).find((key) => !names.has(key));
    if (unknown !== undefined) {
      throw badRequest(
        `${field}[${i}] has the unknown key ${quote(unknown)}; objects in ${field} are keyed by the model's inputs ${inputList(model)}`,
      );
    }
  });
  return model.inputs.map((spec) => {
    const stacked = instances.map((instance, i) => {
      if (!Object.hasOwn(instance, spec.name)) {
        throw badRequest(
          `${field}[${i}] lacks the input "${spec.name}"; objects in ${field} are keyed by the model's inputs ${inputList(model)}`,
        );
      }
      return instance[spec.name];
    });
    const name = `${field}[].${spec.name}`;
    return toTensor(spec, flattenNested(stacked, name, spec), name, options);
  });
}

/**
 * `instances`: rows of the model's columns, or records keyed by column, or objects keyed by input
 * name (TensorFlow Serving's row format).
 */
export function decodeInstances(
  model: Model,
  instances: readonly unknown[],
  field: string,
  options: DecodeOptions,
): Tensor[] {
  if (instances.length > 0 && instances.every(isRecord)) {
    return keyedByColumn(model, Object.keys(instances[0]))
      ? decodeRecords(model, instances, field, options)
      : decodeByInput(model, instances, field, options);
  }
  return decodeRows(model, instances, undefined, field, options);
}

/** `{"column": [values, one per row]}` as rows of the model's columns. */
function decodeColumns(
  model: Model,
  columns: readonly string[],
  inputs: Record<string, unknown>,
  field: string,
  options: DecodeOptions,
): Tensor[] {
  const unknown = Object.keys(inputs).find((key) => !columns.includes(key));
  if (unknown !== undefined) {
    throw badRequest(
      `${field} has the unknown column ${quote(unknown)}; model "${model.name}" takes the columns ${listNames(columns)}`,
    );
  }
  const lists = columns.map((name) => {
    const list = Object.hasOwn(inputs, name) ? inputs[name] : undefined;
    if (!Array.isArray(list)) {
      throw badRequest(
        `${field}.${name} must be the list of that column's values, one per row; model "${model.name}" takes the columns ${listNames(columns)}`,
      );
    }
    return list as unknown[];
  });
  const count = lists[0].length;
  lists.forEach((list, c) => {
    if (list.length !== count) {
      throw badRequest(
        `${field}.${columns[c]} has ${list.length} values, but ${field}.${columns[0]} has ${count}; columns need one value per row`,
      );
    }
  });
  const width = columns.length;
  const values = new Array<unknown>(count * width);
  for (let r = 0; r < count; r++)
    for (let c = 0; c < width; c++) values[r * width + c] = lists[c][r];
  const at = (index: number) => `${field}.${columns[index % width]}[${Math.floor(index / width)}]`;
  return decodeTable(
    model,
    { shape: [count, width], values, at, named: true },
    undefined,
    field,
    options,
  );
}

/**
 * `inputs` (TensorFlow Serving's columnar format): rows of the model's columns, or each column's
 * values by column name, or each input's values by input name.
 */
export function decodeColumnar(
  model: Model,
  inputs: unknown,
  field: string,
  options: DecodeOptions,
): Tensor[] {
  if (!isRecord(inputs)) return decodeRows(model, inputs, undefined, field, options);
  const columns = columnNames(model);
  if (columns && keyedByColumn(model, Object.keys(inputs))) {
    return decodeColumns(model, columns, inputs, field, options);
  }
  const names = new Set(model.inputs.map((spec) => spec.name));
  const unknown = Object.keys(inputs).find((key) => !names.has(key));
  if (unknown !== undefined) {
    throw badRequest(
      `${field} has the unknown key ${quote(unknown)}; its keys must be the model's inputs ${inputList(model)}`,
    );
  }
  return model.inputs.map((spec) => {
    if (!Object.hasOwn(inputs, spec.name)) {
      throw badRequest(
        `${field} lacks the input "${spec.name}"; its keys must be the model's inputs ${inputList(model)}`,
      );
    }
    const name = `${field}.${spec.name}`;
    return toTensor(spec, flattenNested(inputs[spec.name], name, spec), name, options);
  });
}
