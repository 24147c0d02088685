/**
 * Smoke test of a live mlscore endpoint: every protocol the service speaks, answers on a known
 * iris flower, and error handling. Prints a summary table and exits 1 on any failure.
 *
 *   tsx test/smoke/smoke.ts --stack <name> [--model iris] [--timeout-ms 5000] [--wait 0] [--gateway]
 *                           [--variant stable|canary]
 *   tsx test/smoke/smoke.ts --url http://<host>[:port] [--model iris] [--timeout-ms 5000] [--wait 0]
 *                           [--variant stable|canary --model-version <v>]
 *
 * It checks what a client of the public endpoint can use: predictions and model metadata, and
 * the protocols' own health routes (`/v2/health/*`), not the kubelet's `/healthz` and `/readyz`.
 * --gateway adds that the operations paths (/metrics, /openapi.json, /healthz, /readyz) are not
 * served there, as the Istio gateway's routes promise.
 *
 * --wait <seconds> first polls /v2/health/ready until it answers 200, for a load balancer or
 * gateway route that is still coming up right after `pulumi up`; the checks run either way.
 *
 * --variant sends every request with the `x-mlscore-variant` header, which pins it to that side of
 * a canary rollout at the gateway, and adds a check that the answers come from that side: the
 * model name and version they report (with --stack, from the stack's `servedModels` output).
 *
 * With --stack, the URL is the stack's `endpoint` output (`pulumi stack output endpoint`).
 * Dependency-free on purpose (global fetch, node:child_process): it runs in CI right after
 * `pulumi up`, and nothing should stand between a deploy and its verdict.
 */
import { execFileSync } from "node:child_process";
import { VARIANT_HEADER, VARIANTS, type Variant } from "../../infra/platform/variant-header";

/** What one run checks against. */
export interface SmokeOptions {
  /** Base URL of the service, e.g. `http://203.0.113.7`; no trailing path. */
  readonly baseUrl: string;
  /** Name the model is served under; the iris checks expect the built-in iris model. */
  readonly model: string;
  /** Per-request timeout in milliseconds. */
  readonly timeoutMs: number;
  /** The URL is the Istio gateway, which must hide the operations paths; default false. */
  readonly gateway?: boolean;
  /** Pin every request to this side of a canary rollout, and check the answers came from it. */
  readonly variant?: Variant;
  /** The version the pinned side's model answers as; required with `variant`. */
  readonly modelVersion?: string;
}

/** The outcome of one check. */
export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  /** HTTP status of the check's request; undefined when none came back. */
  readonly status?: number;
  readonly ms: number;
  /** Why it failed; empty when it passed. */
  readonly detail: string;
}

/** An answer the check did not expect; its message is what the summary shows. */
class CheckFailure extends Error {}

interface Answer {
  readonly status: number;
  readonly body: unknown;
  readonly text: string;
}

/** Sepal length/width, petal length/width of the first flower of Fisher's iris data: setosa. */
const SETOSA = [5.1, 3.5, 1.4, 0.2];
const SETOSA_CLASS = 0;
/** The service's operations paths, which only the cluster may reach. */
const PRIVATE_PATHS = ["/metrics", "/openapi.json", "/healthz", "/readyz"];
const IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"];

/** Issues requests with a timeout and records the last status for the summary. */
class Client {
  lastStatus: number | undefined;

  constructor(private readonly options: SmokeOptions) {}

  get(path: string): Promise<Answer> {
    return this.send("GET", path);
  }

  post(path: string, body: unknown): Promise<Answer> {
    return this.send("POST", path, JSON.stringify(body));
  }

  /** Posts a raw string as JSON, for bodies that must not be valid JSON. */
  postRaw(path: string, text: string): Promise<Answer> {
    return this.send("POST", path, text);
  }

