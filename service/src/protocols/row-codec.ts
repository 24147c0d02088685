import { badRequest } from "../http/errors";
import type { Model, Tensor } from "../model/model";
import {
  decodeSingleInput,
  flattenNested,
  onlyInput,
  toTensor,
  type DecodeOptions,
} from "./tensor-codec";

/**
 * The row- and column-oriented request shapes that TensorFlow Serving introduced and KServe v1
 * and MLflow share (`instances`, `inputs`), plus MLflow's data frames: all end up as the model's
 * input tensors through the tensor codec.
 */

const isRecord = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === "object" && !Array.isArray(value);

const quoted = (names: readonly string[]): string => names.map((name) => `"${name}"`).join(", ");

/**
 * A table of rows under named (or unnamed) columns, as the model's one input. When the model ships
 * feature names, columns are picked and ordered by them, so clients may send columns in any order.
 */
export function decodeTable(
  model: Model,
  columns: readonly string[] | undefined,
  rows: unknown,
  field: string,
  options: DecodeOptions,
): Tensor {
  const spec = onlyInput(model, TABLE_ADVICE);
  const table = flattenNested(rows, field, spec);
  // An empty list is an empty batch, which the tensor codec words for every protocol alike.
  if (table.shape[0] === 0) return toTensor(spec, table, field, options);
  if (table.shape.length !== 2) {
    throw badRequest(
      `${field} must be a list of rows, each a list of column values, e.g. [[5.1, 3.5, 1.4, 0.2]]`,
    );
  }
  const [count, width] = table.shape;
  if (columns === undefined || columns.length === 0) return toTensor(spec, table, field, options);
  if (columns.length !== width) {
    throw badRequest(`${field} rows have ${width} values, but ${columns.length} columns are named`);
  }
  const features = model.featureNames;
  if (!features) return toTensor(spec, table, field, options);
  const missing = features.filter((name) => !columns.includes(name));
  if (missing.length > 0) {
    throw badRequest(
      `columns lack ${quoted(missing)}; model "${model.name}" takes the columns ${quoted(features)}`,
    );
  }
  const order = features.map((name) => columns.indexOf(name));
  const values = new Array<unknown>(count * features.length);
  for (let r = 0; r < count; r++) {
    for (let c = 0; c < order.length; c++)
      values[r * order.length + c] = table.values[r * width + order[c]];
  }
  return toTensor(spec, { shape: [count, features.length], values }, field, options);
}

const TABLE_ADVICE =
  "tables feed a model with one input; use the Open Inference Protocol v2 to send each input by name";

/** Records (`[{"column": value}]`) as rows; columns follow the model's feature names if known. */
export function decodeRecords(
  model: Model,
  records: readonly Record<string, unknown>[],
  field: string,
  options: DecodeOptions,
): Tensor {
  if (records.length === 0) {
    throw badRequest(`${field} is an empty batch: send at least one record`);
  }
  const columns = model.featureNames ?? Object.keys(records[0]);
  const rows = records.map((record, i) =>
    columns.map((column) => {
      if (!(column in record)) {
        throw badRequest(
          `${field}[${i}] lacks the column "${column}"; every record needs ${quoted(columns)}`,
        );
      }
      return record[column];
    }),
  );
  return decodeTable(model, undefined, rows, field, options);
}

/**
 * `instances`: a list of rows for a one-input model, or of objects keyed by input name (TF
 * Serving's row format), or, for a model with feature names, of records keyed by column.
 */
export function decodeInstances(
  model: Model,
  instances: readonly unknown[],
  field: string,
  options: DecodeOptions,
): Tensor[] {
  if (instances.length > 0 && instances.every(isRecord)) {
    const keys = Object.keys(instances[0]);
    if (model.featureNames && keys.some((key) => model.featureNames?.includes(key))) {
      return [decodeRecords(model, instances, field, options)];
    }
    return model.inputs.map((spec) => {
      const stacked = instances.map((instance, i) => {
        if (!(spec.name in instance)) {
          throw badRequest(
            `${field}[${i}] lacks the input "${spec.name}"; objects in ${field} are keyed by the model's inputs ${quoted(model.inputs.map((input) => input.name))}`,
          );
        }
        return instance[spec.name];
      });
      const name = `${field}[].${spec.name}`;
      return toTensor(spec, flattenNested(stacked, name, spec), name, options);
    });
  }
  return [decodeSingleInput(model, instances, field, options)];
}

/**
 * `inputs` (TF Serving's columnar format): the one input's rows, or an object with each input's
 * values by name, or, for a model with feature names, each column's values by column name.
 */
export function decodeColumnar(
  model: Model,
  inputs: unknown,
  field: string,
  options: DecodeOptions,
): Tensor[] {
  if (!isRecord(inputs)) return [decodeSingleInput(model, inputs, field, options)];
  const keys = Object.keys(inputs);
  const features = model.featureNames;
  if (features && keys.some((key) => features.includes(key))) {
    const columns = features.map((name) => {
      const column = inputs[name];
      if (!Array.isArray(column)) {
        throw badRequest(`${field}.${name} must be the list of that column's values, one per row`);
      }
      return column;
    });
    const count = columns[0].length;
    columns.forEach((column, c) => {
      if (column.length !== count) {
        throw badRequest(
          `${field}.${features[c]} has ${column.length} values, but ${field}.${features[0]} has ${count}; columns need one value per row`,
        );
      }
    });
    const rows = Array.from({ length: count }, (_, r) => columns.map((column) => column[r]));
    return [decodeTable(model, undefined, rows, field, options)];
  }
  return model.inputs.map((spec) => {
    if (!(spec.name in inputs)) {
      throw badRequest(
        `${field} lacks the input "${spec.name}"; its keys must be the model's inputs ${quoted(model.inputs.map((input) => input.name))}`,
      );
    }
    const name = `${field}.${spec.name}`;
    return toTensor(spec, flattenNested(inputs[spec.name], name, spec), name, options);
  });
}
