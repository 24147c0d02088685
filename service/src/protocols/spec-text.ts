import type { TensorSpec } from "../model/model";

/** How messages and the OpenAPI document show what the model takes. */

/** Formats a shape as the specs print it: `[-1, 4]`. */
export function formatShape(shape: readonly (number | null)[] | null): string {
  return shape === null ? "of any shape" : `[${shape.join(", ")}]`;
}

/** `the model's input "input" takes FP32 values of shape [-1, 4]` — appended to shape errors. */
export function specHint(spec: TensorSpec): string {
  const type = spec.datatype === null ? "" : ` ${spec.datatype}`;
  return `the model's input "${spec.name}" takes${type} values of shape ${formatShape(spec.shape)}`;
}
