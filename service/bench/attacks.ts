/**
 * Hostile clients, as issue 8 reproduced them, for `npm run bench:hostile` and the hostile-client
 * test: bodies that stall on many connections, big bodies in parallel, and a probe that measures
 * how long `/healthz` takes meanwhile.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import net from "node:net";
import { performance } from "node:perf_hooks";

/**
 * The V8 heap limit Node gives itself in the default pod (half its 512Mi cgroup limit). On a host
 * with more memory V8 lets garbage pile up far longer, so the service runs with this under attack.
 */
export const POD_HEAP = "--max-old-space-size=256";

/** How many answers came back with each status (`closed`: the connection ended without one). */
export type Statuses = Record<string, number>;

function count(statuses: Statuses, status: string): void {
  statuses[status] = (statuses[status] ?? 0) + 1;
}

/**
 * Sends one raw HTTP/1.1 request on a new connection: headers declaring `declaredBytes`, then
 * `sentBytes` of `filler`, then nothing. Resolves with the status the server answered, or
 * `closed`, once the connection ends.
 */
function rawRequest(
  url: string,
  path: string,
  declaredBytes: number,
  body: Buffer,
  keepOpenMs: number,
): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), hostname);
    let head = "";
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? "closed");
    };
    const timer = setTimeout(done, keepOpenMs);
    socket.on("error", () => {});
    socket.on("data", (chunk: Buffer) => {
      head += chunk.toString("latin1");
      // One answer is all this client waits for.
      if (head.includes("\r\n\r\n")) done();
    });
    socket.on("close", done);
    socket.write(
      `POST ${path} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${declaredBytes}\r\n\r\n`,
    );
    socket.write(body);
  });
}

/**
 * `connections` clients at once, each declaring `declaredBytes` and sending all but the last
 * byte, then stalling (issue 8: 150 × 5 MiB − 1 took the service to 975 MB). Resolves when every
 * one has been answered or closed, or after `keepOpenMs`.
 */
export async function stalledBodies(
  url: string,
  options: { connections: number; declaredBytes: number; keepOpenMs: number },
): Promise<Statuses> {
  const body = Buffer.alloc(options.declaredBytes - 1, "0");
  const statuses: Statuses = {};
  await Promise.all(
    Array.from({ length: options.connections }, () =>
      rawRequest(url, "/score", options.declaredBytes, body, options.keepOpenMs).then((status) =>
        count(statuses, status),
      ),
    ),
  );
  return statuses;
}

/** `parallel` clients, each posting `bodies` (in turn) back to back for `durationMs`. */
export async function bigBodies(
  url: string,
  options: { parallel: number; bodies: readonly string[]; durationMs: number; path?: string },
): Promise<Statuses> {
  const statuses: Statuses = {};
  const until = performance.now() + options.durationMs;
  await Promise.all(
    Array.from({ length: options.parallel }, async (_, client) => {
      for (let i = client; performance.now() < until; i++) {
        const body = options.bodies[i % options.bodies.length];
        const status = await fetch(`${url}${options.path ?? "/score"}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        }).then(
          async (response) => {
            await response.arrayBuffer();
            return String(response.status);
          },
          () => "closed",
        );
        count(statuses, status);
      }
    }),
  );
  return statuses;
}

/** The largest valid `/score` body for 4-feature rows: `rows` rows, padded with spaces to `bytes`. */
export function fullScoreBody(rows: number, bytes: number): string {
  const row = "[5.123456789012345, 3.523456789012345, 1.423456789012345, 0.223456789012345]";
  const body = `{"X": [${Array.from({ length: rows }, () => row).join(", ")}]}`;
  return body + " ".repeat(Math.max(0, bytes - body.length));
}

/** The body that costs the most per byte: one row of zeros, `bytes` long (issue 8's repro). */
export function zerosBody(bytes: number): string {
  const zeros = Math.max(1, Math.floor((bytes - 12) / 2));
  return `{"X": [[${"0,".repeat(zeros - 1)}0]]}`;
}

export interface ProbeReport {
  readonly probes: number;
  readonly failures: number;
  readonly worstMs: number;
}

/** The probe's own process: one GET after another; the first (connection set-up) is not counted. */
const PROBE = `
let running = true, probes = 0, failures = 0, worstMs = 0;
process.on("message", () => { running = false; });
const get = () => fetch(process.env.PROBE_URL + "/healthz", { signal: AbortSignal.timeout(10000) })
  .then(async (r) => { await r.arrayBuffer(); return r.ok; }, () => false);
(async () => {
  await get();
  process.send("ready");
  while (running) {
    const startedAt = performance.now();
    const ok = await get();
    worstMs = Math.max(worstMs, performance.now() - startedAt);
    probes++;
    if (!ok) failures++;
    await new Promise((resolve) => setTimeout(resolve, Number(process.env.PROBE_INTERVAL_MS)));
  }
  process.send({ probes, failures, worstMs }, () => process.exit(0));
})();
`;

/**
 * Starts GETting `/healthz`, `intervalMs` apart, from a process of its own (the attackers' busy
 * event loop would delay the probe, not the server); resolves once the first probe is answered.
 * `stop` reports the slowest probe since.
 */
export async function probeHealth(
  url: string,
  intervalMs = 25,
): Promise<{ stop: () => Promise<ProbeReport> }> {
  const child = spawn(process.execPath, ["-e", PROBE], {
    env: { PATH: process.env.PATH ?? "", PROBE_URL: url, PROBE_INTERVAL_MS: String(intervalMs) },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const messages: unknown[] = [];
  const next = () =>
    new Promise<unknown>((resolve, reject) => {
      if (messages.length > 0) return resolve(messages.shift());
      child.once("message", () => resolve(messages.shift()));
      child.once("exit", (code) => reject(new Error(`the probe process exited with ${code}`)));
    });
  child.on("message", (message) => messages.push(message));
  await next();
  return {
    stop: async () => {
      child.send("stop");
      return (await next()) as ProbeReport;
    },
  };
}

/** Resident memory of a process in MiB, now and at its peak (Linux `/proc`). */
export function residentMiB(pid: number): { now: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1]);
  return { now: kib("VmRSS") / 1024, peak: kib("VmHWM") / 1024 };
}
