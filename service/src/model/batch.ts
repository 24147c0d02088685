import { performance } from "node:perf_hooks";
import type { Model, Tensor, TensorData } from "./model";
import { sampleInputs } from "./samples";

/**
 * Stacking requests along the batch axis and splitting the answer back: what lets several
 * requests share one model run. A request is stackable with another when both feed the model the
 * same inputs with the same element types and the same dimensions past the first, and every
 * input's first dimension is its number of rows. Nothing else is guessed: a model whose inputs
 * and outputs do not all have a dynamic first dimension has no batch axis, and a run whose
 * outputs do not have one row per stacked row cannot be split (`split` says so).
 */

/** Whether every input and output of `model` starts with a dynamic (batch) dimension. */
export function hasBatchAxis(model: Model): boolean {
  return [...model.inputs, ...model.outputs].every(
    (spec) => spec.shape !== null && spec.shape.length >= 1 && spec.shape[0] === -1,
  );
}

/** Rows of a request: the first dimension its inputs share; `undefined` when they differ. */
export function rowsOf(inputs: readonly Tensor[]): number | undefined {
  const rows = inputs[0]?.shape[0];
  if (rows === undefined) return undefined;
  return inputs.every((input) => input.shape.length >= 1 && input.shape[0] === rows)
    ? rows
    : undefined;
}

/**
 * What two requests must share to be stacked: for each input, in the model's order, its name,
 * element type, the kind of array holding it and its dimensions past the first. `undefined` for a
 * request that cannot be stacked at all (a model without a batch axis, inputs of differing rows).
 */
export function stackKey(model: Model, inputs: readonly Tensor[]): string | undefined {
  if (rowsOf(inputs) === undefined || inputs.length !== model.inputs.length) return undefined;
  let key = "";
  for (const spec of model.inputs) {
    const input = inputs.find((candidate) => candidate.name === spec.name);
    if (!input) return undefined;
    key += `${input.name}\0${input.datatype}\0${input.data.constructor.name}\0${input.shape.slice(1).join(",")}\0`;
  }
  return key;
}

/** `requests` (of one stack key) as one request whose rows are theirs, in order. */
export function stack(requests: readonly (readonly Tensor[])[]): Tensor[] {
  const [first] = requests;
  if (requests.length === 1) return [...first];
  return first.map((input) => {
    const parts = requests.map((inputs) => inputs.find((each) => each.name === input.name)!);
    const rows = parts.reduce((sum, part) => sum + part.shape[0], 0);
    return {
      name: input.name,
      datatype: input.datatype,
      shape: [rows, ...input.shape.slice(1)],
      data: concat(parts.map((part) => part.data)),
    };
  });
}

interface TypedArrayType {
  new (length: number): TypedArray;
}
type TypedArray = Exclude<TensorData, readonly unknown[]> & {
  set(source: ArrayLike<number | bigint>, offset: number): void;
};

function concat(parts: readonly TensorData[]): TensorData {
  const [first] = parts;
  if (Array.isArray(first)) return (parts as unknown[][]).flat() as TensorData;
  const length = parts.reduce((sum, part) => sum + part.length, 0);
  const joined = new (first.constructor as TypedArrayType)(length);
  let offset = 0;
  for (const part of parts as TypedArray[]) {
    joined.set(part, offset);
    offset += part.length;
  }
  return joined;
}

/**
 * The outputs of a stacked run cut back into each request's, `rows[i]` rows for request `i`;
 * `undefined` when an output does not have one row per stacked row, so it cannot be cut.
 * Typed arrays are cut as views, without copying.
 */
export function split(outputs: readonly Tensor[], rows: readonly number[]): Tensor[][] | undefined {
  const total = rows.reduce((sum, count) => sum + count, 0);
  if (!outputs.every((output) => output.shape.length >= 1 && output.shape[0] === total)) {
    return undefined;
  }
  const answers: Tensor[][] = rows.map(() => []);
  for (const output of outputs) {
    const rowSize = total === 0 ? 0 : output.data.length / total;
    let row = 0;
    rows.forEach((count, i) => {
      const data = slice(output.data, row * rowSize, (row + count) * rowSize);
      answers[i].push({ ...output, shape: [count, ...output.shape.slice(1)], data });
      row += count;
    });
  }
  return answers;
}

function slice(data: TensorData, start: number, end: number): TensorData {
  return Array.isArray(data)
    ? ((data as unknown[]).slice(start, end) as TensorData)
    : (data as TypedArray & { subarray(start: number, end: number): TensorData }).subarray(
        start,
        end,
      );
}

/** How the model is run: what `planStacking` found out about it. */
export interface StackingPlan {
  /** Whether requests may share a run; when not, `reason` says why. */
  readonly stacks: boolean;
  readonly reason?: string;
  /**
   * Whether a run of one row gets a copy of that row as a second: onnxruntime runs some models
   * (linear classifiers among them) with other kernels for one row than for several, whose last
   * bits differ, and a request's answer must not depend on whether it shared its run.
   */
  readonly padsOneRow: boolean;
  /** How long a row of the stacked check run took, call to answer: a first measure of the model. */
  readonly rowMs?: number;
}

/** Rows of the made-up requests that `planStacking` stacks: one, two, then one again. */
const CHECK_ROWS = [1, 2, 1];

/**
 * Finds out whether stacking requests would change what `model` answers: requests of made-up
 * rows (`sampleInputs`) are run alone and stacked, and every output must come back bit for bit
 * the same. Refuses models that are not row by row (a normalisation over the batch, an output of
 * fixed size) before any client could get a different answer, and finds the models whose
 * one-row runs must be padded.
 */
export async function planStacking(model: Model): Promise<StackingPlan> {
  const alone = (reason: string): StackingPlan => ({ stacks: false, reason, padsOneRow: false });
  if (!hasBatchAxis(model)) {
    return alone("its inputs and outputs do not all start with a dynamic (batch) dimension");
  }
  let from = 0;
  const requests = CHECK_ROWS.map((rows) => sampleInputs(model, rows, (from += rows) - rows));
  try {
    const one = requests[0];
    const padsOneRow = !sameOutputs(
      await model.predict(one),
      split(await model.predict(stack([one, one])), [1, 1])?.[0],
    );
    const answers: Tensor[][] = [];
    for (const inputs of requests) {
      const padded = padsOneRow && rowsOf(inputs) === 1;
      const outputs = await model.predict(padded ? stack([inputs, inputs]) : inputs);
      answers.push(padded ? (split(outputs, [1, 1])?.[0] ?? []) : outputs);
    }
    const calledAt = performance.now();
    const stacked = split(await model.predict(stack(requests)), CHECK_ROWS);
    const rowMs = (performance.now() - calledAt) / (from || 1);
    if (!stacked) return alone("its outputs do not have one row per input row");
    const differs = answers.findIndex((outputs, i) => !sameOutputs(outputs, stacked[i]));
    if (differs >= 0) return alone("its answer to a request differs when the request shares a run");
    return { stacks: true, padsOneRow, rowMs };
  } catch (error) {
    return alone(
      `it fails on made-up inputs, so stacking cannot be checked (${(error as Error).message})`,
    );
  }
}

function sameOutputs(a: readonly Tensor[], b: readonly Tensor[] | undefined): boolean {
  return (
    b !== undefined &&
    a.length === b.length &&
    a.every((output) => {
      const other = b.find((candidate) => candidate.name === output.name);
      return other !== undefined && sameElements(output.data, other.data);
    })
  );
}

function sameElements(a: TensorData, b: TensorData): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}
