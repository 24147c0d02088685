import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { Storage } from "@google-cloud/storage";
import { IdentityModel } from "./identity";
import type { Model } from "./model";
import { OnnxModel } from "./onnx";

/** Where a model comes from and what its bytes must look like. */
export interface ModelSource {
  /** `identity`, an absolute file path, an `https://` URL or a `gs://bucket/object`. */
  readonly uri: string;
  readonly name: string;
  readonly version: string;
  readonly sha256?: string;
  readonly maxBytes: number;
}

/** A model that cannot be served; the message says what is wrong and where. */
export class ModelLoadError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ModelLoadError";
  }
}

/** Optional names that ship beside a model as `<model>.json`, e.g. `iris.json` for the iris model. */
interface ModelLabels {
  readonly featureNames?: readonly string[];
  readonly classNames?: readonly string[];
}

/** Fetches, verifies and loads the model named by `source`. */
export async function loadModel(source: ModelSource): Promise<Model> {
  if (source.uri === "identity")
    return new IdentityModel({ name: source.name, version: source.version });
  const bytes = await fetchModel(source);
  verify(bytes, source);
  const labels = source.uri.startsWith("/") ? await readLabels(source.uri) : {};
  try {
    return await OnnxModel.load(bytes, { name: source.name, version: source.version, ...labels });
  } catch (error) {
    throw new ModelLoadError(
      `model at ${source.uri} cannot be served: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

async function fetchModel(source: ModelSource): Promise<Uint8Array> {
  if (source.uri.startsWith("https://")) return download(source);
  if (source.uri.startsWith("gs://")) return fromStorage(source);
  const info = await stat(source.uri).catch((error: NodeJS.ErrnoException) => {
    throw new ModelLoadError(
      `model file ${source.uri} cannot be read (${error.code ?? error.message})`,
    );
  });
  if (!info.isFile()) {
    throw new ModelLoadError(
      `model file ${source.uri} is not a file; point MODEL_URI at the .onnx file`,
    );
  }
  checkSize(info.size, source);
  return readFile(source.uri);
}

/** fetch wraps network failures ("fetch failed"); the cause says what happened. */
function reason(error: unknown): string {
  const { message, cause } = error as Error & { cause?: Error };
  return cause?.message ? `${message} (${cause.message})` : message;
}

function checkSize(size: number, source: ModelSource): void {
  if (size > source.maxBytes) {
    throw new ModelLoadError(
      `model at ${source.uri} has ${size} bytes, over MODEL_MAX_BYTES=${source.maxBytes}`,
    );
  }
}

async function download(source: ModelSource): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetch(source.uri, {
      redirect: "follow",
      signal: AbortSignal.timeout(120_000),
    });
  } catch (error) {
    throw new ModelLoadError(`model download from ${source.uri} failed: ${reason(error)}`, {
      cause: error,
    });
  }
  if (!response.ok || !response.body) {
    throw new ModelLoadError(`model download from ${source.uri} answered HTTP ${response.status}`);
  }
  const declared = response.headers.get("content-length");
  if (declared !== null) checkSize(Number(declared), source);

  const chunks: Uint8Array[] = [];
  let received = 0;
  try {
    for await (const chunk of response.body) {
      received += chunk.byteLength;
      checkSize(received, source);
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof ModelLoadError) throw error;
    throw new ModelLoadError(`model download from ${source.uri} failed: ${reason(error)}`, {
      cause: error,
    });
  }
  if (declared !== null && received !== Number(declared)) {
    throw new ModelLoadError(
      `model download from ${source.uri} was cut short: ${received} of ${declared} bytes`,
    );
  }
  return Buffer.concat(chunks);
}

/** Reads a `gs://` object with Application Default Credentials (STORAGE_EMULATOR_HOST honoured). */
async function fromStorage(source: ModelSource): Promise<Uint8Array> {
  const [, bucket, object] = /^gs:\/\/([^/]+)\/(.+)$/.exec(source.uri) ?? [];
  const file = new Storage().bucket(bucket).file(object);
  try {
    const [metadata] = await file.getMetadata();
    const size = Number(metadata.size);
    checkSize(size, source);
    // The library's own CRC check needs hashes an emulator may not send; size and sha256 are ours.
    const [bytes] = await file.download({ validation: false });
    if (bytes.byteLength !== size) {
      throw new ModelLoadError(
        `model download from ${source.uri} was cut short: ${bytes.byteLength} of ${size} bytes`,
      );
    }
    return bytes;
  } catch (error) {
    if (error instanceof ModelLoadError) throw error;
    throw new ModelLoadError(
      `model download from ${source.uri} failed: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

function verify(bytes: Uint8Array, source: ModelSource): void {
  if (source.sha256 === undefined) return;
  const actual = createHash("sha256").update(bytes).digest("hex");
  if (actual !== source.sha256) {
    throw new ModelLoadError(
      `model at ${source.uri} has sha256 ${actual}, but MODEL_SHA256 is ${source.sha256}`,
    );
  }
}

async function readLabels(modelPath: string): Promise<ModelLabels> {
  const labelsPath = modelPath.replace(/\.onnx$/, "") + ".json";
  let text: string;
  try {
    text = await readFile(labelsPath, "utf8");
  } catch {
    return {};
  }
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new ModelLoadError(`${labelsPath} is not valid JSON: ${(error as Error).message}`);
  }
  const strings = (value: unknown): readonly string[] | undefined =>
    Array.isArray(value) && value.every((item) => typeof item === "string") ? value : undefined;
  return { featureNames: strings(parsed.featureNames), classNames: strings(parsed.classNames) };
}
