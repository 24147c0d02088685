import { badRequest } from "../http/errors";
import { DATA_TYPE_INFO } from "../model/data-types";
import type { Model, Tensor, TensorData } from "../model/model";
import { shortestFloat32 } from "./tensor-encode";

/**
 * Running the model for a protocol, and refusing answers that are not numbers: a model fed values
 * far outside what it was trained on can answer NaN or Infinity, which JSON cannot carry (they
 * would leave as `null`) and which no client should take for a prediction.
 */

const isFloating = (data: TensorData): data is Float32Array | Float64Array | readonly number[] =>
  data instanceof Float32Array ||
  data instanceof Float64Array ||
  (Array.isArray(data) && typeof data[0] === "number");

/** Elements per row (first dimension) of a tensor; the whole tensor when it has no rows. */
const rowSize = ({ shape }: Tensor): number =>
  shape.slice(1).reduce((product, dim) => product * dim, 1);

/** The smallest and largest number in row `row` of the numeric inputs. */
function rowRange(inputs: readonly Tensor[], row: number): [number, number] | undefined {
  let min = Infinity;
  let max = -Infinity;
  for (const input of inputs) {
    const { kind } = DATA_TYPE_INFO[input.datatype];
    if (kind === "string" || kind === "boolean" || input.shape.length === 0) continue;
    const size = rowSize(input);
    const data = input.data as ArrayLike<number | bigint>;
    // float32 values as the client wrote them (1e+38), not widened (9.999999680285692e+37).
    const toNumber = data instanceof Float32Array ? shortestFloat32 : Number;
    for (let i = row * size; i < (row + 1) * size && i < data.length; i++) {
      const value = toNumber(data[i] as number);
      min = Math.min(min, value);
      max = Math.max(max, value);
    }
  }
  return min <= max ? [min, max] : undefined;
}

/** Refuses an output holding NaN or ±Infinity, naming the row of `field` and its input range. */
function requireFinite(
  model: Model,
  output: Tensor,
  inputs: readonly Tensor[],
  field: string,
): void {
  const { data } = output;
  if (!isFloating(data)) return;
  const index = Array.prototype.findIndex.call(data, (value: number) => !Number.isFinite(value));
  if (index < 0) return;
  const row = output.shape.length === 0 ? 0 : Math.floor(index / rowSize(output));
  const range = rowRange(inputs, row);
  const values = range ? `, whose values range from ${range[0]} to ${range[1]}` : "";
  throw badRequest(
    `model "${model.name}" answers ${String(data[index])} in its output "${output.name}" for row ${row} of ${field}${values}: that is outside the range of inputs the model can score; send values within the range it was trained on`,
  );
}

/**
 * Runs the model and returns the outputs `names`, in that order. `field` names the request's rows
 * in the message that refuses a non-finite answer.
 */
export async function predictOutputs(
  model: Model,
  inputs: readonly Tensor[],
  names: readonly string[],
  field: string,
): Promise<Tensor[]> {
  const outputs = await model.predict(inputs);
  return names.map((name) => {
    const output = outputs.find((candidate) => candidate.name === name);
    // A model that does not return what it declared is a server fault, not the client's.
    if (!output) throw new Error(`model "${model.name}" returned no output named "${name}"`);
    requireFinite(model, output, inputs, field);
    return output;
  });
}

/** Runs the model and returns the output that single-answer protocols send. */
export async function predictPrimary(
  model: Model,
  inputs: readonly Tensor[],
  field: string,
): Promise<Tensor> {
  const [primary] = await predictOutputs(model, inputs, [model.primaryOutput], field);
  return primary;
}
