import { spawn } from "node:child_process";
import {
  appendFileSync,
  cpSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";

const ROOT = path.resolve(__dirname, "../..");

/** Modification times of every file under `dir`, by path. */
function mtimes(dir: string): Record<string, number> {
  const times: Record<string, number> = {};
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    times[path.relative(dir, file)] = statSync(file).mtimeMs;
  }
  return times;
}

/** Runs `npm start` in `dir` until the service logs `ready`, then stops it. */
async function npmStart(dir: string): Promise<void> {
  const child = spawn("npm", ["start"], {
    cwd: dir,
    detached: true,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: os.tmpdir(),
      HOST: "127.0.0.1",
      PORT: "0",
      MODEL_URI: "identity",
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      readline.createInterface({ input: child.stdout }).on("line", (line) => {
        if (line.includes('"message":"ready"')) resolve();
      });
      child.once("exit", (code) => reject(new Error(`npm start exited with ${code}`)));
    });
  } finally {
    process.kill(-child.pid!, "SIGKILL");
  }
}

describe("npm start", () => {
  it("compiles the service only when its sources changed, and starts from the build", async () => {
    // A copy of the service beside the repository's dependencies, so the build here cannot race
    // the tests that run service/dist.
    const dir = mkdtempSync(path.join(os.tmpdir(), "mlscore-start-"));
    cpSync(path.join(ROOT, "tsconfig.json"), path.join(dir, "tsconfig.json"));
    for (const entry of ["package.json", "tsconfig.json", "src", "models"]) {
      cpSync(path.join(ROOT, "service", entry), path.join(dir, "service", entry), {
        recursive: true,
      });
    }
    symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
    const service = path.join(dir, "service");
    const dist = path.join(service, "dist");

    await npmStart(service);
    const built = mtimes(dist);
    expect(Object.keys(built)).toContain("server.js");

    await npmStart(service);
    expect(mtimes(dist)).toEqual(built);

    appendFileSync(path.join(service, "src", "version.ts"), "\n");
    await npmStart(service);
    expect(mtimes(dist)["version.js"]).toBeGreaterThan(built["version.js"]);
    rmSync(dir, { recursive: true, force: true });
  }, 180_000);
});
