import { badRequest } from "../http/errors";
import type { DataType } from "../model/model";
import { describeValue } from "./quote";

/**
 * One tensor element: what JSON (or CSV) value each element type takes, converted or refused with
 * the same words on every protocol, and the JSON Schema that documents it. Each check does work
 * bounded per element, whatever the client sends.
 */

const FP32_MAX = 3.4028234663852886e38;
const FP16_MAX = 65504;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
/** The longest 64-bit integer in digits: "-9223372036854775808", "18446744073709551615". */
const MAX_INTEGER_CHARS = 20;
const DIGITS = /^-?\d+$/;
/** Longer text is no number worth reading; the bound keeps every number test linear and short. */
const MAX_NUMBER_CHARS = 100;
/** A decimal number as CSV writes it; unambiguous, so it never backtracks. */
const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const NOT_A_NUMBER = /^[+-]?(?:nan|inf|infinity)$/i;

const INTEGER_RANGES: Partial<Record<DataType, readonly [number, number]>> = {
  INT8: [-128, 127],
  INT16: [-32768, 32767],
  INT32: [-2147483648, 2147483647],
  UINT8: [0, 255],
  UINT16: [0, 65535],
  UINT32: [0, 4294967295],
};

/** Whether `text` (a CSV cell) reads as a number. */
export function isNumberText(text: string): boolean {
  return text.length <= MAX_NUMBER_CHARS && NUMBER.test(text);
}

/**
 * A CSV cell as the JSON value an element of `datatype` takes: numbers and booleans parsed, text
 * kept for BYTES and for 64-bit integers (which are read from their digits). Text that does not
 * parse stays text, and `convertElement` then says what was expected.
 */
export function fromText(text: string, datatype: DataType): unknown {
  switch (datatype) {
    case "BYTES":
    case "INT64":
    case "UINT64":
      return text;
    case "BOOL":
      return /^(true|false)$/i.test(text) ? text.toLowerCase() === "true" : text;
    default:
      return isNumberText(text) ? Number(text) : text;
  }
}

/** Element types that a JSON value without a declared type is taken as. */
export function inferDataType(first: unknown, where: string): DataType {
  if (typeof first === "number") return "FP64";
  if (typeof first === "boolean") return "BOOL";
  if (typeof first === "string") return "BYTES";
  throw badRequest(
    `${where} is ${describeValue(first)}; values must be numbers, booleans or strings`,
  );
}

function toBigInt(value: unknown, datatype: "INT64" | "UINT64", refuse: Refuse): bigint {
  let big: bigint;
  if (typeof value === "number" && Number.isSafeInteger(value)) big = BigInt(value);
  else if (typeof value === "string" && value.length <= MAX_INTEGER_CHARS && DIGITS.test(value)) {
    big = BigInt(value);
  } else if (typeof value === "number" && Number.isInteger(value)) {
    return refuse(
      `an integer (${datatype}); integers beyond ±2^53 must be sent as strings of digits`,
    );
  } else if (typeof value === "string" && DIGITS.test(value.slice(0, MAX_INTEGER_CHARS + 1))) {
    return refuse(`an integer in the range of ${datatype} (at most ${MAX_INTEGER_CHARS} digits)`);
  } else return refuse(`an integer (${datatype})`);
  const [min, max] = datatype === "INT64" ? [INT64_MIN, INT64_MAX] : [0n, UINT64_MAX];
  if (big < min || big > max) return refuse(`an integer in the range of ${datatype}`);
  return big;
}

type Refuse = (expected: string) => never;

/**
 * Converts one JSON element to `datatype`, or explains why it cannot be. Returns the converted
 * value; `where` names the element for the message.
 */
export function convertElement(value: unknown, datatype: DataType, where: () => string): unknown {
  const refuse: Refuse = (expected) => {
    const nanHint =
      typeof value === "string" && value.length <= 10 && NOT_A_NUMBER.test(value.trim())
        ? "; JSON has no NaN or Infinity, and they cannot be scored"
        : "";
    throw badRequest(`${where()} is ${describeValue(value)}, expected ${expected}${nanHint}`);
  };
  switch (datatype) {
    case "BOOL":
      return typeof value === "boolean" ? value : refuse("true or false (BOOL)");
    case "BYTES":
      return typeof value === "string" ? value : refuse("a string (BYTES)");
    case "INT64":
    case "UINT64":
      return toBigInt(value, datatype, refuse);
  }
  if (typeof value !== "number") return refuse(`a number (${datatype})`);
  if (!Number.isFinite(value)) return refuse(`a finite number (${datatype})`);
  const range = INTEGER_RANGES[datatype];
  if (range) {
    if (!Number.isInteger(value)) return refuse(`an integer (${datatype})`);
    if (value < range[0] || value > range[1]) {
      return refuse(`an integer from ${range[0]} to ${range[1]} (${datatype})`);
    }
    return value;
  }
  if (datatype === "FP32" && Math.abs(value) > FP32_MAX)
    return refuse("a number within FP32's range");
  if (datatype === "FP16" && Math.abs(value) > FP16_MAX)
    return refuse("a number within FP16's range");
  return value;
}

/** What `convertElement` accepts for `datatype`, as JSON Schema; `{}` (anything) when open. */
export function elementSchema(datatype: DataType | null): Record<string, unknown> {
  switch (datatype) {
    case null:
      return {};
    case "BOOL":
      return { type: "boolean" };
    case "BYTES":
      return { type: "string" };
    case "INT64":
    case "UINT64":
      return {
        anyOf: [{ type: "integer" }, { type: "string", pattern: DIGITS.source }],
        description: `${datatype}; beyond ±2^53 as a string of digits`,
      };
    case "FP16":
      return { type: "number", minimum: -FP16_MAX, maximum: FP16_MAX };
    case "FP32":
      return { type: "number", minimum: -FP32_MAX, maximum: FP32_MAX };
    case "FP64":
      return { type: "number" };
  }
  const [minimum, maximum] = INTEGER_RANGES[datatype] ?? [];
  return { type: "integer", minimum, maximum };
}
