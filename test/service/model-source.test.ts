import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { BUILTIN_MODEL_URI } from "../../service/src/config";
import { loadModel, ModelLoadError } from "../../service/src/model/load";

const IRIS = readFileSync(BUILTIN_MODEL_URI);
const IRIS_SHA256 = createHash("sha256").update(IRIS).digest("hex");
const source = (uri: string, extra: { sha256?: string; maxBytes?: number } = {}) => ({
  uri,
  name: "m",
  version: "1",
  maxBytes: 10 * 1024 * 1024,
  ...extra,
});

/** A model cache folder of this test's own, removed after the file's tests. */
const made: string[] = [];
const freshCache = () => {
  made.push(mkdtempSync(path.join(os.tmpdir(), "mlscore-cache-")));
  return made[made.length - 1];
};
afterAll(() => made.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

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
    const objects: Record<string, Buffer> = {
      "models/iris.onnx": IRIS,
      "models/short.onnx": IRIS,
      "models/stalls.onnx": IRIS,
    };
    storage = http.createServer((req, res) => {
      requests.push(req.url ?? "");
      const url = new URL(req.url ?? "", "http://x");
      const match = /\/b\/([^/]+)\/o\/([^/]+)$/.exec(url.pathname);
      const name = match ? decodeURIComponent(match[2]) : "";
      const bytes = match?.[1] === "bucket" ? objects[name] : undefined;
      if (!bytes) {
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { code: 404, message: "No such object" } }));
      } else if (url.searchParams.get("alt") === "media") {
        if (name === "models/stalls.onnx") res.write(bytes.subarray(0, 100));
        else res.end(name === "models/short.onnx" ? bytes.subarray(0, 100) : bytes);
      } else {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ bucket: "bucket", name, size: String(bytes.length) }));
      }
    });
    await new Promise<void>((resolve) => storage.listen(0, "127.0.0.1", resolve));
    const { port } = storage.address() as AddressInfo;
    process.env.STORAGE_EMULATOR_HOST = `http://127.0.0.1:${port}`;
  });
  afterAll(() => {
    delete process.env.STORAGE_EMULATOR_HOST;
    storage.closeAllConnections();
    storage.close();
  });

  it("streams the object into the cache folder, named by its digest, and serves it", async () => {
    const cacheDir = freshCache();
    const model = await loadModel(source("gs://bucket/models/iris.onnx", { sha256: IRIS_SHA256 }), {
      cacheDir,
    });
    expect(model.outputs.map((output) => output.name)).toEqual(["label", "probabilities"]);
    expect(requests.some((url) => url.includes("alt=media"))).toBe(true);
    await model.close();
    const [kept] = readdirSync(cacheDir);
    expect(kept).toMatch(new RegExp(`^[0-9a-f]{32}-${IRIS_SHA256}\\.onnx$`));
    expect(readFileSync(path.join(cacheDir, kept))).toEqual(IRIS);
  });

  it("refuses a download shorter than the object's size, and keeps nothing of it", async () => {
    const cacheDir = freshCache();
    await expect(loadModel(source("gs://bucket/models/short.onnx"), { cacheDir })).rejects.toThrow(
      `model download from gs://bucket/models/short.onnx was cut short: 100 of ${IRIS.length} bytes`,
    );
    expect(readdirSync(cacheDir)).toEqual([]);
  });

  it("reports a missing object", async () => {
    await expect(
      loadModel(source("gs://bucket/models/none.onnx"), { cacheDir: freshCache() }),
    ).rejects.toThrow(
      /^model download from gs:\/\/bucket\/models\/none\.onnx failed: .*No such object/,
    );
  });

  it("says to set MODEL_CACHE_DIR when the cache folder cannot be made", async () => {
    const file = path.join(freshCache(), "a-file");
    writeFileSync(file, "");
    await expect(
      loadModel(source("gs://bucket/models/iris.onnx"), { cacheDir: path.join(file, "models") }),
    ).rejects.toThrow(
      new ModelLoadError(
        `model cache folder ${path.join(file, "models")} cannot be created (ENOTDIR); set MODEL_CACHE_DIR to a writable folder`,
      ),
    );
  });

  it("gives up on a download that outlasts MODEL_LOAD_TIMEOUT_SECONDS", async () => {
    const cacheDir = freshCache();
    const startedAt = Date.now();
    await expect(
      loadModel(source("gs://bucket/models/stalls.onnx"), { cacheDir, timeoutSeconds: 1 }),
    ).rejects.toThrow(
      new ModelLoadError(
        "model download from gs://bucket/models/stalls.onnx did not finish within MODEL_LOAD_TIMEOUT_SECONDS=1; raise it for a large model or a slow store",
      ),
    );
    expect(Date.now() - startedAt).toBeLessThan(5_000);
    expect(readdirSync(cacheDir)).toEqual([]);
  });
});
