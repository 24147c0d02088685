import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { withoutUrlSecrets } from "../redact";

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

/** The URI as messages show it: without the query string a presigned URL keeps its secret in. */
export function shownUri(source: ModelSource): string {
  return withoutUrlSecrets(source.uri);
}

export function checkSize(size: number, source: ModelSource): void {
  if (size > source.maxBytes) {
    throw new ModelLoadError(
      `model at ${shownUri(source)} has ${size} bytes, over MODEL_MAX_BYTES=${source.maxBytes}`,
    );
  }
}

/** Refuses a digest other than MODEL_SHA256, when that is set. */
export function checkDigest(sha256: string, source: ModelSource): void {
  if (source.sha256 !== undefined && sha256 !== source.sha256) {
    throw new ModelLoadError(
      `model at ${shownUri(source)} has sha256 ${sha256}, but MODEL_SHA256 is ${source.sha256}`,
    );
  }
}

/** The hex SHA-256 of a file, read as a stream so a large model is never held whole. */
export async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
