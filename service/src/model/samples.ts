import { DATA_TYPE_INFO } from "./data-types";
import type { Model, Tensor, TensorSpec } from "./model";

/**
 * Made-up inputs for `model`, `rows` rows of each input starting at row `from`: what the warm-up
 * and the stacking check feed it. Values differ from row to row and column to column (so a model
 * that mixes rows answers differently when they are stacked) and stay small and in range for
 * every element type: 0.1 to 1.0 for floats, 0 to 4 for integers, alternating booleans, three
 * category strings. A dimension the model leaves open past the first is 1; an identity model's
 * open input is FP32 [rows, 1]. OnnxModel converts the plain numbers to the input's type.
 */
export function sampleInputs(model: Model, rows: number, from = 0): Tensor[] {
  return model.inputs.map((spec, input) => sampleTensor(spec, rows, from, input));
}

function sampleTensor(spec: TensorSpec, rows: number, from: number, input: number): Tensor {
  const datatype = spec.datatype ?? "FP32";
  const shape = spec.shape === null ? [rows, 1] : dims(spec.shape, rows);
  const rowSize = shape.slice(1).reduce((product, dim) => product * dim, 1);
  const length = shape.length === 0 ? 1 : shape[0] * rowSize;
  const at = (i: number) => (from + Math.floor(i / rowSize)) * 7 + (i % rowSize) * 3 + input;
  const kind = DATA_TYPE_INFO[datatype].kind;
  const data =
    kind === "string"
      ? Array.from({ length }, (_, i) => ["red", "green", "blue"][at(i) % 3])
      : kind === "boolean"
        ? Array.from({ length }, (_, i) => at(i) % 2 === 0)
        : kind === "float"
          ? Array.from({ length }, (_, i) => 0.1 + (at(i) % 10) / 10)
          : Array.from({ length }, (_, i) => at(i) % 5);
  return { name: spec.name, datatype, shape, data };
}

/** The spec's shape with `rows` for a dynamic first dimension and 1 for any other. */
function dims(shape: readonly number[], rows: number): number[] {
  return shape.map((dim, i) => (dim >= 0 ? dim : i === 0 ? rows : 1));
}
