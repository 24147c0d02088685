import { readFile, stat } from "node:fs/promises";
import { defaultModelCacheDir, downloadModel } from "./download";
import { IdentityModel } from "./identity";
import type { Model } from "./model";
import { OnnxModel } from "./onnx";
import { isStoreUri, type StoreSettings } from "./stores";
import {
  checkDigest,
  checkSize,
  ModelLoadError,
  sha256OfFile,
  shownUri,
  type ModelSource,
} from "./source";

export { ModelLoadError, type ModelSource } from "./source";

export interface LoadOptions {
  /** Where `https://`, `gs://` and `s3://` models are kept; default: `defaultModelCacheDir()`. */
  readonly cacheDir?: string;
  /** How long a download may take (MODEL_LOAD_TIMEOUT_SECONDS); default: no limit. */
  readonly timeoutSeconds?: number;
  /** How to reach the model's store (S3's region, endpoint and credentials). */
  readonly stores?: StoreSettings;
}

/** Optional names that ship beside a model as `<model>.json`, e.g. `iris.json` for the iris model. */
interface ModelLabels {
  readonly featureNames?: readonly string[];
  readonly classNames?: readonly string[];
}

/**
 * Fetches, verifies and loads the model named by `source`. onnxruntime opens the model from a
 * file (a downloaded one from the cache), so the process never holds the model's bytes itself.
 */
export async function loadModel(source: ModelSource, options: LoadOptions = {}): Promise<Model> {
  if (source.uri === "identity")
    return new IdentityModel({ name: source.name, version: source.version });
  const remote = isStoreUri(source.uri);
  const file = remote
    ? await downloadModel(source, {
        cacheDir: options.cacheDir ?? defaultModelCacheDir(),
        timeoutSeconds: options.timeoutSeconds,
        stores: options.stores,
      })
    : await localFile(source);
  const labels = remote ? {} : await readLabels(source.uri);
  try {
    return await OnnxModel.load(file, { name: source.name, version: source.version, ...labels });
  } catch (error) {
    throw new ModelLoadError(
      `model at ${shownUri(source)} cannot be served: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/** A model file on disk, checked for size and, when MODEL_SHA256 is set, digest. */
async function localFile(source: ModelSource): Promise<string> {
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
  if (source.sha256 !== undefined) checkDigest(await sha256OfFile(source.uri), source);
  return source.uri;
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
