import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readdir, rename, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { Storage } from "@google-cloud/storage";
import {
  checkDigest,
  checkSize,
  ModelLoadError,
  sha256OfFile,
  shownUri,
  type ModelSource,
} from "./source";

/** Under the system's temporary folder: `/tmp`, the pod's emptyDir, in the image. */
export function defaultModelCacheDir(): string {
  return path.join(os.tmpdir(), "mlscore-models");
}

export interface DownloadOptions {
  /** The folder downloads are kept in, where a restarted container finds them. */
  readonly cacheDir: string;
  /** How long the download may take; unset: no limit. */
  readonly timeoutSeconds?: number;
}

/** What a finished download left on disk. */
interface Saved {
  readonly bytes: number;
  readonly sha256: string;
}

/**
 * The local file of an `https://` or `gs://` model: streamed into `cacheDir` (never held in
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
  let saved: Saved;
  try {
    saved = source.uri.startsWith("gs://")
      ? await fromStorage(source, partial, signal)
      : await fromHttps(source, partial, signal);
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

/** Writes `chunks` to `file`, counting and hashing them, and stops past MODEL_MAX_BYTES. */
async function save(
  chunks: AsyncIterable<Uint8Array>,
  file: string,
  source: ModelSource,
  signal: AbortSignal | undefined,
): Promise<Saved> {
  const hash = createHash("sha256");
  let bytes = 0;
  await pipeline(
    chunks,
    async function* (stream: AsyncIterable<Uint8Array>) {
      for await (const chunk of stream) {
        bytes += chunk.byteLength;
        checkSize(bytes, source);
        hash.update(chunk);
        yield chunk;
      }
    },
    createWriteStream(file),
    { signal },
  );
  return { bytes, sha256: hash.digest("hex") };
}

function checkWhole(saved: Saved, expected: number, source: ModelSource): void {
  if (saved.bytes !== expected) {
    throw new ModelLoadError(
      `model download from ${shownUri(source)} was cut short: ${saved.bytes} of ${expected} bytes`,
    );
  }
}

async function fromHttps(
  source: ModelSource,
  file: string,
  signal: AbortSignal | undefined,
): Promise<Saved> {
  const response = await fetch(source.uri, { redirect: "follow", signal });
  if (!response.ok || !response.body) {
    throw new ModelLoadError(
      `model download from ${shownUri(source)} answered HTTP ${response.status}`,
    );
  }
  const declared = response.headers.get("content-length");
  if (declared !== null) checkSize(Number(declared), source);
  const saved = await save(response.body, file, source, signal);
  if (declared !== null) checkWhole(saved, Number(declared), source);
  return saved;
}

/** Reads a `gs://` object with Application Default Credentials (STORAGE_EMULATOR_HOST honoured). */
async function fromStorage(
  source: ModelSource,
  file: string,
  signal: AbortSignal | undefined,
): Promise<Saved> {
  const [, bucket, object] = /^gs:\/\/([^/]+)\/(.+)$/.exec(source.uri) ?? [];
  const stored = new Storage().bucket(bucket).file(object);
  const [metadata] = await untilAborted(stored.getMetadata(), signal);
  const size = Number(metadata.size);
  checkSize(size, source);
  // The library's own CRC check needs hashes an emulator may not send; size and sha256 are ours.
  const saved = await save(stored.createReadStream({ validation: false }), file, source, signal);
  checkWhole(saved, size, source);
  return saved;
}

/** `promise`, or a rejection as soon as `signal` aborts (for calls that take no signal). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
