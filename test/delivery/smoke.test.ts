import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { VARIANT_HEADER } from "../../infra/platform/variant-header";
import { parseArgs } from "../smoke/smoke";
import { REPO_ROOT } from "../infra/harness/stack-config";
import { startService, type ServiceProcess } from "../service/support/service-process";

const TSX = path.join(REPO_ROOT, "node_modules", ".bin", "tsx");
const SMOKE = path.join(REPO_ROOT, "test", "smoke", "smoke.ts");
const IRIS_MODEL = path.join(REPO_ROOT, "service", "models", "iris.onnx");

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the smoke CLI as CI does (`tsx test/smoke/smoke.ts ...`), without blocking this process. */
function smoke(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve) => {
    execFile(TSX, [SMOKE, ...args], { env, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A local HTTP server answering every request with `handler`'s status and body. */
async function fakeServer(
  handler: (method: string, url: string) => { status: number; body: string; delayMs?: number },
): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const answer = handler(req.method ?? "GET", req.url ?? "/");
    req.resume();
    setTimeout(() => {
      res.writeHead(answer.status, { "content-type": "application/json" });
      res.end(answer.body);
    }, answer.delayMs ?? 0);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A directory with a fake `pulumi` that prints `endpoint` for `stack output endpoint`. */
function fakePulumi(endpoint: string, exitCode = 0): string {
  const dir = mkdtempSync(path.join(tmpdir(), "fake-pulumi-"));
  const script = path.join(dir, "pulumi");
  writeFileSync(
    script,
    `#!/bin/sh\necho "$@" > "${dir}/args"\n` +
      (exitCode === 0
        ? `echo '${endpoint}'\n`
        : `echo "error: no stack named 'nope' found" >&2\nexit ${exitCode}\n`),
  );
  chmodSync(script, 0o755);
  return dir;
}

describe("smoke test against the real service", () => {
  let service: ServiceProcess;
  beforeAll(async () => {
    service = await startService({ MODEL_URI: IRIS_MODEL });
  });
  afterAll(async () => {
    service.child.kill("SIGTERM");
    await service.exited;
  });

  it("passes every check, prints the table and exits 0", async () => {
    const run = await smoke(["--url", service.url, "--timeout-ms", "5000"]);
    expect(run.stderr).not.toMatch(/FAIL/);
    expect(run.code).toBe(0);
    const lines = run.stdout.split("\n");
    expect(lines[0]).toBe(`smoke test of ${service.url}`);
    expect(lines[1]).toMatch(/^check\s+result\s+http\s+ms$/);
    for (const check of [
      "v2 liveness /v2/health/live",
      "v2 readiness /v2/health/ready",
      "/score iris setosa",
      "Seldon v1 ndarray",
      "v2 server and model metadata",
      "v2 infer",
      "KServe v1 predict",
      "MLflow dataframe_split",
      "/score: malformed JSON -> 400",
      "Seldon v1: malformed JSON -> 400",
      "v2: malformed JSON -> 400",
      "KServe v1: malformed JSON -> 400",
      "MLflow: malformed JSON -> 400",
      "v2 unknown model -> 404",
      "KServe v1 unknown model -> 404",
    ]) {
      expect(lines).toContainEqual(
        expect.stringMatching(new RegExp(`^${escape(check)}\\s+PASS\\s+\\d{3}\\s+\\d+$`)),
      );
    }
    expect(run.stdout).toContain("all 15 checks passed");
    expect(run.stdout).not.toContain("operations paths hidden");
  });

  it("finds the URL from the stack's endpoint output with --stack", async () => {
    const bin = fakePulumi(service.url);
    try {
      const run = await smoke(["--stack", "gke"], {
        ...process.env,
        PATH: `${bin}:${process.env.PATH}`,
      });
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`smoke test of ${service.url}`);
      expect(readFileSync(path.join(bin, "args"), "utf8").trim()).toBe(
        "stack output endpoint --stack gke",
      );
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it("with --gateway, fails where the operations paths are served, as the bare service does", async () => {
    const run = await smoke(["--url", service.url, "--gateway"]);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(
      "FAIL operations paths hidden at the gateway: /metrics should not be routed (404), got 200",
    );
    expect(run.stdout).toMatch(/1 of 16 checks failed$/m);
  });

  it("fails on the wrong model name with a 404 from every model route", async () => {
    const run = await smoke(["--url", service.url, "--model", "mnist"]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^v2 server and model metadata\s+FAIL\s+404/m);
    expect(run.stdout).toMatch(/^KServe v1 predict\s+FAIL\s+404/m);
    expect(run.stdout).toMatch(/^\/score iris setosa\s+PASS/m);
  });
});

describe("smoke test against services that answer wrongly", () => {
  it("exits 1 with a failure line per wrong answer from a server that always says 200 {}", async () => {
    const { url, server } = await fakeServer(() => ({ status: 200, body: "{}" }));
    try {
      const run = await smoke(["--url", url]);
      expect(run.code).toBe(1);
      // Health endpoints that answer 200 pass; everything that checks content fails.
      expect(run.stdout).toMatch(/^v2 liveness \/v2\/health\/live\s+PASS\s+200/m);
      expect(run.stdout).toContain(
        "FAIL /score iris setosa: score[0] should be a row of class scores, got nothing",
      );
      expect(run.stdout).toContain(
        "FAIL /score: malformed JSON -> 400: expected HTTP 400, got 200: {}",
      );
      expect(run.stdout).toContain("FAIL v2 unknown model -> 404: expected HTTP 404, got 200: {}");
      expect(run.stdout).toMatch(/13 of 15 checks failed$/m);
    } finally {
      await close(server);
    }
  });

  it("with --gateway, passes the hiding check where the operations paths answer 404", async () => {
    const hidden = ["/metrics", "/openapi.json", "/healthz", "/readyz"];
    const { url, server } = await fakeServer((_method, route) =>
      hidden.includes(route) ? { status: 404, body: "" } : { status: 200, body: "{}" },
    );
    try {
      const run = await smoke(["--url", url, "--gateway"]);
      expect(run.stdout).toMatch(/^operations paths hidden at the gateway\s+PASS\s+404/m);
    } finally {
      await close(server);
    }
  });

  it("fails the iris check when another class scores highest", async () => {
    const { url, server } = await fakeServer((method, route) =>
      method === "POST" && route === "/score"
        ? { status: 200, body: '{"score": [[0.1, 0.7, 0.2]]}' }
        : { status: 200, body: "{}" },
    );
    try {
      const run = await smoke(["--url", url]);
      expect(run.code).toBe(1);
      expect(run.stdout).toContain(
        "FAIL /score iris setosa: score[0]: a setosa flower should score highest in class 0, but class 1 did ([0.1,0.7,0.2])",
      );
    } finally {
      await close(server);
    }
  });

  it("reports a timeout per request instead of hanging", async () => {
    const { url, server } = await fakeServer(() => ({ status: 200, body: "{}", delayMs: 2000 }));
    try {
      const started = Date.now();
      const run = await smoke(["--url", url, "--timeout-ms", "200"]);
      expect(run.code).toBe(1);
      expect(run.stdout).toContain(
        "FAIL v2 liveness /v2/health/live: GET /v2/health/live: no answer within 200 ms",
      );
      expect(run.stdout).toMatch(/^v2 liveness \/v2\/health\/live\s+FAIL\s+-\s+\d+$/m);
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      await close(server);
    }
  });

  it("exits 1 when nothing listens at the URL", async () => {
    const { url, server } = await fakeServer(() => ({ status: 200, body: "{}" }));
    await close(server);
    const run = await smoke(["--url", url]);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(
      "FAIL v2 liveness /v2/health/live: GET /v2/health/live: connect ECONNREFUSED",
    );
    expect(run.stdout).toMatch(/15 of 15 checks failed$/m);
  });

  it("exits 1 with the CLI's message when the stack has no endpoint", async () => {
    for (const [bin, message] of [
      [
        fakePulumi("pending: no load balancer address"),
        'stack nope has no usable endpoint output (got "pending: no load balancer address")',
      ],
      [
        fakePulumi("", 255),
        "pulumi stack output endpoint --stack nope failed: error: no stack named 'nope' found",
      ],
    ]) {
      try {
        const run = await smoke(["--stack", "nope"], {
          ...process.env,
          PATH: `${bin}:${process.env.PATH}`,
        });
        expect(run.code).toBe(1);
        expect(run.stderr).toContain(`smoke: ${message}`);
      } finally {
        rmSync(bin, { recursive: true, force: true });
      }
    }
  });
});

/**
 * Stands in for the gateway's route (Envoy cannot run here): a request with the variant header
 * goes to that side, any other to the stable side. `honourHeader: false` is a route that lost
 * its header match.
 */
async function variantRouter(
  sides: { stable: string; canary: string },
  honourHeader = true,
): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const header = req.headers[VARIANT_HEADER];
    const target = new URL(honourHeader && header === "canary" ? sides.canary : sides.stable);
    const upstream = request(
      {
        host: target.hostname,
        port: target.port,
        path: req.url,
        method: req.method,
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe("smoke test of both sides of a canary rollout", () => {
  let stable: ServiceProcess;
  let canary: ServiceProcess;
  let router: { url: string; server: Server };
  beforeAll(async () => {
    [stable, canary] = await Promise.all([
      startService({ MODEL_URI: IRIS_MODEL }),
      startService({ MODEL_URI: IRIS_MODEL, MODEL_VERSION: "2" }),
    ]);
    router = await variantRouter({ stable: stable.url, canary: canary.url });
  });
  afterAll(async () => {
    await close(router.server);
    for (const service of [stable, canary]) {
      service.child.kill("SIGTERM");
      await service.exited;
    }
  });

  it.each([
    ["canary", "2"],
    ["stable", "1"],
  ])(
    "--variant %s sends the header on every request and finds version %s answering",
    async (variant, version) => {
      const run = await smoke([
        "--url",
        router.url,
        "--variant",
        variant,
        "--model-version",
        version,
      ]);
      expect(run.stdout).toMatch(/^variant header pins every answer to its side\s+PASS\s+200/m);
      expect(run.stdout).toContain("all 16 checks passed");
      expect(run.code).toBe(0);
    },
  );

  it("fails the canary check where the route ignores the header, naming who answered", async () => {
    const lost = await variantRouter({ stable: stable.url, canary: canary.url }, false);
    try {
      const run = await smoke(["--url", lost.url, "--variant", "canary", "--model-version", "2"]);
      expect(run.code).toBe(1);
      expect(run.stdout).toContain(
        "FAIL variant header pins every answer to its side: 10 of 10 answers pinned to the " +
          "canary side came from iris/1, not iris/2",
      );
      expect(run.stdout).toMatch(/1 of 16 checks failed$/m);
    } finally {
      await close(lost.server);
    }
  });

  it("with --stack, takes the side's name and version from the stack's servedModels output", async () => {
    const bin = mkdtempSync(path.join(tmpdir(), "fake-pulumi-"));
    const served = JSON.stringify({
      stable: { name: "iris", version: "1" },
      canary: { name: "iris", version: "2" },
    });
    writeFileSync(
      path.join(bin, "pulumi"),
      `#!/bin/sh\necho "$@" >> "${bin}/args"\n` +
        `case "$3" in endpoint) echo '${router.url}' ;; servedModels) echo '${served}' ;; esac\n`,
    );
    chmodSync(path.join(bin, "pulumi"), 0o755);
    try {
      const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
      const run = await smoke(["--stack", "dev", "--variant", "canary"], env);
      expect(run.stdout).toContain("all 16 checks passed");
      expect(readFileSync(path.join(bin, "args"), "utf8").trim().split("\n")).toEqual([
        "stack output endpoint --stack dev",
        "stack output servedModels --json --stack dev",
      ]);
      writeFileSync(path.join(bin, "args"), "");
      const none = JSON.stringify({ stable: { name: "iris", version: "1" } });
      writeFileSync(
        path.join(bin, "pulumi"),
        `#!/bin/sh\ncase "$3" in endpoint) echo '${router.url}' ;; servedModels) echo '${none}' ;; esac\n`,
      );
      const noCanary = await smoke(["--stack", "dev", "--variant", "canary"], env);
      expect(noCanary.code).toBe(1);
      expect(noCanary.stderr).toContain(
        `smoke: stack dev serves no canary model (its servedModels output: ${none})`,
      );
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});

describe("smoke command line", () => {
  it("accepts --url or --stack with options", () => {
    expect(parseArgs(["--url", "http://10.0.0.1"])).toEqual({
      url: "http://10.0.0.1",
      stack: undefined,
      model: "iris",
      timeoutMs: 5000,
      waitSeconds: 0,
      gateway: false,
    });
    expect(
      parseArgs([
        "--stack=gke",
        "--model",
        "wine",
        "--timeout-ms",
        "900",
        "--wait",
        "60",
        "--gateway",
      ]),
    ).toEqual({
      url: undefined,
      stack: "gke",
      model: "wine",
      timeoutMs: 900,
      waitSeconds: 60,
      gateway: true,
    });
  });

  it.each([
    [[], "give exactly one of --url and --stack"],
    [["--url", "http://a", "--stack", "gke"], "give exactly one of --url and --stack"],
    [["--url"], "--url needs a value"],
    [["--url", "ftp://a"], '--url must be http(s)://host[:port] (got "ftp://a")'],
    [["--url", "http://a/score"], "--url must be http(s)://host[:port]"],
    [
      ["--stack", "gke", "--timeout-ms", "0"],
      '--timeout-ms must be a positive whole number (got "0")',
    ],
    [["--stack", "gke", "--wait", "-1"], '--wait must be a whole number of seconds (got "-1")'],
    [["--stack", "gke", "--verbose"], 'unknown argument "--verbose"'],
    [["--stack", "gke", "--variant", "blue"], '--variant must be stable or canary (got "blue")'],
    [
      ["--url", "http://a", "--variant", "canary"],
      "--variant with --url needs --model-version: the answers of the pinned side must name it",
    ],
    [["--url", "http://a", "--model-version", "2"], "--model-version applies only with --variant"],
  ])("rejects %j", (argv, message) => {
    expect(() => parseArgs(argv)).toThrow(message);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}
