import { badRequest } from "../http/errors";
import { DATA_TYPE_INFO } from "../model/data-types";
import type { DataType } from "../model/model";
import { describeValue } from "./quote";

/**
 * One tensor element: what JSON (or CSV) value each element type takes (its kind and range in
 * `DATA_TYPE_INFO`), converted or refused with the same words on every protocol, and the JSON
 * Schema that documents it. Each check does work bounded per element, whatever the client sends.
 */

/** The longest 64-bit integer in digits: "-9223372036854775808", "18446744073709551615". */
const MAX_INTEGER_CHARS = 20;
const DIGITS = /^-?\d+$/;
/** Longer text is no number worth reading; the bound keeps every number test linear and short. */
const MAX_NUMBER_CHARS = 100;
/** A decimal number as CSV writes it; unambiguous, so it never backtracks. */
const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const NOT_A_NUMBER = /^[+-]?(?:nan|inf|infinity)$/i;

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
  switch (DATA_TYPE_INFO[datatype].kind) {
    case "string":
    case "bigint":
      return text;
    case "boolean":
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

function toBigInt(
  value: unknown,
  datatype: DataType,
  [min, max]: readonly [bigint, bigint],
  refuse: Refuse,
): bigint {
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
  const info = DATA_TYPE_INFO[datatype];
  switch (info.kind) {
    case "boolean":
      return typeof value === "boolean" ? value : refuse(`true or false (${datatype})`);
    case "string":
      return typeof value === "string" ? value : refuse(`a string (${datatype})`);
    case "bigint":
      return toBigInt(value, datatype, info.range, refuse);
  }
  if (typeof value !== "number") return refuse(`a number (${datatype})`);
  if (!Number.isFinite(value)) return refuse(`a finite number (${datatype})`);
  if (info.kind === "integer") {
    const [min, max] = info.range;
    if (!Number.isInteger(value)) return refuse(`an integer (${datatype})`);
    if (value < min || value > max) return refuse(`an integer from ${min} to ${max} (${datatype})`);
    return value;
  }
  if ("range" in info && (value < info.range[0] || value > info.range[1])) {
    return refuse(`a number within ${datatype}'s range`);
  }
  return value;
}

/** What `convertElement` accepts for `datatype`, as JSON Schema; `{}` (anything) when open. */
export function elementSchema(datatype: DataType | null): Record<string, unknown> {
  if (datatype === null) return {};
  const info = DATA_TYPE_INFO[datatype];
  switch (info.kind) {
    case "boolean":
      return { type: "boolean" };
    case "string":
      return { type: "string" };
    case "bigint":
      return {
        anyOf: [{ type: "integer" }, { type: "string", pattern: DIGITS.source }],
        description: `${datatype}; beyond ±2^53 as a string of digits`,
      };
    case "integer":
      return { type: "integer", minimum: info.range[0], maximum: info.range[1] };
    case "float":
      return "range" in info
        ? { type: "number", minimum: info.range[0], maximum: info.range[1] }
        : { type: "number" };
  }
}
