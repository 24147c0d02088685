import type { Model } from "../model/model";
import { elementSchema } from "./elements";
import { columnNames } from "./table";
import { formatShape } from "./spec-text";

/**
 * JSON Schemas of what the served model takes, for the OpenAPI document: one row of its columns,
 * one record keyed by them, their names. Derived from the model's inputs and the same element rules
 * that decoding applies (`elements.ts`), so the document describes this model, not any model.
 */

type Schema = Record<string, unknown>;

/** The element type of each column, in the model's column order. */
function columnTypes(model: Model) {
  if (model.inputs.length === 1) {
    const { datatype, shape } = model.inputs[0];
    const width = shape?.length === 2 && shape[1] >= 0 ? shape[1] : undefined;
    return width === undefined ? undefined : Array.from({ length: width }, () => datatype);
  }
  return columnNames(model) ? model.inputs.map((spec) => spec.datatype) : undefined;
}

/** One row of the model's table, or `{}` when its input is not a table. */
export function rowSchema(model: Model): Schema {
  const types = columnTypes(model);
  if (!types) {
    const spec = model.inputs.length === 1 ? model.inputs[0] : undefined;
    return spec?.shape?.length === 1 ? elementSchema(spec.datatype) : {};
  }
  const names = columnNames(model);
  return {
    type: "array",
    prefixItems: types.map((datatype, c) => ({
      ...elementSchema(datatype),
      ...(names && { title: names[c] }),
    })),
    items: false,
    minItems: types.length,
    ...(names && { description: `The values of the columns ${names.join(", ")}, in this order.` }),
  };
}

/** One record keyed by the model's column names, when it names its columns. */
export function recordSchema(model: Model): Schema {
  const names = columnNames(model);
  const types = columnTypes(model);
  if (!names || !types) return { type: "object" };
  return {
    type: "object",
    properties: Object.fromEntries(names.map((name, c) => [name, elementSchema(types[c])])),
    required: [...names],
    additionalProperties: false,
  };
}

/** The model's column names, any order, when it names its columns. */
export function namesSchema(model: Model): Schema {
  const names = columnNames(model);
  return names
    ? { type: "array", items: { enum: [...names] }, uniqueItems: true }
    : { type: "array", items: { type: "string" }, uniqueItems: true };
}

/**
 * `schema` with `extra` merged into the property at `path` (`["data", "ndarray"]`): how a
 * protocol's generic request schema is narrowed to this model.
 */
export function narrow(schema: Schema, path: readonly string[], extra: Schema): Schema {
  let node = schema;
  for (const key of path) {
    const properties = node.properties as Record<string, Schema> | undefined;
    const next = properties?.[key];
    if (!next) throw new Error(`the request schema has no property ${path.join(".")}`);
    node = next;
  }
  Object.assign(node, extra);
  return schema;
}

/**
 * A v2 request's `inputs` narrowed to the model's: at least one tensor per input, each named as an
 * input with that input's datatype and elements.
 */
export function narrowInputs(schema: Schema, model: Model): Schema {
  const typed = model.inputs.filter((spec) => spec.datatype !== null);
  const inputs = (schema.properties as Record<string, Schema>).inputs;
  inputs.minItems = model.inputs.length;
  if (typed.length === 0) return schema;
  Object.assign(inputs.items as Schema, {
    anyOf: typed.map((spec) => ({
      properties: {
        name: { const: spec.name },
        datatype: { const: spec.datatype },
        data: {
          type: "array",
          items: { anyOf: [elementSchema(spec.datatype), { type: "array" }] },
        },
      },
      description: `Input "${spec.name}": ${spec.datatype}, shape ${formatShape(spec.shape)}.`,
    })),
  });
  return schema;
}
