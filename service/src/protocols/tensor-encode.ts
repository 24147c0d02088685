import type { Tensor } from "../model/model";

/**
 * Turns the model's tensors into JSON: flat in row-major order, or nested as the shape says. No
 * number is rounded on the way: 64-bit integers past 2^53 leave as strings of digits, and float32
 * values with the fewest digits that read back as the same float32.
 */

/**
 * Prints a float32 with the fewest digits that read back as the same float32, so 0.97 is sent as
 * 0.97 rather than 0.9700000286102295.
 */
export function shortestFloat32(value: number): number {
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
