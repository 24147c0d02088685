import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { BUILTIN_MODEL_URI } from "../../service/src/config";
import { loadModel, ModelLoadError } from "../../service/src/model/load";
import { failedStart, startService } from "./support/service-process";

const IRIS = readFileSync(BUILTIN_MODEL_URI);
const IRIS_SHA256 = createHash("sha256").update(IRIS).digest("hex");
const source = (uri: string, extra: { sha256?: string; maxBytes?: number } = {}) => ({
  uri,
  name: "m",
  version: "1",
  maxBytes: 10 * 1024 * 1024,
  ...extra,
});

/** Listens on a free loopback port. */
async function serve<T extends http.Server | https.Server>(
  server: T,
): Promise<{ server: T; port: number }> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

describe("loadModel from a file", () => {
  it("loads the iris model and its labels file", async () => {
    const model = await loadModel(source(BUILTIN_MODEL_URI, { sha256: IRIS_SHA256 }));
    expect(model.platform).toBe("onnxruntime");
    expect(model.featureNames).toHaveLength(4);
    expect(model.classNames).toEqual(["setosa", "versicolor", "virginica"]);
    await model.close();
  });

  it("refuses bytes whose sha256 differs from MODEL_SHA256", async () => {
    await expect(loadModel(source(BUILTIN_MODEL_URI, { sha256: "0".repeat(64) }))).rejects.toThrow(
      new ModelLoadError(
        `model at ${BUILTIN_MODEL_URI} has sha256 ${IRIS_SHA256}, but MODEL_SHA256 is ${"0".repeat(64)}`,
      ),
    );
  });

  it("refuses a file over MODEL_MAX_BYTES", async () => {
    await expect(loadModel(source(BUILTIN_MODEL_URI, { maxBytes: 100 }))).rejects.toThrow(
      `model at ${BUILTIN_MODEL_URI} has ${IRIS.length} bytes, over MODEL_MAX_BYTES=100`,
    );
  });

  it("refuses a directory, saying to name the file", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "mlscore-"));
    await expect(loadModel(source(dir))).rejects.toThrow(
      new ModelLoadError(`model file ${dir} is not a file; point MODEL_URI at the .onnx file`),
    );
  });

  it("refuses a labels file beside the model that is not JSON", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "mlscore-"));
    const model = path.join(dir, "iris.onnx");
    writeFileSync(model, IRIS);
    writeFileSync(path.join(dir, "iris.json"), "{ not json");
    await expect(loadModel(source(model))).rejects.toThrow(
      `${path.join(dir, "iris.json")} is not valid JSON: `,
    );
  });

  it("refuses a file that is not an ONNX model, saying which file", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "mlscore-"));
    const junk = path.join(dir, "junk.onnx");
    writeFileSync(junk, "this is not a model");
    await expect(loadModel(source(junk))).rejects.toThrow(`model at ${junk} cannot be served: `);
  });
});

describe("loadModel from gs://", () => {
  const requests: string[] = [];
  let storage: http.Server;

  beforeAll(async () => {
    // Answers the two JSON API calls the client makes: object metadata, then ?alt=media.
    const objects: Record<string, Buffer> = { "models/iris.onnx": IRIS, "models/short.onnx": IRIS };
    const served = await serve(
      http.createServer((req, res) => {
        requests.push(req.url ?? "");
        const url = new URL(req.url ?? "", "http://x");
        const match = /\/b\/([^/]+)\/o\/([^/]+)$/.exec(url.pathname);
        const name = match ? decodeURIComponent(match[2]) : "";
        const bytes = match?.[1] === "bucket" ? objects[name] : undefined;
        if (!bytes) {
          res.writeHead(404, { "content-type": "application/json" });
          res.end(JSON.stringify({ error: { code: 404, message: "No such object" } }));
        } else if (url.searchParams.get("alt") === "media") {
          res.end(name === "models/short.onnx" ? bytes.subarray(0, 100) : bytes);
        } else {
          res.setHeader("content-type", "application/json");
          res.end(JSON.stringify({ bucket: "bucket", name, size: String(bytes.length) }));
        }
      }),
    );
    storage = served.server;
    process.env.STORAGE_EMULATOR_HOST = `http://127.0.0.1:${served.port}`;
  });
  afterAll(() => {
    delete process.env.STORAGE_EMULATOR_HOST;
    storage.closeAllConnections();
    storage.close();
  });

  it("downloads the object through the storage client and serves it", async () => {
    const model = await loadModel(source("gs://bucket/models/iris.onnx", { sha256: IRIS_SHA256 }));
    expect(model.outputs.map((output) => output.name)).toEqual(["label", "probabilities"]);
    expect(requests.some((url) => url.includes("alt=media"))).toBe(true);
    await model.close();
  });

  it("refuses a download shorter than the object's size", async () => {
    await expect(loadModel(source("gs://bucket/models/short.onnx"))).rejects.toThrow(
      `model download from gs://bucket/models/short.onnx was cut short: 100 of ${IRIS.length} bytes`,
    );
  });

  it("reports a missing object", async () => {
    await expect(loadModel(source("gs://bucket/models/none.onnx"))).rejects.toThrow(
      /^model download from gs:\/\/bucket\/models\/none\.onnx failed: .*No such object/,
    );
  });
});

describe("MODEL_URI=https://", () => {
  let server: https.Server;
  let base: string;
  let caFile: string;

  beforeAll(async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "mlscore-tls-"));
    const key = path.join(dir, "key.pem");
    caFile = path.join(dir, "cert.pem");
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        key,
        "-out",
        caFile,
      ],
      { stdio: "ignore" },
    );
    const served = await serve(
      https.createServer({ key: readFileSync(key), cert: readFileSync(caFile) }, (req, res) => {
        if (req.url === "/iris.onnx") res.end(IRIS);
        else if (req.url === "/truncated.onnx") {
          // Promises more than it sends, as a connection dropped mid-download would.
          res.writeHead(200, { "content-length": String(IRIS.length) });
          res.write(IRIS.subarray(0, 64));
          setTimeout(() => res.socket?.destroy(), 50);
        } else {
          res.writeHead(404);
          res.end();
        }
      }),
    );
    server = served.server;
    base = `https://127.0.0.1:${served.port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
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
});
