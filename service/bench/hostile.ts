/**
 * `npm run bench:hostile`: issue 8's hostile clients against the service (iris model) pinned to
 * core 0, with the attackers and the `/healthz` probe on core 1 (the npm script pins this
 * process). Prints, per attack, the answers, the service's peak resident memory and the slowest
 * probe. The service's heap is sized as in the default pod (POD_HEAP).
 */
import { spawn } from "node:child_process";
import readline from "node:readline";
import {
  bigBodies,
  fullScoreBody,
  POD_HEAP,
  probeHealth,
  residentMiB,
  stalledBodies,
  zerosBody,
  type Statuses,
} from "./attacks";
import { SERVER_CORE, SERVER_JS } from "./load";

const MiB = 1024 * 1024;
const DURATION_MS = Number(process.env.BENCH_SECONDS ?? 10) * 1000;

interface Scenario {
  readonly name: string;
  readonly env: Record<string, string>;
  readonly attack: (url: string, limit: number) => Promise<Statuses>;
}

const SCENARIOS: Scenario[] = [
  {
    name: "150 connections stall 5 MiB − 1 byte bodies (MAX_BODY_BYTES=5 MiB)",
    env: { MAX_BODY_BYTES: String(5 * MiB) },
    attack: (url) =>
      stalledBodies(url, { connections: 150, declaredBytes: 5 * MiB, keepOpenMs: 30_000 }),
  },
  {
    name: "150 connections stall bodies of the limit − 1 byte (defaults)",
    env: {},
    attack: (url, limit) =>
      stalledBodies(url, { connections: 150, declaredBytes: limit, keepOpenMs: 30_000 }),
  },
  {
    name: "12 clients post 5 MiB of zeros, and valid bodies and zeros at the limit (defaults)",
    env: {},
    attack: (url, limit) =>
      bigBodies(url, {
        parallel: 12,
        bodies: [zerosBody(5 * MiB), fullScoreBody(1024, limit - 16), zerosBody(limit - 16)],
        durationMs: DURATION_MS,
      }),
  },
  {
    name: "12 clients post 5 MiB of zeros (MAX_BODY_BYTES=5 MiB)",
    env: { MAX_BODY_BYTES: String(5 * MiB) },
    attack: (url) =>
      bigBodies(url, { parallel: 12, bodies: [zerosBody(5 * MiB - 16)], durationMs: DURATION_MS }),
  },
];

/** Starts the service pinned to SERVER_CORE; resolves with its URL and body limit once ready. */
async function start(env: Record<string, string>) {
  const child = spawn("taskset", ["-c", SERVER_CORE, process.execPath, SERVER_JS], {
    env: {
      PATH: process.env.PATH ?? "",
      HOST: "127.0.0.1",
      PORT: "0",
      NODE_OPTIONS: POD_HEAP,
      ...env,
    },
    // The service's stderr (a crash report) would drown the table.
    stdio: ["ignore", "pipe", "ignore"],
  });
  const ready = await new Promise<{ port: number; limits?: { maxBodyBytes: number } }>(
    (resolve, reject) => {
      readline.createInterface({ input: child.stdout }).on("line", (line) => {
        const entry = JSON.parse(line) as Record<string, unknown>;
        // `msg`: the service before its logs carried Cloud Logging's `message`.
        if ((entry.message ?? entry.msg) === "ready") resolve(entry as never);
      });
      child.once("exit", (code) => reject(new Error(`the service exited with ${code}`)));
    },
  );
  return {
    child,
    url: `http://127.0.0.1:${ready.port}`,
    limit: ready.limits?.maxBodyBytes ?? 5 * MiB,
  };
}

async function main(): Promise<void> {
  console.log(
    `mlscore hostile-client benchmark: node ${process.version}, service on core ${SERVER_CORE}, attackers and probe beside this process\n`,
  );
  console.log("| attack | answers | peak RSS MiB | worst /healthz ms | probes |");
  console.log("|---|---|---:|---:|---:|");
  for (const scenario of SCENARIOS) {
    const service = await start(scenario.env);
    try {
      const probe = await probeHealth(service.url);
      const statuses = await scenario.attack(service.url, service.limit);
      const health = await probe.stop();
      const answers = Object.entries(statuses)
        .sort()
        .map(([status, n]) => `${n}× ${status}`)
        .join(", ");
      const alive = service.child.exitCode === null && service.child.signalCode === null;
      const peak = alive ? residentMiB(service.child.pid!).peak.toFixed(0) : "crashed";
      console.log(
        `| ${scenario.name} | ${answers} | ${peak} | ${health.worstMs.toFixed(0)} | ${health.probes} (${health.failures} failed) |`,
      );
    } finally {
      service.child.kill("SIGKILL");
    }
  }
}

main().catch((error: unknown) => {
  console.error(`bench: ${(error as Error).message}`);
  process.exit(1);
});
