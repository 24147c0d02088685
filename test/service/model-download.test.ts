import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { residentMiB } from "../../service/bench/attacks";
import { bigModel } from "../../service/bench/big-model";
import { BUILTIN_MODEL_URI } from "../../service/src/config";
import { failedStart, SERVER_JS, spawnService, startService } from "./support/service-process";

const IRIS = readFileSync(BUILTIN_MODEL_URI);
const IRIS_SHA256 = createHash("sha256").update(IRIS).digest("hex");
/** What a presigned URL's query string looks like; it must never appear in any output. */
const SECRET = "X-Goog-Signature=0123456789abcdefSECRET";

/** A self-signed certificate for 127.0.0.1, trusted by the service through NODE_EXTRA_CA_CERTS. */
function selfSigned(): { key: Buffer; cert: Buffer; caFile: string; dir: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "mlscore-tls-"));
  const keyFile = path.join(dir, "key.pem");
  const caFile = path.join(dir, "cert.pem");
  execFileSync(
    "openssl",
    [
      ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"],
      ...["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
      ...["-keyout", keyFile, "-out", caFile],
    ],
    { stdio: "ignore" },
  );
  return { key: readFileSync(keyFile), cert: readFileSync(caFile), caFile, dir };
}

describe("MODEL_URI=https://", () => {
  let server: https.Server;
  let base: string;
  let caFile: string;
  let tlsDir: string;
  /** Paths (without query) of every request the model store received. */
  const requested: string[] = [];
  const downloads = (file: string) => requested.filter((url) => url === file).length;
  /** What `/big.onnx` serves, made only for the test that needs it. */
  let big: Buffer | undefined;

  beforeAll(async () => {
    const tls = selfSigned();
    caFile = tls.caFile;
    tlsDir = tls.dir;
    server = https.createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
      const file = (req.url ?? "").split("?")[0];
      requested.push(file);
      if (file === "/iris.onnx") res.end(IRIS);
      else if (file === "/big.onnx" && big) res.end(big);
      else if (file === "/truncated.onnx") {
        // Promises more than it sends, as a connection dropped mid-download would.
        res.writeHead(200, { "content-length": String(IRIS.length) });
        res.write(IRIS.subarray(0, 64));
        setTimeout(() => res.socket?.destroy(), 50);
      } else if (file === "/stalls.onnx") {
        // Starts, then sends nothing more: a store that hangs mid-download.
        res.writeHead(200, { "content-length": String(IRIS.length) });
        res.write(IRIS.subarray(0, 64));
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
    rmSync(tlsDir, { recursive: true, force: true });
  });

  it("downloads, verifies and serves the model; the name comes from the URL", async () => {
    const service = await startService({
      MODEL_URI: `${base}/iris.onnx`,
      MODEL_SHA256: IRIS_SHA256,
      NODE_EXTRA_CA_CERTS: caFile,
    });
    try {
      const metadata = await (await fetch(`${service.url}/v2/models/iris`)).json();
      expect(metadata).toMatchObject({ name: "iris", platform: "onnxruntime" });
    } finally {
      service.child.kill("SIGKILL");
    }
  });

  it.each([
    ["/missing.onnx", "answered HTTP 404"],
    ["/truncated.onnx", "failed: "],
  ])("exits 1 when %s cannot be downloaded whole", async (file, reason) => {
    const { code, stderr } = await failedStart({
      MODEL_URI: `${base}${file}`,
      NODE_EXTRA_CA_CERTS: caFile,
    });
    expect(code).toBe(1);
    expect(stderr).toContain(`mlscore: model download from ${base}${file} `);
    expect(stderr).toContain(reason);
  });

  it("exits 1 when the certificate is not trusted", async () => {
    const { code, stderr } = await failedStart({ MODEL_URI: `${base}/iris.onnx` });
    expect(code).toBe(1);
    expect(stderr).toMatch(/^mlscore: model download from .* failed: .*certificate/);
  });

  it("keeps the download where a restart finds it, and hashes it again before reusing it", async () => {
    const cacheDir = mkdtempSync(path.join(os.tmpdir(), "mlscore-kept-"));
    const start = async (signature: string) => {
      const service = await startService({
        MODEL_URI: `${base}/iris.onnx?X-Goog-Signature=${signature}`,
        MODEL_CACHE_DIR: cacheDir,
        NODE_EXTRA_CA_CERTS: caFile,
      });
      const status = (await fetch(`${service.url}/readyz`)).status;
      service.child.kill("SIGKILL");
      await service.exited;
      return status;
    };
    const before = downloads("/iris.onnx");
    expect(await start("first")).toBe(200);
    expect(downloads("/iris.onnx")).toBe(before + 1);
    // A restart, even with a freshly signed URL for the same object, downloads nothing.
    expect(await start("second")).toBe(200);
    expect(downloads("/iris.onnx")).toBe(before + 1);
    // A kept file whose bytes changed is not trusted: it is downloaded again.
    const [kept] = readdirSync(cacheDir);
    writeFileSync(path.join(cacheDir, kept), Buffer.alloc(IRIS.length));
    expect(await start("third")).toBe(200);
    expect(downloads("/iris.onnx")).toBe(before + 2);
    expect(readFileSync(path.join(cacheDir, kept))).toEqual(IRIS);
    rmSync(cacheDir, { recursive: true, force: true });
  });

  it("loads a 128 MiB model over https at about twice its size in memory, not four times", async () => {
    const MiB = 1024 * 1024;
    big = bigModel(128 * MiB);
    const peakOf = async (env: Record<string, string>) => {
      // What loading costs, not answering: the warm-up's answers would be 32 MiB of floats a row.
      const service = await startService(
        { NODE_EXTRA_CA_CERTS: caFile, WARM_UP_REQUESTS: "0", ...env },
        90_000,
      );
      const { peak } = residentMiB(service.child.pid!);
      service.child.kill("SIGKILL");
      return peak;
    };
    try {
      const baseline = await peakOf({});
      const loaded = await peakOf({ MODEL_URI: `${base}/big.onnx` });
      // Streamed to a file and opened from it: onnxruntime's own copy and the weights, about
      // 2.1 × the model. Gathered in memory and handed over as a buffer, it was 4 ×.
      expect(loaded - baseline).toBeLessThan(3 * 128);
    } finally {
      big = undefined;
    }
  }, 180_000);

  it("never writes a presigned URL's query string: not in logs, metrics or start-up failures", async () => {
    const service = await startService({
      MODEL_URI: `${base}/iris.onnx?${SECRET}`,
      NODE_EXTRA_CA_CERTS: caFile,
      LOG_LEVEL: "debug",
    });
    try {
      await fetch(`${service.url}/score?${SECRET}`, { method: "POST", body: "{" });
      const metrics = await (await fetch(`${service.url}/metrics`)).text();
      expect(metrics).toContain('model_info{name="iris"');
      expect(metrics).not.toContain("SECRET");
      const loading = service.logs.find((line) => line.message === "loading model");
      expect(loading).toMatchObject({ modelUri: `${base}/iris.onnx` });
      expect(JSON.stringify(service.logs)).toContain('"url":"/score"');
      expect(JSON.stringify(service.logs)).not.toContain("SECRET");
    } finally {
      service.child.kill("SIGKILL");
    }
    const failures = await Promise.all(
      (
        [
          { MODEL_URI: `${base}/missing.onnx?${SECRET}`, NODE_EXTRA_CA_CERTS: caFile },
          { MODEL_URI: `${base}/truncated.onnx?${SECRET}`, NODE_EXTRA_CA_CERTS: caFile },
          { MODEL_URI: `${base}/iris.onnx?${SECRET}` },
          { MODEL_URI: `https://user:${SECRET}@127.0.0.1:1/iris.onnx` },
        ] as Record<string, string>[]
      ).map((env) => failedStart(env)),
    );
    for (const { code, stderr } of failures) {
      expect(code).toBe(1);
      expect(stderr).toMatch(
        /^mlscore: model download from https:\/\/127\.0\.0\.1:\d+\/\w+\.onnx /,
      );
      expect(stderr).not.toContain("SECRET");
    }
  });

  it("exits 1 when the download outlasts MODEL_LOAD_TIMEOUT_SECONDS", async () => {
    const startedAt = Date.now();
    const { code, stderr } = await failedStart({
      MODEL_URI: `${base}/stalls.onnx`,
      MODEL_LOAD_TIMEOUT_SECONDS: "1",
      NODE_EXTRA_CA_CERTS: caFile,
    });
    expect({ code, stderr }).toEqual({
      code: 1,
      stderr: `mlscore: model download from ${base}/stalls.onnx did not finish within MODEL_LOAD_TIMEOUT_SECONDS=1; raise it for a large model or a slow store\n`,
    });
    expect(Date.now() - startedAt).toBeLessThan(10_000);
  });

  it("ends at once on SIGTERM while the model downloads, even as PID 1", async () => {
    // In its own PID namespace the service is PID 1, as in the image, where a signal without a
    // handler is ignored instead of ending the process.
    const child = spawnService(
      { MODEL_URI: `${base}/stalls.onnx`, NODE_EXTRA_CA_CERTS: caFile },
      ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--kill-child"].concat(
        process.execPath,
        SERVER_JS,
      ),
    );
    const messages: unknown[] = [];
    readline
      .createInterface({ input: child.stdout! })
      .on("line", (line) => messages.push((JSON.parse(line) as { message: unknown }).message));
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    try {
      const stalledBefore = downloads("/stalls.onnx");
      const deadline = Date.now() + 10_000;
      while (downloads("/stalls.onnx") === stalledBefore && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(messages).toContain("loading model");
      const node = Number(
        readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").trim(),
      );
      const signalledAt = Date.now();
      process.kill(node, "SIGTERM");
      expect(await exited).toBe(0);
      expect(Date.now() - signalledAt).toBeLessThan(2_000);
      expect(messages).toContain("stopped while loading the model");
    } finally {
      child.kill("SIGKILL");
    }
  });
});
