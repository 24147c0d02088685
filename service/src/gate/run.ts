import { readFile } from "node:fs/promises";
import { withoutUrlSecrets } from "../redact";
import { answerProblems, parseGoldenRequests, type ServedModel } from "./golden";

/** What the gate checks, and where: read from its environment. */
export interface GateConfig {
  /** Base URL of the model under test, `http://host[:port]`. */
  readonly url: string;
  /** The name and version it must serve and answer as. */
  readonly model: ServedModel;
  /** The golden requests file (the stack mounts it from a ConfigMap). */
  readonly goldenFile: string;
  /** How long to wait for the model to be ready before failing. */
  readonly waitSeconds: number;
  /** How long one request may take. */
  readonly timeoutSeconds: number;
}

/** An environment the gate cannot run with; the message names the variable. */
export class GateConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GateConfigError";
  }
}

type Env = Readonly<Record<string, string | undefined>>;

function required(env: Env, key: string): string {
  const value = env[key];
  if (value === undefined || value === "") {
    throw new GateConfigError(`${key} is required`);
  }
  return value;
}

function seconds(env: Env, key: string, fallback: number): number {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 3600) {
    throw new GateConfigError(
      `${key} must be a whole number of seconds from 1 to 3600 (got "${raw}")`,
    );
  }
  return Number(raw);
}

/** Reads GATE_URL, GATE_MODEL_NAME, GATE_MODEL_VERSION, GATE_GOLDEN_FILE and the timeouts. */
export function readGateConfig(env: Env): GateConfig {
  const url = required(env, "GATE_URL");
  if (!/^https?:\/\/[^/\s?#]+$/.test(url)) {
    throw new GateConfigError(
      `GATE_URL must be http(s)://host[:port] (got "${withoutUrlSecrets(url)}")`,
    );
  }
  return {
    url,
    model: { name: required(env, "GATE_MODEL_NAME"), version: required(env, "GATE_MODEL_VERSION") },
    goldenFile: required(env, "GATE_GOLDEN_FILE"),
    waitSeconds: seconds(env, "GATE_WAIT_SECONDS", 120),
    timeoutSeconds: seconds(env, "GATE_TIMEOUT_SECONDS", 10),
  };
}

interface Answer {
  readonly status: number;
  readonly body: unknown;
}

async function send(url: string, timeoutSeconds: number, body?: unknown): Promise<Answer> {
  const response = await fetch(url, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutSeconds * 1000),
  });
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) };
  } catch {
    return { status: response.status, body: text };
  }
}

/** Why a request got no answer at all: a refused connection, an unknown host, a timeout. */
function noAnswer(error: unknown): string {
  if (error instanceof DOMException && error.name === "TimeoutError") return "no answer in time";
  const cause = error instanceof Error ? (error.cause ?? error) : error;
  return cause instanceof Error ? cause.message : String(cause);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits until the model answers that it is ready under its name and version. A 404 means another
 * model or version serves there, which waiting cannot fix: that fails at once.
 */
async function waitUntilReady(config: GateConfig, base: string): Promise<string | undefined> {
  const deadline = Date.now() + config.waitSeconds * 1000;
  let last = "";
  for (;;) {
    try {
      const answer = await send(`${base}/ready`, config.timeoutSeconds);
      if (answer.status === 200) return undefined;
      const error = (answer.body as { error?: unknown } | undefined)?.error;
      last = `HTTP ${answer.status}${typeof error === "string" ? `: ${error}` : ""}`;
      if (answer.status === 404) return `is not served there (${last})`;
    } catch (error) {
      last = noAnswer(error);
    }
    if (Date.now() >= deadline) return `was not ready within ${config.waitSeconds} s (${last})`;
    await sleep(1000);
  }
}

/**
 * Sends every golden request to the model and checks each answer; prints one line per request
 * and a verdict last (Kubernetes keeps a failed pod's last lines as its termination message,
 * which `pulumi up` shows). Resolves to whether every answer passed.
 */
export async function runGate(config: GateConfig, print: (line: string) => void): Promise<boolean> {
  const golden = parseGoldenRequests(await readFile(config.goldenFile, "utf8"));
  const { name, version } = config.model;
  const subject = `model "${name}" version "${version}" at ${config.url}`;
  const base = `${config.url}/v2/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`;
  const unready = await waitUntilReady(config, base);
  if (unready !== undefined) {
    print(`gate failed: ${subject} ${unready}`);
    return false;
  }
  let failed = 0;
  for (const request of golden.requests) {
    let problems: string[];
    try {
      const answer = await send(`${base}/infer`, config.timeoutSeconds, request.request);
      problems = answerProblems(
        request,
        answer.status,
        answer.body,
        config.model,
        golden.tolerance,
      );
    } catch (error) {
      problems = [noAnswer(error)];
    }
    failed += problems.length > 0 ? 1 : 0;
    print(
      problems.length === 0
        ? `PASS ${request.name}`
        : `FAIL ${request.name}: ${problems.join("; ")}`,
    );
  }
  const total = `${golden.requests.length} golden request${golden.requests.length === 1 ? "" : "s"}`;
  print(
    failed === 0
      ? `gate passed: ${subject} answered ${total} as expected`
      : `gate failed: ${subject} answered ${failed} of ${total} wrongly`,
  );
  return failed === 0;
}
