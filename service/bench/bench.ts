/**
 * `npm run bench`: the service beside its peers, each server pinned to one core and wrk to the
 * other, all loaded with the same one-row iris request through the Open Inference Protocol v2:
 * a bare node:http JSON echo (the ceiling), mlscore on the identity model, mlscore on iris with
 * batching off and on, and Seldon's MLServer on iris (scikit-learn), at 1, 32 and 128
 * connections. Then the first 2 s after ready, with and without the warm-up, against the same
 * process once warm. Prints requests/s, p50, p99, peak RSS and start-to-ready, and the targets.
 *
 * BENCH_SECONDS (10) per measurement, BENCH_CONNECTIONS ("1,32,128"), BENCH_REPEAT (1): with
 * more, each cell is the median of fresh processes, with the range beside it.
 */
import os from "node:os";
import {
  LOAD_CORE,
  SERVER_CORE,
  SERVER_JS,
  freePort,
  peakRssMb,
  requireTools,
  start,
  wrk,
  type LoadResult,
  type ServerSpec,
} from "./load";
import { echoServer, mlserver, mlserverEnv } from "./peers";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = (process.env.BENCH_CONNECTIONS ?? "1,32,128").split(",").map(Number);
const REPEAT = Number(process.env.BENCH_REPEAT ?? 1);
/** Load before each measurement: JIT, connection pools, the model's first runs. */
const WARM_SECONDS = 2;

/** The one request every server gets: one iris row, OIP v2. */
const IRIS_V2 = JSON.stringify({
  inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: [5.1, 3.5, 1.4, 0.2] }],
});

interface Target {
  readonly name: string;
  readonly path: string;
  readonly server: (port: number) => ServerSpec | Promise<ServerSpec>;
}

const service =
  (env: Record<string, string>) =>
  (port: number): ServerSpec => ({
    argv: [process.execPath, SERVER_JS],
    env: { HOST: "127.0.0.1", PORT: String(port), ...env },
    readyPath: "/readyz",
  });

const IRIS_OFF = "mlscore, iris, batching off";
const IRIS_ON = "mlscore, iris, batching on (default)";
const MLSERVER = "MLServer 1.7.1, iris";
const TARGETS: Target[] = [
  { name: "node:http JSON echo (ceiling)", path: "/", server: echoServer },
  {
    name: "mlscore, identity",
    path: "/v2/models/identity/infer",
    server: service({ MODEL_URI: "identity" }),
  },
  { name: IRIS_OFF, path: "/v2/models/iris/infer", server: service({ MAX_BATCH_DELAY_MS: "0" }) },
  { name: IRIS_ON, path: "/v2/models/iris/infer", server: service({}) },
  {
    name: `${MLSERVER}, inference in the server process`,
    path: "/v2/models/iris/infer",
    server: (port) => mlserver(port, 0),
  },
  {
    name: `${MLSERVER}, one inference worker process (its default)`,
    path: "/v2/models/iris/infer",
    server: (port) => mlserver(port, 1),
  },
];

interface Row extends LoadResult {
  readonly target: string;
  readonly connections: number;
  readonly peakRssMb: number;
  readonly readyMs: number;
}

async function measure(target: Target, connections: number): Promise<Row> {
  const port = await freePort();
  const server = await start(await target.server(port), port);
  try {
    const url = `${server.url}${target.path}`;
    wrk(url, IRIS_V2, connections, WARM_SECONDS);
    const load = wrk(url, IRIS_V2, connections, SECONDS);
    return {
      target: target.name,
      connections,
      ...load,
      peakRssMb: peakRssMb(server.child.pid!),
      readyMs: server.readyMs,
    };
  } finally {
    server.stop();
  }
}

const median = (values: readonly number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];

/** The median of `rows`, with the range when there is more than one. */
function cell(rows: readonly Row[], pick: (row: Row) => number, digits: number): string {
  const values = rows.map(pick);
  const text = median(values).toFixed(digits);
  if (values.length === 1) return text;
  return `${text} (${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)})`;
}

function printTable(results: Map<string, Row[]>): void {
  const echo = (connections: number) =>
    median(results.get(`${TARGETS[0].name}@${connections}`)?.map((row) => row.rps) ?? [NaN]);
  console.log(
    "| target | connections | requests/s | % of echo | p50 ms | p99 ms | peak RSS MB | start-to-ready ms | errors |",
  );
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const rows of results.values()) {
    const { target, connections } = rows[0];
    const share = ((100 * median(rows.map((row) => row.rps))) / echo(connections)).toFixed(0);
    console.log(
      `| ${target} | ${connections} | ${cell(rows, (r) => r.rps, 0)} | ${share}% | ${cell(rows, (r) => r.p50Ms, 2)} | ${cell(rows, (r) => r.p99Ms, 2)} | ${cell(rows, (r) => r.peakRssMb, 0)} | ${cell(rows, (r) => r.readyMs, 0)} | ${rows.reduce((sum, r) => sum + r.errors, 0)} |`,
    );
  }
}