  private async send(method: string, path: string, body?: string): Promise<Answer> {
    this.lastStatus = undefined;
    let response: Response;
    try {
      response = await fetch(new URL(path, this.options.baseUrl), {
        method,
        body,
        headers: {
          ...(body === undefined ? {} : { "content-type": "application/json" }),
          ...(this.options.variant === undefined ? {} : { [VARIANT_HEADER]: this.options.variant }),
        },
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (error) {
      const cause = error instanceof Error ? (error.cause ?? error) : error;
      const reason =
        error instanceof DOMException && error.name === "TimeoutError"
          ? `no answer within ${this.options.timeoutMs} ms`
          : String(cause instanceof Error ? cause.message : cause);
      throw new CheckFailure(`${method} ${path}: ${reason}`);
    }
    this.lastStatus = response.status;
    const text = await response.text();
    let parsed: unknown = undefined;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Left undefined: checks that need JSON say so with the text they got.
    }
    return { status: response.status, body: parsed, text };
  }
}

function expectStatus(answer: Answer, status: number): void {
  if (answer.status !== status) {
    throw new CheckFailure(`expected HTTP ${status}, got ${answer.status}: ${clip(answer.text)}`);
  }
}

/** The value at a dotted path of a JSON answer (`data.ndarray.0`), or undefined. */
function at(value: unknown, path: string): unknown {
  return path
    .split(".")
    .reduce<unknown>(
      (current, key) =>
        typeof current === "object" && current !== null
          ? (current as Record<string, unknown>)[key]
          : undefined,
      value,
    );
}

function expectField(
  answer: Answer,
  path: string,
  predicate: (v: unknown) => boolean,
  what: string,
) {
  const value = at(answer.body, path);
  if (!predicate(value)) {
    throw new CheckFailure(
      `${path} should be ${what}, got ${clip(JSON.stringify(value) ?? "nothing")}`,
    );
  }
  return value;
}

/** Fails unless `scores` is one row of class scores whose highest is the setosa class. */
function expectSetosa(scores: unknown, where: string): void {
  if (!Array.isArray(scores) || !scores.every((s) => typeof s === "number") || scores.length < 2) {
    throw new CheckFailure(
      `${where} should be a row of class scores, got ${clip(JSON.stringify(scores) ?? "nothing")}`,
    );
  }
  const best = scores.indexOf(Math.max(...scores));
  if (best !== SETOSA_CLASS) {
    throw new CheckFailure(
      `${where}: a setosa flower should score highest in class ${SETOSA_CLASS}, ` +
        `but class ${best} did (${JSON.stringify(scores)})`,
    );
  }
}

const isString = (v: unknown) => typeof v === "string" && v.length > 0;

/** Keeps failure messages to one readable line. */
function clip(text: string, max = 200): string {
  const flat = text.replace(/\s+/g, " ");
  return flat.length > max ? `${flat.slice(0, max)}...` : flat;
}

/** One named check: runs requests and throws a {@link CheckFailure} on any wrong answer. */
interface Check {
  readonly name: string;
  /** Runs only with --gateway. */
  readonly gatewayOnly?: boolean;
  /** Runs only with --variant. */
  readonly variantOnly?: boolean;
  readonly run: (client: Client, options: SmokeOptions) => Promise<void>;
}

/** Malformed JSON must be a 400 in the protocol's own error format. */
function malformedJson(name: string, path: (model: string) => string, errorField: string): Check {
  return {
    name: `${name}: malformed JSON -> 400`,
    run: async (client, { model }) => {
      const answer = await client.postRaw(path(model), '{"broken": ');
      expectStatus(answer, 400);
      expectField(answer, errorField, isString, "an error message");
    },
  };
}

/**
 * Requests the variant check sends. Were the header ignored, a 10% canary would answer all ten
 * about once in 10^10 runs, and the stable side would answer all ten to a canary check never.
 */
const PINNED_REQUESTS = 10;

/** Every check, in the order they run and are reported. */
export const CHECKS: readonly Check[] = [
  {
    name: "v2 liveness /v2/health/live",
    run: async (client) => expectStatus(await client.get("/v2/health/live"), 200),
  },
  {
    name: "v2 readiness /v2/health/ready",
    run: async (client) => expectStatus(await client.get("/v2/health/ready"), 200),
  },
  {
    name: "/score iris setosa",
    run: async (client) => {
      const answer = await client.post("/score", { X: [SETOSA] });
      expectStatus(answer, 200);
      expectSetosa(at(answer.body, "score.0"), "score[0]");
    },
  },
  {
    name: "Seldon v1 ndarray",
    run: async (client) => {
      const answer = await client.post("/api/v1.0/predictions", { data: { ndarray: [SETOSA] } });
      expectStatus(answer, 200);
      expectSetosa(at(answer.body, "data.ndarray.0"), "data.ndarray[0]");
    },
  },
  {
    name: "v2 server and model metadata",
    run: async (client, { model }) => {
      expectStatus(await client.get("/v2/health/ready"), 200);
      const answer = await client.get(`/v2/models/${model}`);
      expectStatus(answer, 200);
      expectField(answer, "name", (v) => v === model, `"${model}"`);
      expectField(answer, "inputs.0.name", isString, "the model's first input name");
    },
  },
  {
    name: "v2 infer",
    run: async (client, { model }) => {
      const metadata = await client.get(`/v2/models/${model}`);
      expectStatus(metadata, 200);
      const input = expectField(metadata, "inputs.0.name", isString, "an input name") as string;
      const answer = await client.post(`/v2/models/${model}/infer`, {
        id: "smoke-1",
        inputs: [{ name: input, shape: [1, SETOSA.length], datatype: "FP32", data: SETOSA }],
      });
      expectStatus(answer, 200);
      expectField(answer, "id", (v) => v === "smoke-1", 'the request id "smoke-1" echoed');
      const outputs = expectField(answer, "outputs", Array.isArray, "a list of tensors");
      const label = (outputs as Array<{ name?: string; data?: unknown[] }>).find(
        (o) => o.name === "label",
      );
      if (label) {
        if (label.data?.[0] !== SETOSA_CLASS) {
          throw new CheckFailure(
            `label should be ${SETOSA_CLASS}, got ${JSON.stringify(label.data)}`,
          );
        }
        return;
      }
      // Models without a label output still answer scores; check the first output instead.
      expectSetosa((outputs as Array<{ data?: unknown }>)[0]?.data, "outputs[0].data");
    },
  },
  {
    name: "KServe v1 predict",
    run: async (client, { model }) => {
      const answer = await client.post(`/v1/models/${model}:predict`, { instances: [SETOSA] });
      expectStatus(answer, 200);
      expectSetosa(at(answer.body, "predictions.0"), "predictions[0]");
    },
  },
  {
    name: "MLflow dataframe_split",
    run: async (client) => {
      const answer = await client.post("/invocations", {
        dataframe_split: { columns: IRIS_COLUMNS, data: [SETOSA] },
      });
      expectStatus(answer, 200);
      expectSetosa(at(answer.body, "predictions.0"), "predictions[0]");
    },
  },
  malformedJson("/score", () => "/score", "error"),
  malformedJson("Seldon v1", () => "/api/v1.0/predictions", "status.info"),
  malformedJson("v2", (model) => `/v2/models/${model}/infer`, "error"),
  malformedJson("KServe v1", (model) => `/v1/models/${model}:predict`, "error"),
  malformedJson("MLflow", () => "/invocations", "message"),
  {
    name: "v2 unknown model -> 404",
    run: async (client) => {
      const answer = await client.get("/v2/models/no-such-model-smoke");
      expectStatus(answer, 404);
      expectField(answer, "error", isString, "an error message");
    },
  },
  {
    name: "operations paths hidden at the gateway",
    gatewayOnly: true,
    run: async (client) => {
      for (const path of PRIVATE_PATHS) {
        const answer = await client.get(path);
        if (answer.status !== 404) {
          throw new CheckFailure(`${path} should not be routed (404), got ${answer.status}`);
        }
      }
    },
  },
  {
    name: "variant header pins every answer to its side",
    variantOnly: true,
    run: async (client, { model, modelVersion, variant }) => {
      const metadata = await client.get(`/v2/models/${model}`);
      expectStatus(metadata, 200);
      const input = expectField(metadata, "inputs.0.name", isString, "an input name") as string;
      const answered: string[] = [];
      for (let i = 0; i < PINNED_REQUESTS; i += 1) {
        const answer = await client.post(`/v2/models/${model}/infer`, {
          inputs: [{ name: input, shape: [1, SETOSA.length], datatype: "FP32", data: SETOSA }],
        });
        expectStatus(answer, 200);
        answered.push(
          `${String(at(answer.body, "model_name"))}/${String(at(answer.body, "model_version"))}`,
        );
      }
      const wrong = answered.filter((side) => side !== `${model}/${modelVersion}`);
      if (wrong.length > 0) {
        throw new CheckFailure(
          `${wrong.length} of ${PINNED_REQUESTS} answers pinned to the ${variant} side came from ` +
            `${[...new Set(wrong)].join(", ")}, not ${model}/${modelVersion}`,
        );
      }
    },
  },
  {
    name: "KServe v1 unknown model -> 404",
    run: async (client) => {
      const answer = await client.post("/v1/models/no-such-model-smoke:predict", {
        instances: [SETOSA],
      });
      expectStatus(answer, 404);
    },
  },
];

/** Runs every check in order; never throws for a failing check. */
export async function runSmokeTest(
  options: SmokeOptions,
  checks: readonly Check[] = CHECKS,
): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const applies = (c: Check) =>
    (options.gateway || !c.gatewayOnly) && (options.variant !== undefined || !c.variantOnly);
  for (const check of checks.filter(applies)) {
    const client = new Client(options);
    const started = performance.now();
    let detail = "";
    try {
      await check.run(client, options);
    } catch (error) {
      detail = error instanceof CheckFailure ? error.message : `check crashed: ${String(error)}`;
    }
    results.push({
      name: check.name,
      ok: detail === "",
      status: client.lastStatus,
      ms: Math.round(performance.now() - started),
      detail,
    });
  }
  return results;
}

/** The summary table: one row per check (check, status, ms), then each failure's reason. */
export function formatSummary(baseUrl: string, results: readonly CheckResult[]): string {
  const rows = results.map((r) => [
    r.name,
    r.ok ? "PASS" : "FAIL",
    r.status === undefined ? "-" : String(r.status),
    String(r.ms),
  ]);
  const header = ["check", "result", "http", "ms"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === 3 ? cell.padStart(widths[i]) : cell.padEnd(widths[i])))
      .join("  ");
  const failed = results.filter((r) => !r.ok);
  return [
    `smoke test of ${baseUrl}`,
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
    "",
    ...failed.map((r) => `FAIL ${r.name}: ${r.detail}`),
    failed.length === 0
      ? `all ${results.length} checks passed`
      : `${failed.length} of ${results.length} checks failed`,
  ].join("\n");
}

