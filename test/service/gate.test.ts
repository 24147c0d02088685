import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import {
  answerProblems,
  DEFAULT_TOLERANCE,
  GOLDEN_MAX_BYTES,
  parseGoldenRequests,
  type GoldenRequest,
} from "../../service/src/gate/golden";
import { readGateConfig } from "../../service/src/gate/run";
import { MODELS_DIR, trainIris } from "../../service/train/train";
import { startService, type ServiceProcess } from "./support/service-process";

const GATE_JS = path.resolve(__dirname, "../../service/dist/gate.js");
const IRIS_MODEL = path.join(MODELS_DIR, "iris.onnx");
const IRIS_GOLDEN = path.join(MODELS_DIR, "iris.golden.json");
const golden = () => JSON.parse(readFileSync(IRIS_GOLDEN, "utf8")) as Record<string, unknown>;

/** The message parseGoldenRequests throws for `value` (JSON-encoded unless a string). */
function goldenError(value: unknown): string {
  try {
    parseGoldenRequests(typeof value === "string" ? value : JSON.stringify(value));
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("parseGoldenRequests accepted a file it should refuse");
}

/** A golden request as a test edits it deep inside; typing every path would obscure the edit. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type EditableRequest = Record<string, any>;

/** The iris golden file with its first request changed by `edit`. */
function editedRequest(edit: (request: EditableRequest) => void): unknown {
  const file = golden() as { requests: EditableRequest[] };
  edit(file.requests[0]);
  return file;
}

describe("the golden requests file", () => {
  it("reads the iris file npm run train writes: the held-out rows and their answers", () => {
    const parsed = parseGoldenRequests(readFileSync(IRIS_GOLDEN, "utf8"));
    expect(parsed.tolerance).toEqual(DEFAULT_TOLERANCE);
    expect(parsed.requests.map((r) => r.name)).toEqual(["held-out rows (30)"]);
    expect(parsed.requests[0].expected.outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([
      ["label", "INT64", [30]],
      ["probabilities", "FP32", [30, 3]],
    ]);
  });

  it.each<[string, unknown, string]>([
    ["not JSON", "{", "is not JSON: "],
    ["no requests", { requests: [] }, "requests: Too small: expected array to have >=1 items"],
    ["an unknown top-level key", { ...golden(), tolerances: {} }, 'Unrecognized key: "tolerances"'],
    [
      "a negative tolerance",
      { ...golden(), tolerance: { absolute: -1, relative: 0 } },
      "tolerance.absolute: Too small: expected number to be >=0",
    ],
    [
      "a request the v2 protocol would refuse",
      editedRequest((r) => (r.request.inputs = [])),
      "requests[0].request.inputs: inputs must list at least one tensor",
    ],
    [
      "an expected output with an unknown datatype",
      editedRequest((r) => (r.expected.outputs[0].datatype = "FLOAT")),
      "requests[0].expected.outputs[0].datatype: Invalid option",
    ],
    [
      "data that does not fill its shape",
      editedRequest((r) => r.expected.outputs[1].data.pop()),
      "requests[0].expected.outputs[1].data holds 89 values where its shape [30, 3] needs 90",
    ],
    [
      "a string where a number is expected",
      editedRequest((r) => (r.expected.outputs[0].data[4] = "setosa")),
      'requests[0].expected.outputs[0].data[4] is "setosa", not a value of type INT64',
    ],
    [
      "an output expected twice",
      editedRequest((r) => r.expected.outputs.push(r.expected.outputs[0])),
      'requests[0].expected.outputs[2].name "label" is expected twice',
    ],
    [
      "two requests of one name",
      { requests: [golden().requests, golden().requests].flat() },
      'requests[1].name "held-out rows (30)" is used twice',
    ],
  ])("refuses %s", (_what, file, message) => {
    expect(goldenError(file)).toContain(message);
  });

  it("refuses a file larger than a ConfigMap carries comfortably", () => {
    expect(goldenError(" ".repeat(GOLDEN_MAX_BYTES + 1))).toBe(
      `is ${GOLDEN_MAX_BYTES + 1} bytes; a golden file may hold at most ${GOLDEN_MAX_BYTES}`,
    );
  });
});

describe("checking one answer", () => {
  const request: GoldenRequest = {
    name: "two rows",
    request: { inputs: [{ name: "x", datatype: "FP32", shape: [2, 1], data: [1, 2] }] },
    expected: {
      outputs: [
        { name: "label", datatype: "INT64", shape: [2], data: [0, 1] },
        { name: "p", datatype: "FP32", shape: [2], data: [0.5, 0.25] },
      ],
    },
  };
  const model = { name: "m", version: "2" };
  const answer = (p: unknown[], label: unknown[] = [0, 1], extra: object = {}) => ({
    model_name: "m",
    model_version: "2",
    outputs: [
      { name: "label", datatype: "INT64", shape: [2], data: label },
      { name: "p", datatype: "FP32", shape: [2], data: p, ...extra },
    ],
  });
  const check = (status: number, body: unknown) =>
    answerProblems(request, status, body, model, DEFAULT_TOLERANCE);

  it("passes values within absolute + relative × |expected|, and not one step beyond", () => {
    // 0.5: 1e-5 + 1e-4 × 0.5 = 6e-5 allowed.
    expect(check(200, answer([0.50005999, 0.25]))).toEqual([]);
    expect(check(200, answer([0.50006001, 0.25]))).toEqual([
      'output "p"[0] is 0.50006001 where 0.5 was expected',
    ]);
  });

  it("compares integers exactly, also when they arrive as strings past 2^53", () => {
    expect(check(200, answer([0.5, 0.25], ["0", "1"]))).toEqual([]);
    expect(check(200, answer([0.5, 0.25], [0, 2]))).toEqual([
      'output "label"[1] is 2 where 1 was expected',
    ]);
  });

  it("names a wrong status, model, type, shape or a missing output", () => {
    expect(check(400, { error: "inputs[0].name is wrong" })).toEqual([
      "answered HTTP 400: inputs[0].name is wrong",
    ]);
    expect(check(200, { ...answer([0.5, 0.25]), model_version: "1" })).toEqual([
      'answered as model "m" version "1", not "m" version "2"',
    ]);
    expect(check(200, answer([0.5, 0.25], [0, 1], { datatype: "FP64" }))).toEqual([
      'output "p" is FP64 where FP32 was expected',
    ]);
    expect(check(200, answer([0.5, 0.25], [0, 1], { shape: [1, 2] }))).toEqual([
      'output "p" has shape [1,2] where [2] was expected',
    ]);
    expect(check(200, { ...answer([]), outputs: [] })).toEqual([
      'output "label" is missing from the answer',
      'output "p" is missing from the answer',
    ]);
  });

  it("shows the first three wrong values of an output and counts the rest", () => {
    const wide: GoldenRequest = {
      ...request,
      expected: { outputs: [{ name: "p", datatype: "FP64", shape: [5], data: [0, 0, 0, 0, 0] }] },
    };
    const body = {
      model_name: "m",
      model_version: "2",
      outputs: [{ name: "p", datatype: "FP64", shape: [5], data: [1, 1, 1, 1, 1] }],
    };
    expect(answerProblems(wide, 200, body, model, DEFAULT_TOLERANCE)).toEqual([
      'output "p"[0] is 1 where 0 was expected',
      'output "p"[1] is 1 where 0 was expected',
      'output "p"[2] is 1 where 0 was expected',
      'output "p": 2 more values differ',
    ]);
  });
});

describe("the gate's environment", () => {
  const env = {
    GATE_URL: "http://scoring-canary.mlscore.svc.cluster.local:80",
    GATE_MODEL_NAME: "iris",
    GATE_MODEL_VERSION: "2",
    GATE_GOLDEN_FILE: "/etc/mlscore/golden/golden.json",
  };

  it("reads the URL, the model and the golden file, with default timeouts", () => {
    expect(readGateConfig(env)).toEqual({
      url: env.GATE_URL,
      model: { name: "iris", version: "2" },
      goldenFile: env.GATE_GOLDEN_FILE,
      waitSeconds: 120,
      timeoutSeconds: 10,
    });
  });

  it.each([
    [{ GATE_URL: "" }, "GATE_URL is required"],
    [
      { GATE_URL: "http://host/v2" },
      'GATE_URL must be http(s)://host[:port] (got "http://host/v2")',
    ],
    [{ GATE_MODEL_VERSION: "" }, "GATE_MODEL_VERSION is required"],
    [
      { GATE_WAIT_SECONDS: "0" },
      'GATE_WAIT_SECONDS must be a whole number of seconds from 1 to 3600 (got "0")',
    ],
  ])("refuses %j", (change, message) => {
    expect(() => readGateConfig({ ...env, ...change })).toThrow(message);
  });
});

interface GateRun {
  readonly code: number;
  readonly output: string;
}

/** Runs `node service/dist/gate.js` as the Job does, with `env` only. */
function gate(env: Record<string, string>): Promise<GateRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [GATE_JS],
      { env: { PATH: process.env.PATH ?? "", ...env }, timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        resolve({ code, output: stdout + stderr });
      },
    );
  });
}

