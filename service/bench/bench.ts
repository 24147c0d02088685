/**
 * `npm run bench`: loads the service on loopback with the server pinned to one core and wrk to the
 * other, for `/score` on the identity and iris models, beside a bare node:http JSON echo as the
 * ceiling. Prints requests/s, p50 and p99 at 32 connections, peak RSS and start-to-ready time.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const SERVER_CORE = "0";
const LOAD_CORE = "1";
const CONNECTIONS = 32;
const DURATION_S = Number(process.env.BENCH_SECONDS ?? 10);
const SERVER_JS = path.resolve(__dirname, "..", "dist", "server.js");

/** The ceiling: the least a Node server can do to answer a JSON POST. */
const ECHO_SERVER = `
const http = require("node:http");
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = JSON.stringify(JSON.parse(Buffer.concat(chunks).toString()));
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
});
server.listen(Number(process.env.PORT), "127.0.0.1");
`;

interface Target {
  readonly name: string;
  readonly args: string[];
  readonly env: Record<string, string>;
  readonly body: string;
}

const IRIS_ROW = JSON.stringify({ X: [[5.1, 3.5, 1.4, 0.2]] });
const TARGETS: Target[] = [
  { name: "node:http JSON echo (ceiling)", args: ["-e", ECHO_SERVER], env: {}, body: IRIS_ROW },
  {
    name: "/score, identity",
    args: [SERVER_JS],
    env: { MODEL_URI: "identity" },
    body: IRIS_ROW,
  },
  { name: "/score, iris (ONNX)", args: [SERVER_JS], env: {}, body: IRIS_ROW },
];

interface Result {
  readonly name: string;
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly peakRssMb: number;
  readonly startToReadyMs: number;
  readonly errors: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A port that was free a moment ago, so the servers' stdout can go straight to /dev/null. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts a server pinned to SERVER_CORE; resolves once it answers (the service: /readyz). */
async function start(
  target: Target,
): Promise<{ child: ChildProcess; port: number; readyMs: number }> {
  const port = await freePort();
  const startedAt = performance.now();
  // Logs go to /dev/null, not a pipe: the service still formats a JSON line per request.
  const child = spawn("taskset", ["-c", SERVER_CORE, process.execPath, ...target.args], {
    env: { PATH: process.env.PATH ?? "", HOST: "127.0.0.1", PORT: String(port), ...target.env },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const probe = target.args[0] === "-e" ? { method: "POST", body: "{}" } : { method: "GET" };
  const probePath = target.args[0] === "-e" ? "/" : "/readyz";
  while (performance.now() - startedAt < 20_000 && child.exitCode === null) {
    const ok = await fetch(`http://127.0.0.1:${port}${probePath}`, probe).then(
      (response) => response.ok,
      () => false,
    );
    if (ok) return { child, port, readyMs: performance.now() - startedAt };
    await sleep(2);
  }
  child.kill("SIGKILL");
  throw new Error(`${target.name}: not ready in 20 s (exit code ${child.exitCode})`);
}

/** wrk prints latencies as 812.00us, 1.23ms or 1.02s. */
function milliseconds(value: string): number {
  const [, number, unit] = /^([\d.]+)(us|ms|s)$/.exec(value) ?? [];
  if (!number) throw new Error(`cannot read wrk latency "${value}"`);
  return Number(number) * (unit === "us" ? 0.001 : unit === "s" ? 1000 : 1);
}

function wrk(
  port: number,
  body: string,
  seconds: number,
): { rps: number; p50: number; p99: number; errors: number } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "mlscore-bench-"));
  const script = path.join(dir, "post.lua");
  writeFileSync(
    script,
    `wrk.method = "POST"\nwrk.body = '${body}'\nwrk.headers["Content-Type"] = "application/json"\n`,
  );
  const output = execFileSync(
    "taskset",
    [
      "-c",
      LOAD_CORE,
      "wrk",
      "-t1",
      `-c${CONNECTIONS}`,
      `-d${seconds}s`,
      "--latency",
      "-s",
      script,
      `http://127.0.0.1:${port}/score`,
    ],
    { encoding: "utf8" },
  );
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1]);
  const p50 = milliseconds(/\s50%\s+(\S+)/.exec(output)?.[1] ?? "");
  const p99 = milliseconds(/\s99%\s+(\S+)/.exec(output)?.[1] ?? "");
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(output)?.[1] ?? 0);
  const socketErrors =
    /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/
      .exec(output)
      ?.slice(1)
      .reduce((sum, n) => sum + Number(n), 0) ?? 0;
  return { rps, p50, p99, errors: non2xx + socketErrors };
}

/** Peak resident set of the server: taskset execs node, so the pid is node's own. */
function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
  return kb / 1024;
}

async function measure(target: Target): Promise<Result> {
  const { child, port, readyMs } = await start(target);
  try {
    wrk(port, target.body, 2); // warm-up: JIT, connection pool, ONNX arenas
    const run = wrk(port, target.body, DURATION_S);
    return {
      name: target.name,
      requestsPerSecond: run.rps,
      p50Ms: run.p50,
      p99Ms: run.p99,
      peakRssMb: peakRssMb(child.pid!),
      startToReadyMs: readyMs,
      errors: run.errors,
    };
  } finally {
    child.kill("SIGKILL");
  }
}

async function main(): Promise<void> {
  for (const tool of ["wrk", "taskset"]) {
    try {
      execFileSync("which", [tool], { stdio: "ignore" });
    } catch {
      throw new Error(
        `${tool} is missing: apt-get install ${tool === "wrk" ? "wrk" : "util-linux"}`,
      );
    }
  }
  const node = process.version;
  console.log(
    `mlscore benchmark: node ${node}, server on core ${SERVER_CORE}, wrk on core ${LOAD_CORE}, ${CONNECTIONS} connections, ${DURATION_S} s per target\n`,
  );
  const results: Result[] = [];
  for (const target of TARGETS) results.push(await measure(target));

  const ceiling = results[0].requestsPerSecond;
  console.log(
    "| target | requests/s | % of echo | p50 ms | p99 ms | peak RSS MB | start-to-ready ms | errors |",
  );
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of results) {
    console.log(
      `| ${r.name} | ${r.requestsPerSecond.toFixed(0)} | ${((100 * r.requestsPerSecond) / ceiling).toFixed(0)}% | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.peakRssMb.toFixed(0)} | ${r.startToReadyMs.toFixed(0)} | ${r.errors} |`,
    );
  }
}

main().catch((error: unknown) => {
  console.error(`bench: ${(error as Error).message}`);
  process.exit(1);
});
