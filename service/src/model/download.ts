import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readdir, rename, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { checkDigest, ModelLoadError, sha256OfFile, shownUri, type ModelSource } from "./source";
import { openModel, readWhole, type Measured, type StoreSettings } from "./stores";

/** Under the system's temporary folder: `/tmp`, the pod's emptyDir, in the image. */
export function defaultModelCacheDir(): string {
  return path.join(os.tmpdir(), "mlscore-models");
}

export interface DownloadOptions {
  /** The folder downloads are kept in, where a restarted container finds them. */
  readonly cacheDir: string;
  /** How long the download may take; unset: no limit. */
  readonly timeoutSeconds?: number;
  /** How to reach the model's store. */
  readonly stores?: StoreSettings;
}

/**
 * The local file of an `https://`, `gs://` or `s3://` model: streamed into `cacheDir` (never held in
 * memory), hashed on the way, and kept there as `<key>-<sha256>.onnx`, where the key names the
 * URI without its query string (a presigned URL's signature changes, the object does not).
 *
 * A file kept from an earlier start is hashed again and reused if its bytes still match the
 * digest in its name (and MODEL_SHA256, when set); anything else is removed and downloaded anew.
 */
export async function downloadModel(
  source: ModelSource,
  options: DownloadOptions,
): Promise<string> {
  const dir = options.cacheDir;
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    throw new ModelLoadError(
      `model cache folder ${dir} cannot be created (${(error as NodeJS.ErrnoException).code}); set MODEL_CACHE_DIR to a writable folder`,
    );
  }
  const key = createHash("sha256").update(shownUri(source)).digest("hex").slice(0, 32);
  const kept = await reusable(dir, key, source);
  if (kept) return kept;

  const partial = path.join(dir, `${key}.partial`);
  const signal =
    options.timeoutSeconds === undefined
      ? undefined
      : AbortSignal.timeout(options.timeoutSeconds * 1000);
  let saved: Measured;
  try {
    saved = await save(source, options.stores ?? {}, partial, signal);
    checkDigest(saved.sha256, source);
  } catch (error) {
    await rm(partial, { force: true });
    if (error instanceof ModelLoadError) throw error;
    if (signal?.aborted) {
      throw new ModelLoadError(
        `model download from ${shownUri(source)} did not finish within MODEL_LOAD_TIMEOUT_SECONDS=${options.timeoutSeconds}; raise it for a large model or a slow store`,
      );
    }
    throw new ModelLoadError(`model download from ${shownUri(source)} failed: ${reason(error)}`, {
      cause: error,
    });
  }
  const file = path.join(dir, `${key}-${saved.sha256}.onnx`);
  await rename(partial, file);
  return file;
}

/** A file kept under `key` whose bytes still hash to the digest in its name; stale ones go. */
async function reusable(
  dir: string,
  key: string,
  source: ModelSource,
): Promise<string | undefined> {
  let found: string | undefined;
  for (const name of await readdir(dir)) {
    if (!name.startsWith(key)) continue;
    const file = path.join(dir, name);
    const recorded = /^[0-9a-f]{32}-([0-9a-f]{64})\.onnx$/.exec(name)?.[1];
    const wanted = recorded !== undefined && (source.sha256 ?? recorded) === recorded;
    if (!found && wanted && (await sha256OfFile(file)) === recorded) found = file;
    else await rm(file, { force: true });
  }
  return found;
}

/** fetch wraps network failures ("fetch failed"); the cause says what happened. */
function reason(error: unknown): string {
  const { message, cause } = error as Error & { cause?: Error };
  return cause?.message ? `${message} (${cause.message})` : message;
}

/** Streams the model into `file`, counting and hashing it on the way. */
async function save(
  source: ModelSource,
  stores: StoreSettings,
  file: string,
  signal: AbortSignal | undefined,
): Promise<Measured> {
  const opened = await openModel(source, stores, signal);
  return readWhole(opened, source, createWriteStream(file), signal);
}
