/**
 * The benchmark's tools: servers started pinned to one core, wrk pinned to the other, and the
 * numbers read from both (requests/s and latency percentiles from wrk, peak RSS from /proc).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import {
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";

export const SERVER_CORE = "0";

/** The compiled service entry (`npm run build --workspace service`). */
export const SERVER_JS = path.resolve(__dirname, "..", "dist", "server.js");
export const LOAD_CORE = "1";

/** What to start, and how to tell it is ready. */
export interface ServerSpec {
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Path answered 2xx once the server can take load (a POST of `{}` when `readyPost`). */
  readonly readyPath: string;
  readonly readyPost?: boolean;
  /** Start-up allowance: Python servers import for seconds. */
  readonly readyTimeoutMs?: number;
  /** Removes what the spec made for the server, once it is stopped. */
  readonly cleanup?: () => void;
}

export interface Started {
  readonly child: ChildProcess;
  readonly url: string;
  readonly readyMs: number;
  stop(): void;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A port that was free a moment ago, so the servers' stdout can go straight to /dev/null. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Starts `spec` pinned to SERVER_CORE (its child processes inherit the pinning) in a process
 * group of its own, and resolves once it is ready. Its output goes to a file, not a pipe a
 * server could block on; a server that is not ready in time fails with the file's tail.
 */
export async function start(spec: ServerSpec, port: number): Promise<Started> {
  const startedAt = performance.now();
  const dir = mkdtempSync(path.join(os.tmpdir(), "mlscore-bench-server-"));
  const log = path.join(dir, "output.log");
  const output = openSync(log, "w");
  const child = spawn("taskset", ["-c", SERVER_CORE, ...spec.argv], {
    env: { PATH: process.env.PATH ?? "", HOME: os.homedir(), ...spec.env },
    stdio: ["ignore", output, output],
    detached: true,
  });
  closeSync(output);
  const stop = () => {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      // already gone
    }
    spec.cleanup?.();
    rmSync(dir, { recursive: true, force: true });
  };
  const url = `http://127.0.0.1:${port}`;
  const request = spec.readyPost ? { method: "POST", body: "{}" } : { method: "GET" };
  const deadline = startedAt + (spec.readyTimeoutMs ?? 20_000);
  while (performance.now() < deadline && child.exitCode === null) {
    const ok = await fetch(`${url}${spec.readyPath}`, request).then(
      (response) => response.ok,
      () => false,
    );
    if (ok) return { child, url, readyMs: performance.now() - startedAt, stop };
    await sleep(2);
  }
  const tail = readFileSync(log, "utf8").slice(-2000);
  stop();
  throw new Error(
    `${spec.argv.join(" ")}: not ready in time (exit code ${child.exitCode}); its output ends:\n${tail}`,
  );
}

export interface LoadResult {
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
}

/** wrk prints latencies as 812.00us, 1.23ms or 1.02s. */
function milliseconds(value: string): number {
  const [, number, unit] = /^([\d.]+)(us|ms|s)$/.exec(value) ?? [];
  if (!number) throw new Error(`cannot read wrk latency "${value}"`);
  return Number(number) * (unit === "us" ? 0.001 : unit === "s" ? 1000 : 1);
}

/** POSTs `body` as JSON to `url` from wrk pinned to LOAD_CORE, one thread, for `seconds`. */
export function wrk(url: string, body: string, connections: number, seconds: number): LoadResult {
  const dir = mkdtempSync(path.join(os.tmpdir(), "mlscore-bench-"));
  const script = path.join(dir, "post.lua");
  writeFileSync(
    script,
    `wrk.method = "POST"\nwrk.body = '${body}'\nwrk.headers["Content-Type"] = "application/json"\n`,
  );
  try {
    const output = execFileSync(
      "taskset",
      [
        "-c",
        LOAD_CORE,
        "wrk",
        "-t1",
        `-c${connections}`,
        `-d${seconds}s`,
        "--latency",
        "-s",
        script,
        url,
      ],
      { encoding: "utf8" },
    );
    const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(output)?.[1] ?? 0);
    const socketErrors =
      /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/
        .exec(output)
        ?.slice(1)
        .reduce((sum, n) => sum + Number(n), 0) ?? 0;
    return {
      rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1]),
      p50Ms: milliseconds(/\s50%\s+(\S+)/.exec(output)?.[1] ?? ""),
      p99Ms: milliseconds(/\s99%\s+(\S+)/.exec(output)?.[1] ?? ""),
      errors: non2xx + socketErrors,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Peak resident set of `pid` and every process under it (MLServer's inference workers), in MB. */
export function peakRssMb(pid: number): number {
  const peakKb = (id: number) =>
    Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${id}/status`, "utf8"))?.[1] ?? 0);
  let kb = 0;
  const visit = (id: number): void => {
    kb += peakKb(id);
    for (const task of readdirSync(`/proc/${id}/task`)) {
      const children = readFileSync(`/proc/${id}/task/${task}/children`, "utf8").trim();
      for (const child of children ? children.split(" ") : []) visit(Number(child));
    }
  };
  visit(pid);
  return kb / 1024;
}

/** Fails at once, with the apt package to install, when a tool the benchmark needs is missing. */
export function requireTools(): void {
  for (const [tool, pkg] of [
    ["wrk", "wrk"],
    ["taskset", "util-linux"],
  ]) {
    try {
      execFileSync("which", [tool], { stdio: "ignore" });
    } catch {
      throw new Error(`${tool} is missing: apt-get install ${pkg}`);
    }
  }
}