/** Parsed command line. */
export interface SmokeArgs {
  readonly url?: string;
  readonly stack?: string;
  readonly model: string;
  readonly timeoutMs: number;
  /** Seconds to wait for /v2/health/ready before the checks; 0 does not wait. */
  readonly waitSeconds: number;
  /** Whether the URL is the Istio gateway. */
  readonly gateway: boolean;
  /** The side of a canary rollout to pin every request to. */
  readonly variant?: Variant;
  /** The version that side answers as (with --url; with --stack the stack says). */
  readonly modelVersion?: string;
}

/** Parses `--url <url> | --stack <name>`, `--model`, `--timeout-ms`; throws on anything else. */
export function parseArgs(argv: readonly string[]): SmokeArgs {
  const values: Record<string, string> = {};
  let gateway = false;
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    if (flag === "--gateway") {
      gateway = true;
      continue;
    }
    const [name, inline] = flag.split(/=(.*)/s, 2);
    if (
      ![
        "--url",
        "--stack",
        "--model",
        "--timeout-ms",
        "--wait",
        "--variant",
        "--model-version",
      ].includes(name)
    ) {
      throw new Error(`unknown argument "${flag}"; ${USAGE}`);
    }
    const value = inline ?? argv[(i += 1)];
    if (value === undefined || value === "") {
      throw new Error(`${name} needs a value; ${USAGE}`);
    }
    values[name.slice(2)] = value;
  }
  if ((values.url === undefined) === (values.stack === undefined)) {
    throw new Error(`give exactly one of --url and --stack; ${USAGE}`);
  }
  if (values.url !== undefined && !/^https?:\/\/[^/\s]+\/?$/.test(values.url)) {
    throw new Error(`--url must be http(s)://host[:port] (got "${values.url}")`);
  }
  const timeoutMs = Number(values["timeout-ms"] ?? 5000);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    throw new Error(`--timeout-ms must be a positive whole number (got "${values["timeout-ms"]}")`);
  }
  const waitSeconds = Number(values.wait ?? 0);
  if (!Number.isInteger(waitSeconds) || waitSeconds < 0) {
    throw new Error(`--wait must be a whole number of seconds (got "${values.wait}")`);
  }
  const variant = values.variant as Variant | undefined;
  if (variant !== undefined && !VARIANTS.includes(variant)) {
    throw new Error(`--variant must be ${VARIANTS.join(" or ")} (got "${variant}")`);
  }
  if (variant !== undefined && values.url !== undefined && values["model-version"] === undefined) {
    throw new Error(
      "--variant with --url needs --model-version: the answers of the pinned side must name it",
    );
  }
  if (variant === undefined && values["model-version"] !== undefined) {
    throw new Error("--model-version applies only with --variant");
  }
  return {
    url: values.url,
    stack: values.stack,
    model: values.model ?? "iris",
    timeoutMs,
    waitSeconds,
    gateway,
    ...(variant === undefined ? {} : { variant, modelVersion: values["model-version"] }),
  };
}

