/**
 * `npm run bench:profile`: where a request's time goes. Runs the service on iris under
 * `node --cpu-prof`, pinned like the benchmark, loads it with the benchmark's one-row OIP v2
 * request, and sorts the CPU samples of the measured seconds into the parts of the request path,
 * in microseconds per request, with batching off and on. A sample counts towards the nearest
 * frame on its stack that belongs to a part (JSON.parse called by the body reader counts as the
 * body reader).
 *
 * BENCH_SECONDS (10), BENCH_CONNECTIONS ("32,128"), PROFILE_TOP (0: the busiest functions).
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort, requireTools, SERVER_JS, sleep, start, wrk } from "./load";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = (process.env.BENCH_CONNECTIONS ?? "32,128").split(",").map(Number);
const TOP = Number(process.env.PROFILE_TOP ?? 0);
const IRIS_V2 = JSON.stringify({
  inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: [5.1, 3.5, 1.4, 0.2] }],
});

/** The parts of the request path, by the script a frame belongs to; the first match wins. */
const PARTS: readonly [string, RegExp][] = [
  ["onnxruntime (the model's run, its tensors)", /onnxruntime/],
  ["batching: stacking, splitting, scheduling", /dist\/model\/batch/],
  ["metrics (prom-client)", /prom-client|dist\/http\/metrics/],
  ["request log and id (observe)", /dist\/http\/observe|pino/],
  ["body reader and JSON.parse", /dist\/http\/(body|turns)/],
  ["protocol: validation, decoding, encoding", /dist\/protocols|zod/],
  ["Express: router, res.json and JSON.stringify", /node_modules\/(express|router)\//],
  ["other node_modules", /node_modules/],
  ["the service's own code, other", /dist\//],
  ["node:http, sockets and streams (writev, llhttp)", /^node:/],
];

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string };
  readonly children?: readonly number[];
}
interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
  readonly endTime: number;
}

/** Microseconds of samples in the last `seconds` before `marginUs` from the end, by part. */
function partsOf(profile: Profile, seconds: number, marginUs: number) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parent.set(child, node.id);
  const partOf = new Map<number, string>();
  const classify = (id: number): string => {
    const known = partOf.get(id);
    if (known) return known;
    const { functionName, url } = byId.get(id)!.callFrame;
    const special = /^\((idle|garbage collector|program)\)$/.exec(functionName)?.[1];
    const part =
      special ??
      PARTS.find(([, pattern]) => url !== "" && pattern.test(url))?.[0] ??
      (parent.has(id) ? classify(parent.get(id)!) : "other");
    partOf.set(id, part);
    return part;
  };
  const totals = new Map<string, number>();
  const functions = new Map<string, number>();
  const times: number[] = [];
  let at = 0;
  for (const delta of profile.timeDeltas) times.push((at += delta));
  const last = times[times.length - 1] ?? 0;
  const [from, to] = [last - marginUs - seconds * 1e6, last - marginUs];
  profile.samples.forEach((id, i) => {
    if (times[i] < from || times[i] > to) return;
    const us = profile.timeDeltas[i + 1] ?? 0;
    const part = classify(id);
    totals.set(part, (totals.get(part) ?? 0) + us);
    const { functionName, url } = byId.get(id)!.callFrame;
    const name = `${functionName || "(anonymous)"} ${url.replace(/.*node_modules\//, "")}`;
    functions.set(name, (functions.get(name) ?? 0) + us);
  });
  return { totals, functions };
}

async function profileRun(env: Record<string, string>, connections: number) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "mlscore-profile-"));
  const port = await freePort();
  const server = await start(
    {
      argv: [process.execPath, "--cpu-prof", `--cpu-prof-dir=${dir}`, SERVER_JS],
      env: { HOST: "127.0.0.1", PORT: String(port), ...env },
      readyPath: "/readyz",
    },
    port,
  );
  try {
    const url = `${server.url}/v2/models/iris/infer`;
    wrk(url, IRIS_V2, connections, 2);
    const load = wrk(url, IRIS_V2, connections, SECONDS);
    // SIGTERM: the service drains (nothing is in flight) and exits, and V8 writes the profile.
    server.child.kill("SIGTERM");
    while (server.child.exitCode === null) await sleep(20);
    const file = readdirSync(dir).find((name) => name.endsWith(".cpuprofile"));
    if (!file) throw new Error("the service wrote no profile");
    const profile = JSON.parse(readFileSync(path.join(dir, file), "utf8")) as Profile;
    return { load, ...partsOf(profile, SECONDS, 100_000) };
  } finally {
    server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  requireTools();
  console.log(
    `mlscore profile: node ${process.version}, iris over OIP v2, ${SECONDS} s measured\n`,
  );
  for (const connections of CONNECTIONS) {
    for (const [name, env] of [
      ["batching off", { MAX_BATCH_DELAY_MS: "0" }],
      ["batching on", {}],
    ] as const) {
      const { load, totals, functions } = await profileRun(env, connections);
      const requests = load.rps * SECONDS;
      const busy = [...totals].filter(([part]) => part !== "idle").reduce((s, [, us]) => s + us, 0);
      console.log(
        `${name}, ${connections} connections: ${load.rps.toFixed(0)} requests/s, p99 ${load.p99Ms.toFixed(2)} ms, ${(busy / requests).toFixed(1)} µs of CPU per request\n`,
      );
      console.log("| part | µs per request | share of CPU |");
      console.log("|---|---:|---:|");
      for (const [part, us] of [...totals].sort((a, b) => b[1] - a[1])) {
        if (part === "idle") continue;
        console.log(
          `| ${part} | ${(us / requests).toFixed(1)} | ${((100 * us) / busy).toFixed(0)}% |`,
        );
      }
      for (const [fn, us] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
        console.log(`    ${(us / requests).toFixed(2).padStart(7)} µs  ${fn}`);
      }
      console.log("");
    }
  }
}

main().catch((error: unknown) => {
  console.error(`bench:profile: ${(error as Error).message}`);
  process.exit(1);
});
