import { z } from "zod";
import { DATA_TYPES, type DataType } from "../model/model";
import { InferenceRequest } from "../protocols/v2";

/**
 * Golden requests: Open Inference Protocol v2 requests with the answers a model must give them,
 * as its trainer computed them (for example scikit-learn's `predict_proba` on held-out rows). The
 * canary gate sends each to a new model before it gets traffic; the stack reads the same file
 * at `pulumi up` and refuses a malformed one. One definition of the format and of the check.
 */

/** Largest golden file: it reaches the gate through a ConfigMap, which holds at most 1 MiB. */
export const GOLDEN_MAX_BYTES = 512 * 1024;

/**
 * How far a floating-point answer may be from the expected one: |got - expected| <= absolute +
 * relative × |expected|, numpy.isclose's rule. The defaults let float32 inference match a
 * float64 reference (float32 carries about 7 significant digits) and nothing much looser.
 */
export const DEFAULT_TOLERANCE = { absolute: 1e-5, relative: 1e-4 } as const;

const FLOAT_TYPES: ReadonlySet<DataType> = new Set(["FP16", "FP32", "FP64"]);

const ExpectedOutput = z.strictObject({
  name: z.string().min(1),
  datatype: z.enum(DATA_TYPES),
  shape: z.array(z.int().min(0)),
  data: z.array(z.union([z.number(), z.string(), z.boolean()])),
});

const GoldenRequest = z.strictObject({
  name: z.string().min(1).max(80),
  request: InferenceRequest,
  expected: z.strictObject({ outputs: z.array(ExpectedOutput).min(1) }),
});

const GoldenFile = z.strictObject({
  tolerance: z
    .strictObject({ absolute: z.number().min(0), relative: z.number().min(0) })
    .optional(),
  requests: z.array(GoldenRequest).min(1).max(100),
});

/** One golden request and the outputs its answer must hold. */
export type GoldenRequest = z.infer<typeof GoldenRequest>;
/** One expected output tensor, its data flat in row-major order. */
export type ExpectedOutput = z.infer<typeof ExpectedOutput>;

/** A parsed golden file, its tolerance filled in. */
export interface GoldenRequests {
  readonly tolerance: { readonly absolute: number; readonly relative: number };
  readonly requests: readonly GoldenRequest[];
}

/** A golden file that cannot be used; the message says where and what to fix. */
export class GoldenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GoldenError";
  }
}

/** `requests[0].expected.outputs[1].data` from a zod issue path. */
function where(path: readonly PropertyKey[]): string {
  return path
    .map((key, i) => (typeof key === "number" ? `[${key}]` : `${i === 0 ? "" : "."}${String(key)}`))
    .join("");
}

function elements(shape: readonly number[]): number {
  return shape.reduce((product, size) => product * size, 1);
}