const USAGE =
  "usage: smoke --url http://host[:port] | --stack <name> [--model iris] [--timeout-ms 5000] [--wait 0] [--gateway] [--variant stable|canary [--model-version <v>]]";

/** One of the stack's outputs, read with the Pulumi CLI (`extra`: e.g. `--json`). */
function stackOutput(stack: string, name: string, extra: string[] = []): string {
  const args = ["stack", "output", name, ...extra, "--stack", stack];
  try {
    return execFileSync("pulumi", args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    }).trim();
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(`pulumi ${args.join(" ")} failed: ${stderr || String(error)}`);
  }
}

/** The name and version one side of the stack answers as: its `servedModels` output. */
export function stackServedModel(
  stack: string,
  variant: Variant,
): { name: string; version: string } {
  const text = stackOutput(stack, "servedModels", ["--json"]);
  let served: unknown;
  try {
    served = JSON.parse(text);
  } catch {
    throw new Error(
      `stack ${stack}'s servedModels output is not JSON (got "${text.slice(0, 80)}")`,
    );
  }
  const side = at(served, variant) as { name?: unknown; version?: unknown } | undefined;
  if (typeof side?.name !== "string" || typeof side.version !== "string") {
    throw new Error(`stack ${stack} serves no ${variant} model (its servedModels output: ${text})`);
  }
  return { name: side.name, version: side.version };
}