/** A loopback port nothing listens on. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe("the gate against real services", () => {
  let work: string;
  let canary: ServiceProcess;
  let retrained: ServiceProcess;
  const gateEnv = (url: string, extra: Record<string, string> = {}) => ({
    GATE_URL: url,
    GATE_MODEL_NAME: "iris",
    GATE_MODEL_VERSION: "2",
    GATE_GOLDEN_FILE: IRIS_GOLDEN,
    ...extra,
  });

  beforeAll(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), "mlscore-gate-"));
    // Another training run (another split): the same signature, answers that moved.
    const other = path.join(work, "iris.onnx");
    writeFileSync(other, trainIris({ seed: 7 }).onnx);
    [canary, retrained] = await Promise.all([
      startService({ MODEL_URI: IRIS_MODEL, MODEL_VERSION: "2" }),
      startService({ MODEL_URI: other, MODEL_VERSION: "2" }),
    ]);
  });

  afterAll(async () => {
    for (const service of [canary, retrained]) {
      service?.child.kill("SIGTERM");
      await service?.exited;
    }
    rmSync(work, { recursive: true, force: true });
  });

  it("passes the model whose trainer wrote the golden answers, and exits 0", async () => {
    const run = await gate(gateEnv(canary.url));
    expect(run).toEqual({
      code: 0,
      output:
        "PASS held-out rows (30)\n" +
        `gate passed: model "iris" version "2" at ${canary.url} answered 1 golden request as expected\n`,
    });
  });

  it("passes the hand-written golden file the README shows, with its tighter tolerance", async () => {
    const file = path.resolve(__dirname, "../fixtures/golden/iris-setosa.json");
    const run = await gate(gateEnv(canary.url, { GATE_GOLDEN_FILE: file }));
    expect(run.output).toContain("PASS first flower of Fisher's data (setosa)\n");
    expect(run.code).toBe(0);
    const readme = readFileSync(path.resolve(__dirname, "../../README.md"), "utf8");
    const shown = /```json\n(\{\n {2}"tolerance"[\s\S]*?)```/.exec(readme)?.[1];
    expect(JSON.parse(shown ?? "null")).toEqual(JSON.parse(readFileSync(file, "utf8")));
  });

  it("fails a retrained model whose probabilities moved, naming the values, and exits 1", async () => {
    const run = await gate(gateEnv(retrained.url));
    expect(run.code).toBe(1);
    expect(run.output).toMatch(
      /^FAIL held-out rows \(30\): output "probabilities"\[\d+\] is [\d.e-]+ where [\d.e-]+ was expected; /,
    );
    expect(run.output).toContain(
      `gate failed: model "iris" version "2" at ${retrained.url} answered 1 of 1 golden request wrongly\n`,
    );
  });

  it("fails at once when another version answers there", async () => {
    const started = Date.now();
    const run = await gate(gateEnv(canary.url, { GATE_MODEL_VERSION: "3" }));
    expect(run.code).toBe(1);
    expect(run.output).toBe(
      `gate failed: model "iris" version "3" at ${canary.url} is not served there ` +
        '(HTTP 404: model "iris" has no version "3"; this server serves version "2")\n',
    );
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("waits for a model that never answers, then fails", async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const run = await gate(gateEnv(url, { GATE_WAIT_SECONDS: "2" }));
    expect(run.code).toBe(1);
    expect(run.output).toMatch(
      new RegExp(
        `^gate failed: model "iris" version "2" at ${url} was not ready within 2 s \\(.*ECONNREFUSED`,
      ),
    );
  });

  it("fails with the file's problem when the golden file is broken or missing", async () => {
    const broken = path.join(work, "broken.json");
    writeFileSync(broken, JSON.stringify({ requests: [] }));
    expect(await gate(gateEnv(canary.url, { GATE_GOLDEN_FILE: broken }))).toEqual({
      code: 1,
      output:
        "gate failed: the golden requests file requests: Too small: expected array to have >=1 items\n",
    });
    const missing = await gate(
      gateEnv(canary.url, { GATE_GOLDEN_FILE: path.join(work, "none.json") }),
    );
    expect(missing.code).toBe(1);
    expect(missing.output).toContain("gate failed: ENOENT: no such file or directory");
  });

  it("fails with the variable's name when its environment is incomplete", async () => {
    expect(await gate({ GATE_URL: canary.url })).toEqual({
      code: 1,
      output: "gate failed: GATE_MODEL_NAME is required\n",
    });
  });
});
