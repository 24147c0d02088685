import { createHash } from "node:crypto";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { S3Settings } from "./s3";
import { checkSize, ModelLoadError, shownUri, type ModelSource } from "./source";

export type { S3Settings } from "./s3";

/** How to reach the stores a model URI may name; each store reads its own environment too. */
export interface StoreSettings {
  /** Region, endpoint and credentials of `s3://` URIs; default: AWS S3 in us-east-1. */
  readonly s3?: S3Settings;
}

/** An object opened for reading: the size its store declares (when it does) and its bytes. */
export interface OpenedModel {
  readonly size: number | undefined;
  readonly body: AsyncIterable<Uint8Array>;
}

/** Model URIs read from a store over the network rather than from a file. */
export function isStoreUri(uri: string): boolean {
  return /^(https|gs|s3):\/\//.test(uri);
}

/**
 * Opens an `https://`, `gs://` or `s3://` object. A size the store declares is checked against
 * MODEL_MAX_BYTES before any byte is read.
 */
export async function openModel(
  source: ModelSource,
  stores: StoreSettings,
  signal: AbortSignal | undefined,
): Promise<OpenedModel> {
  const opened = source.uri.startsWith("gs://")
    ? await fromStorage(source, signal)
    : source.uri.startsWith("s3://")
      ? await fromS3(source, stores.s3 ?? { region: "us-east-1" }, signal)
      : await fromHttps(source, signal);
  if (opened.size !== undefined) checkSize(opened.size, source);
  return opened;
}

/** What reading a whole object found: its length and its hex SHA-256. */
export interface Measured {
  readonly bytes: number;
  readonly sha256: string;
}

/**
 * Streams an opened object through a counter and a hash into `sink`, and stops past
 * MODEL_MAX_BYTES or when `signal` aborts. The object's own stream heads the pipeline, so an
 * abort destroys it even while it waits for bytes that never come.
 */
export async function readWhole(
  opened: OpenedModel,
  source: ModelSource,
  sink: Writable,
  signal: AbortSignal | undefined,
): Promise<Measured> {
  const hash = createHash("sha256");
  let bytes = 0;
  await pipeline(
    opened.body,
    async function* (chunks: AsyncIterable<Uint8Array>) {
      for await (const chunk of chunks) {
        bytes += chunk.byteLength;
        checkSize(bytes, source);
        hash.update(chunk);
        yield chunk;
      }
    },
    sink,
    { signal },
  );
  const result = { bytes, sha256: hash.digest("hex") };
  if (opened.size !== undefined && bytes !== opened.size) {
    throw new ModelLoadError(
      `model download from ${shownUri(source)} was cut short: ${bytes} of ${opened.size} bytes`,
    );
  }
  return result;
}

/**
 * The length and SHA-256 of a stored object, read as a stream and never kept: how the Pulumi
 * program pins a model to the bytes the pods will download.
 */
export async function measureModel(
  source: ModelSource,
  stores: StoreSettings,
  signal?: AbortSignal,
): Promise<Measured> {
  const opened = await openModel(source, stores, signal);
  const discard = new Writable({ write: (_chunk, _encoding, done) => done() });
  return readWhole(opened, source, discard, signal);
}

/** A small stored object as text (an MLflow `MLmodel` file), at most `source.maxBytes` long. */
export async function readStoredText(
  source: ModelSource,
  stores: StoreSettings,
  signal?: AbortSignal,
): Promise<string> {
  const opened = await openModel(source, stores, signal);
  const chunks: Buffer[] = [];
  const keep = new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      chunks.push(chunk);
      done();
    },
  });
  await readWhole(opened, source, keep, signal);
  return Buffer.concat(chunks).toString("utf8");
}

async function fromHttps(source: ModelSource, signal: AbortSignal | undefined) {
  const response = await fetch(source.uri, { redirect: "follow", signal });
  if (!response.ok || !response.body) {
    throw new ModelLoadError(
      `model download from ${shownUri(source)} answered HTTP ${response.status}`,
    );
  }
  const declared = response.headers.get("content-length");
  return { size: declared === null ? undefined : Number(declared), body: response.body };
}

/** The AWS SDK loads only for an `s3://` model (and Google's for `gs://`): each adds about a
 * tenth of a second to a start. */
async function fromS3(source: ModelSource, settings: S3Settings, signal: AbortSignal | undefined) {
  const { openS3Object } = await import("./s3");
  return openS3Object(source, settings, signal);
}

/** Reads a `gs://` object with Application Default Credentials (STORAGE_EMULATOR_HOST honoured). */
async function fromStorage(source: ModelSource, signal: AbortSignal | undefined) {
  const [, bucket, object] = /^gs:\/\/([^/]+)\/(.+)$/.exec(source.uri) ?? [];
  const { Storage } = await import("@google-cloud/storage");
  const stored = new Storage().bucket(bucket).file(object);
  const [metadata] = await untilAborted(stored.getMetadata(), signal);
  // The library's own CRC check needs hashes an emulator may not send; size and sha256 are ours.
  return { size: Number(metadata.size), body: stored.createReadStream({ validation: false }) };
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