function printTargets(results: Map<string, Row[]>): void {
  const at = (name: string, connections: number) => {
    const rows = results.get(`${name}@${connections}`);
    if (!rows) return undefined;
    return {
      rps: median(rows.map((r) => r.rps)),
      p50: median(rows.map((r) => r.p50Ms)),
      p99: median(rows.map((r) => r.p99Ms)),
    };
  };
  const verdict = (met: boolean) => (met ? "met" : "MISSED");
  const on32 = at(IRIS_ON, 32);
  const peers = TARGETS.filter((t) => t.name.startsWith(MLSERVER)).map((t) => at(t.name, 32));
  const best = Math.max(...peers.map((peer) => peer?.rps ?? 0));
  if (on32 && best > 0) {
    const ratio = on32.rps / best;
    console.log(
      `- iris, 32 connections: ${ratio.toFixed(1)}× MLServer's best requests/s (target ≥ 5×: ${verdict(ratio >= 5)}), p99 ${on32.p99.toFixed(2)} ms (target < 5 ms: ${verdict(on32.p99 < 5)})`,
    );
  }
  const [on128, off128] = [at(IRIS_ON, 128), at(IRIS_OFF, 128)];
  if (on128 && off128) {
    const gain = on128.rps / off128.rps - 1;
    console.log(
      `- iris, 128 connections: batching ${gain >= 0 ? "+" : ""}${(100 * gain).toFixed(0)}% requests/s (target ≥ +30%: ${verdict(gain >= 0.3)}), p99 ${on128.p99.toFixed(2)} against ${off128.p99.toFixed(2)} ms (target no worse: ${verdict(on128.p99 <= off128.p99)})`,
    );
  }
  const [on1, off1] = [at(IRIS_ON, 1), at(IRIS_OFF, 1)];
  if (on1 && off1) {
    const added = on1.p50 - off1.p50;
    console.log(
      `- iris, 1 connection: batching adds ${added.toFixed(3)} ms to p50 (target ≤ 0.2 ms: ${verdict(added <= 0.2)})`,
    );
  }
}

/** p99 and requests/s of the first 2 s after ready, then of 2 s more once warm. */
async function firstSeconds(env: Record<string, string>) {
  const port = await freePort();
  const server = await start(service(env)(port), port);
  try {
    const url = `${server.url}/v2/models/iris/infer`;
    const first = wrk(url, IRIS_V2, 32, 2);
    const warm = wrk(url, IRIS_V2, 32, 2);
    return { first, warm, readyMs: server.readyMs };
  } finally {
    server.stop();
  }
}

async function printFirstSeconds(): Promise<void> {
  console.log(
    "\n| iris, 32 connections | start-to-ready ms | first 2 s p99 ms | first 2 s requests/s | warm p99 ms | warm requests/s |",
  );
  console.log("|---|---:|---:|---:|---:|---:|");
  for (const [name, env] of [
    ["no warm-up (WARM_UP_REQUESTS=0)", { WARM_UP_REQUESTS: "0" }],
    ["warm-up (default)", {}],
  ] as const) {
    for (let i = 0; i < Math.max(REPEAT, 3); i++) {
      const { first, warm, readyMs } = await firstSeconds(env);
      console.log(
        `| ${name} | ${readyMs.toFixed(0)} | ${first.p99Ms.toFixed(2)} | ${first.rps.toFixed(0)} | ${warm.p99Ms.toFixed(2)} | ${warm.rps.toFixed(0)} |`,
      );
    }
  }
}

async function main(): Promise<void> {
  requireTools();
  mlserverEnv(); // made before any timing starts
  const [load1, load5] = os.loadavg();
  console.log(
    `mlscore benchmark: node ${process.version}, servers on core ${SERVER_CORE}, wrk on core ${LOAD_CORE}, ` +
      `${SECONDS} s per measurement after ${WARM_SECONDS} s of warm-up, ${REPEAT} run(s) each; ` +
      `load average ${load1.toFixed(2)} (1 min), ${load5.toFixed(2)} (5 min)\n`,
  );
  const results = new Map<string, Row[]>();
  for (const target of TARGETS) {
    for (const connections of CONNECTIONS) {
      const rows: Row[] = [];
      for (let i = 0; i < REPEAT; i++) rows.push(await measure(target, connections));
      results.set(`${target.name}@${connections}`, rows);
    }
  }
  printTable(results);
  console.log("");
  printTargets(results);
  await printFirstSeconds();
}

main().catch((error: unknown) => {
  console.error(`bench: ${(error as Error).message}`);
  process.exit(1);
});
