import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { SERVER_JS } from "../../../service/bench/load";

/** The compiled service entry; `npm test` builds it before jest runs. */
export { SERVER_JS };

export interface ServiceProcess {
  readonly child: ChildProcess;
  /** `http://127.0.0.1:<port>` once the service logged `ready`. */
  readonly url: string;
  /** Every JSON log line so far. */
  readonly logs: Record<string, unknown>[];
  /** Resolves with the exit code (or signal name) once the process has ended. */
  readonly exited: Promise<number | string>;
}

/**
 * Spawns `command` (by default the service) with a service's environment: loopback, any free
 * port, and unless `env` names one, a model cache of its own (a download kept by one test must
 * not be found by the next), removed when the process ends.
 */
export function spawnService(
  env: Record<string, string>,
  command: readonly string[] = [process.execPath, SERVER_JS],
): ChildProcess {
  const cacheDir = env.MODEL_CACHE_DIR ?? mkdtempSync(path.join(os.tmpdir(), "mlscore-cache-"));
  const child = spawn(command[0], command.slice(1), {
    env: {
      PATH: process.env.PATH ?? "",
      HOST: "127.0.0.1",
      PORT: "0",
      MODEL_CACHE_DIR: cacheDir,
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (env.MODEL_CACHE_DIR === undefined) {
    child.once("exit", () => rmSync(cacheDir, { recursive: true, force: true }));
  }
  return child;
}

/** Collects stdout log lines and stderr, and resolves `exited` when the process ends. */
function watch(child: ChildProcess) {
  const logs: Record<string, unknown>[] = [];
  let stderr = "";
  readline.createInterface({ input: child.stdout! }).on("line", (line) => {
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      logs.push({ raw: line });
    }
  });
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)),
  );
  return { logs, exited, stderr: () => stderr };
}

/** Starts `node service/dist/server.js` on a free loopback port and waits until it is ready. */
export async function startService(
  env: Record<string, string> = {},
  timeoutMs = 15_000,
): Promise<ServiceProcess> {
  const child = spawnService(env);
  const { logs, exited, stderr } = watch(child);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ready = logs.find((line) => line.message === "ready");
    if (ready) return { child, url: `http://127.0.0.1:${String(ready.port)}`, logs, exited };
    if (child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  child.kill("SIGKILL");
  throw new Error(
    `service did not become ready; stderr: ${stderr()}; logs: ${JSON.stringify(logs)}`,
  );
}

/** Runs the service expecting it to fail at start; returns its exit code and stderr. */
export async function failedStart(
  env: Record<string, string>,
): Promise<{ code: number | string; stderr: string }> {
  const child = spawnService(env);
  const { exited, stderr } = watch(child);
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  const code = await exited;
  clearTimeout(timer);
  return { code, stderr: stderr() };
}