/** Parses and checks a golden file's text; throws a {@link GoldenError} naming the first problem. */
export function parseGoldenRequests(text: string): GoldenRequests {
  if (Buffer.byteLength(text) > GOLDEN_MAX_BYTES) {
    throw new GoldenError(
      `is ${Buffer.byteLength(text)} bytes; a golden file may hold at most ${GOLDEN_MAX_BYTES}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new GoldenError(`is not JSON: ${(error as Error).message}`);
  }
  const parsed = GoldenFile.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = where(issue.path);
    throw new GoldenError(at === "" ? issue.message : `${at}: ${issue.message}`);
  }
  const names = new Set<string>();
  parsed.data.requests.forEach((request, i) => {
    if (names.has(request.name)) {
      throw new GoldenError(`requests[${i}].name "${request.name}" is used twice`);
    }
    names.add(request.name);
    const outputs = new Set<string>();
    request.expected.outputs.forEach((output, j) => {
      const at = `requests[${i}].expected.outputs[${j}]`;
      if (outputs.has(output.name)) {
        throw new GoldenError(`${at}.name "${output.name}" is expected twice`);
      }
      outputs.add(output.name);
      if (output.data.length !== elements(output.shape)) {
        throw new GoldenError(
          `${at}.data holds ${output.data.length} values where its shape ` +
            `[${output.shape.join(", ")}] needs ${elements(output.shape)}`,
        );
      }
      const kind = { BYTES: "string", BOOL: "boolean" }[output.datatype as string] ?? "number";
      const bad = output.data.findIndex((value) => typeof value !== kind);
      if (bad >= 0) {
        throw new GoldenError(
          `${at}.data[${bad}] is ${JSON.stringify(output.data[bad])}, not a value of type ${output.datatype}`,
        );
      }
    });
  });
  return { tolerance: parsed.data.tolerance ?? DEFAULT_TOLERANCE, requests: parsed.data.requests };
}

/** An output tensor of an answer, as the v2 protocol returns it. */
interface AnsweredOutput {
  readonly name?: unknown;
  readonly datatype?: unknown;
  readonly shape?: unknown;
  readonly data?: unknown;
}

/** The most mismatched values one output reports before counting the rest. */
const MISMATCHES_SHOWN = 3;

/** Whether an answered value matches the expected one under the tolerance. */
function matches(
  datatype: DataType,
  got: unknown,
  expected: number | string | boolean,
  tolerance: GoldenRequests["tolerance"],
): boolean {
  if (FLOAT_TYPES.has(datatype)) {
    return (
      typeof got === "number" &&
      typeof expected === "number" &&
      Math.abs(got - expected) <= tolerance.absolute + tolerance.relative * Math.abs(expected)
    );
  }
  // 64-bit integers past 2^53 arrive as strings of digits.
  return got === expected || (typeof expected === "number" && got === String(expected));
}

/** Every way one answered output differs from the expected one; empty when it matches. */
function outputProblems(
  expected: ExpectedOutput,
  answered: AnsweredOutput | undefined,
  tolerance: GoldenRequests["tolerance"],
): string[] {
  const label = `output "${expected.name}"`;
  if (answered === undefined) {
    return [`${label} is missing from the answer`];
  }
  if (answered.datatype !== expected.datatype) {
    return [`${label} is ${String(answered.datatype)} where ${expected.datatype} was expected`];
  }
  const shape = JSON.stringify(answered.shape);
  if (shape !== JSON.stringify(expected.shape)) {
    return [`${label} has shape ${shape} where [${expected.shape.join(",")}] was expected`];
  }
  if (!Array.isArray(answered.data) || answered.data.length !== expected.data.length) {
    return [`${label} holds ${Array.isArray(answered.data) ? answered.data.length : "no"} values`];
  }
  const got = answered.data as unknown[];
  const wrong = expected.data.flatMap((value, i) =>
    matches(expected.datatype, got[i], value, tolerance) ? [] : [i],
  );
  const shown = wrong
    .slice(0, MISMATCHES_SHOWN)
    .map(
      (i) =>
        `${label}[${i}] is ${JSON.stringify(got[i])} where ${JSON.stringify(expected.data[i])} was expected`,
    );
  if (wrong.length > MISMATCHES_SHOWN) {
    shown.push(`${label}: ${wrong.length - MISMATCHES_SHOWN} more values differ`);
  }
  return shown;
}

/** The served identity the answers must name. */
export interface ServedModel {
  readonly name: string;
  readonly version: string;
}

/**
 * Every way an answer to a golden request falls short: a status other than 200, another model
 * or version answering, an expected output missing or of another type or shape, a value beyond
 * the tolerance (floats) or different at all (integers, booleans, strings). Empty: it passed.
 */
export function answerProblems(
  golden: GoldenRequest,
  status: number,
  body: unknown,
  model: ServedModel,
  tolerance: GoldenRequests["tolerance"],
): string[] {
  const answer = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
  if (status !== 200) {
    const reason = typeof answer.error === "string" ? `: ${answer.error}` : "";
    return [`answered HTTP ${status}${reason}`];
  }
  if (answer.model_name !== model.name || answer.model_version !== model.version) {
    return [
      `answered as model ${JSON.stringify(answer.model_name)} version ` +
        `${JSON.stringify(answer.model_version)}, not "${model.name}" version "${model.version}"`,
    ];
  }
  const outputs = Array.isArray(answer.outputs) ? (answer.outputs as AnsweredOutput[]) : [];
  return golden.expected.outputs.flatMap((expected) =>
    outputProblems(
      expected,
      outputs.find((output) => output.name === expected.name),
      tolerance,
    ),
  );
}
