/**
 * `npm run bench:model-load`: the service's peak resident memory while it loads 50, 200 and
 * 500 MiB models from a file, over https:// and from gs:// (a local storage emulator), against
 * the built-in iris model as the baseline. The models are generated here (a MatMul whose weight
 * is one big initializer, in the shape of a real network layer) into a temporary folder.
 */
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  createReadStream,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { residentMiB } from "./attacks";
import { bigModel } from "./big-model";
import { SERVER_JS } from "./load";

const MiB = 1024 * 1024;
const SIZES_MIB = (process.env.BENCH_SIZES_MIB ?? "50,200,500").split(",").map(Number);

interface Load {
  readonly peakMiB: number;
  readonly readyMs: number;
}

/** Starts the service on `env`, waits for `ready`, and reads its peak resident memory. */
async function load(env: Record<string, string>): Promise<Load> {
  const startedAt = performance.now();
  const cacheDir = mkdtempSync(path.join(os.tmpdir(), "mlscore-bench-cache-"));
  const child = spawn(process.execPath, [SERVER_JS], {
    env: {
      PATH: process.env.PATH ?? "",
      HOST: "127.0.0.1",
      PORT: "0",
      LOG_LEVEL: "info",
      MODEL_CACHE_DIR: cacheDir,
      // What loading costs, not answering: the big models' answers are 32 MiB of floats a row.
      WARM_UP_REQUESTS: "0",
      ...env,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      readline.createInterface({ input: child.stdout }).on("line", (line) => {
        if ((JSON.parse(line) as { message?: string }).message === "ready") resolve();
      });
      child.once("exit", (code) => reject(new Error(`the service exited with ${code}`)));
    });
    return { peakMiB: residentMiB(child.pid!).peak, readyMs: performance.now() - startedAt };
  } finally {
    child.kill("SIGKILL");
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

/** Serves the files in `dir` over TLS at `/name` and as a storage emulator's `b/bench/o/name`. */
async function stores(dir: string): Promise<{ https: string; storage: string; caFile: string }> {
  const keyFile = path.join(dir, "key.pem");
  const caFile = path.join(dir, "cert.pem");
  execFileSync(
    "openssl",
    [
      ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"],
      ...["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", keyFile, "-out", caFile],
    ],
    { stdio: "ignore" },
  );
  const send = (file: string, res: http.ServerResponse) => {
    res.writeHead(200, { "content-length": statSync(file).size });
    createReadStream(file).pipe(res);
  };
  const tls = https.createServer(
    { key: readFileSync(keyFile), cert: readFileSync(caFile) },
    (req, res) => send(path.join(dir, path.basename(req.url ?? "")), res),
  );
  const storage = http.createServer((req, res) => {
    const url = new URL(req.url ?? "", "http://x");
    const name = decodeURIComponent(url.pathname.split("/o/")[1] ?? "");
    const file = path.join(dir, path.basename(name));
    if (url.searchParams.get("alt") === "media") return send(file, res);
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ bucket: "bench", name, size: String(statSync(file).size) }));
  });
  const listen = async (server: http.Server) => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    server.unref();
    return (server.address() as AddressInfo).port;
  };
  return {
    https: `https://127.0.0.1:${await listen(tls)}`,
    storage: `http://127.0.0.1:${await listen(storage)}`,
    caFile,
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "mlscore-bench-models-"));
  try {
    const served = await stores(dir);
    const base = await load({});
    console.log(
      `mlscore model-load benchmark: node ${process.version}; baseline (built-in iris model) peak RSS ${base.peakMiB.toFixed(0)} MiB\n`,
    );
    console.log("| model | source | peak RSS MiB | above baseline MiB | × model size | ready s |");
    console.log("|---:|---|---:|---:|---:|---:|");
    for (const sizeMiB of SIZES_MIB) {
      const bytes = bigModel(sizeMiB * MiB);
      const name = `big-${sizeMiB}.onnx`;
      writeFileSync(path.join(dir, name), bytes);
      const sha256 = createHash("sha256").update(bytes).digest("hex");
      const common = { MODEL_SHA256: sha256, MODEL_MAX_BYTES: String(bytes.length) };
      const sources: [string, Record<string, string>][] = [
        ["file", { MODEL_URI: path.join(dir, name) }],
        ["https://", { MODEL_URI: `${served.https}/${name}`, NODE_EXTRA_CA_CERTS: served.caFile }],
        ["gs://", { MODEL_URI: `gs://bench/${name}`, STORAGE_EMULATOR_HOST: served.storage }],
      ];
      for (const [source, env] of sources) {
        const result = await load({ ...common, ...env });
        const above = result.peakMiB - base.peakMiB;
        console.log(
          `| ${sizeMiB} MiB | ${source} | ${result.peakMiB.toFixed(0)} | ${above.toFixed(0)} | ${(above / (bytes.length / MiB)).toFixed(2)} | ${(result.readyMs / 1000).toFixed(1)} |`,
        );
      }
      rmSync(path.join(dir, name));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(`bench: ${(error as Error).message}`);
  process.exit(1);
});