/** The stack's `endpoint` output, read with the Pulumi CLI. */
export function stackEndpoint(stack: string): string {
  const endpoint = stackOutput(stack, "endpoint");
  if (!/^https?:\/\//.test(endpoint)) {
    throw new Error(`stack ${stack} has no usable endpoint output (got "${endpoint}")`);
  }
  return endpoint;
}

/**
 * Polls /v2/health/ready until it answers 200 or `seconds` pass; the checks then report what is
 * wrong.
 */
async function waitUntilReady(baseUrl: string, seconds: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(new URL("/v2/health/ready", baseUrl), {
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (response.status === 200) {
        return;
      }
    } catch {
      // Not reachable yet: the load balancer may still be programming its forwarding rule.
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

/** The CLI: resolves the URL, runs the checks, prints the summary; resolves to the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  let args: SmokeArgs;
  let baseUrl: string;
  let model: { name: string; version?: string };
  try {
    args = parseArgs(argv);
    baseUrl = args.url ?? stackEndpoint(args.stack as string);
    model =
      args.variant !== undefined && args.stack !== undefined
        ? stackServedModel(args.stack, args.variant)
        : { name: args.model, version: args.modelVersion };
  } catch (error) {
    console.error(`smoke: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
  await waitUntilReady(baseUrl, args.waitSeconds, args.timeoutMs);
  const results = await runSmokeTest({
    baseUrl,
    model: model.name,
    timeoutMs: args.timeoutMs,
    gateway: args.gateway,
    variant: args.variant,
    modelVersion: model.version,
  });
  console.log(formatSummary(baseUrl, results));
  return results.every((r) => r.ok) ? 0 : 1;
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
