import path from "node:path";
import { DEFAULT_BODY_TIMEOUT_SECONDS } from "./http/body-limit";
import { defaultModelCacheDir } from "./model/download";
import type { S3Settings } from "./model/stores";
import { withoutUrlSecrets } from "./redact";
import { DEFAULT_WARM_UP_REQUESTS } from "./warm-up";

/** The service's whole configuration, read once from the environment at start. */
export interface ServiceConfig {
  /** 0 picks a free port (tests); the `ready` log line says which. */
  readonly port: number;
  readonly host: string;
  /** `identity`, a file path, an `https://` URL, a `gs://bucket/object` or `s3://bucket/key`. */
  readonly modelUri: string;
  readonly modelName: string;
  readonly modelVersion: string;
  /** Hex SHA-256 the model's bytes must have, when given. */
  readonly modelSha256: string | undefined;
  /** Largest model accepted, in bytes; a bigger download is stopped. */
  readonly modelMaxBytes: number;
  /** How long fetching and verifying the model may take before start-up fails. */
  readonly modelLoadTimeoutSeconds: number;
  /** Where downloaded models are kept, so a restarted container finds them. */
  readonly modelCacheDir: string;
  /** How an `s3://` model is reached: AWS_REGION, AWS_ENDPOINT_URL_S3 and the credentials. */
  readonly s3: S3Settings;
  /** Most rows one request may carry, and one model run may stack from several. */
  readonly maxBatchSize: number;
  /** Longest a request waits for others to share its model run, in ms; 0: batching off. */
  readonly maxBatchDelayMs: number;
  /** Requests the service sends itself before it reports ready; 0: none. */
  readonly warmUpRequests: number;
  /** Largest request body; `undefined`: derived from the model (`defaultBodyLimit`). */
  readonly bodyLimitBytes: number | undefined;
  /** Most request-body bytes held at once across all connections; `undefined`: the default. */
  readonly bodyBytesInFlight: number | undefined;
  /** How long a request body may take to arrive, from its headers on. */
  readonly bodyTimeoutSeconds: number;
  /** How long SIGTERM waits for in-flight requests before giving up. */
  readonly shutdownGraceSeconds: number;
  readonly logLevel: string;
}

/** A value in the environment that the service cannot run with; the message names the fix. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** The built-in iris classifier, next to the compiled code (`dist/`) in the package and image. */
export const BUILTIN_MODEL_URI = path.resolve(__dirname, "..", "models", "iris.onnx");

/** The version a model is served under when MODEL_VERSION is unset. */
export const DEFAULT_MODEL_VERSION = "1";

const MiB = 1024 * 1024;
const DEFAULT_MODEL_MAX_BYTES = 512 * MiB;

/**
 * The default start-up window for a model of up to `modelMaxBytes`: 30 s, plus 1 s for every
 * 4 MiB (a download at 4 MiB/s, 32 Mbit/s, the slowest store this expects). 158 s for 512 MiB.
 */
export function defaultModelLoadTimeoutSeconds(modelMaxBytes: number): number {
  return 30 + Math.ceil(modelMaxBytes / (4 * MiB));
}

/** Chosen from the benchmark (README, Benchmark): see the configuration table for the trade-off. */
const DEFAULT_MAX_BATCH_DELAY_MS = 1;

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

type Env = Readonly<Record<string, string | undefined>>;

/** The whole number in `key`, or `undefined` when it is unset. */
function optionalInteger(env: Env, key: string, min: number, max: number): number | undefined {
  const raw = env[key];
  if (raw === undefined || raw === "") return undefined;
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(`${key} must be a whole number from ${min} to ${max} (got "${raw}")`);
  }
  return value;
}

function integer(env: Env, key: string, fallback: number, min: number, max: number): number {
  return optionalInteger(env, key, min, max) ?? fallback;
}

/** `gs://` and `s3://` objects: a bucket named as each store allows, and an object in it. */
export const BUCKET_URIS: Readonly<Record<string, RegExp>> = {
  gs: /^gs:\/\/[a-z0-9][a-z0-9._-]{1,221}\/.+/,
  // No query or fragment: an S3 object is named by its key alone, never presigned here.
  s3: /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/[^?#]+$/,
};
/** The number of milliseconds in `key` (fractions allowed), or `fallback` when it is unset. */
function milliseconds(env: Env, key: string, fallback: number, max: number): number {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw.trim()) || value > max) {
    throw new ConfigError(
      `${key} must be a number of milliseconds from 0 to ${max}, such as 0.5 (got "${raw}")`,
    );
  }
  return value;
}

function checkModelUri(uri: string): string {
  if (uri === "identity" || uri.startsWith("https://")) return uri;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(uri)?.[1];
  if (scheme === undefined) return path.resolve(uri);
  const bucketUri = BUCKET_URIS[scheme];
  if (bucketUri === undefined) {
    throw new ConfigError(
      `MODEL_URI must be "identity", a file path, an https:// URL, a gs:// or an s3:// object (got "${withoutUrlSecrets(uri)}")`,
    );
  }
  if (!bucketUri.test(uri)) {
    throw new ConfigError(
      `MODEL_URI must name a bucket and an object, ${scheme}://bucket/path (got "${withoutUrlSecrets(uri)}")`,
    );
  }
  return uri;
}

/** An S3-compatible store's address: scheme, host and port, nothing more. */
export const STORE_ENDPOINT = /^https?:\/\/[^/?#@\s]+\/?$/;

/**
 * The S3 settings from the standard AWS variables: AWS_REGION (or AWS_DEFAULT_REGION),
 * AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) for another store than AWS S3, and credentials from
 * AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY or AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN.
 * Only an `s3://` model needs credentials; a half-given pair is refused either way.
 */
function readS3Settings(env: Env, modelUri: string): S3Settings {
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || "us-east-1";
  if (!/^[a-z0-9][a-z0-9-]{0,49}$/.test(region)) {
    throw new ConfigError(`AWS_REGION must be a region name such as eu-west-1 (got "${region}")`);
  }
  const endpointKey = env.AWS_ENDPOINT_URL_S3 ? "AWS_ENDPOINT_URL_S3" : "AWS_ENDPOINT_URL";
  const endpoint = env[endpointKey] || undefined;
  if (endpoint !== undefined && !STORE_ENDPOINT.test(endpoint)) {
    throw new ConfigError(
      `${endpointKey} must be the store's http:// or https:// address, host and port only, such as https://minio.example.com:9000 (got "${withoutUrlSecrets(endpoint)}")`,
    );
  }
  const pairs = [
    ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
    ["AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"],
  ] as const;
  for (const [first, second] of pairs) {
    if (Boolean(env[first]) !== Boolean(env[second])) {
      throw new ConfigError(
        `${env[first] ? second : first} must be set with ${env[first] ? first : second}`,
      );
    }
  }
  const credentials = env.AWS_ACCESS_KEY_ID
    ? "keys"
    : env.AWS_WEB_IDENTITY_TOKEN_FILE
      ? "web-identity"
      : undefined;
  if (modelUri.startsWith("s3://") && credentials === undefined) {
    throw new ConfigError(
      "MODEL_URI is an s3:// object, which needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN",
    );
  }
  return { region, endpoint: endpoint?.replace(/\/$/, ""), credentials };
}

/** The name a model is served under when MODEL_NAME is unset: its file name without extension. */
export function defaultModelName(uri: string): string {
  if (uri === "identity") return "identity";
  const file = decodeURIComponent(uri.split(/[?#]/)[0].split("/").pop() ?? "");
  const stem = file
    .replace(/\.[^.]*$/, "")
    .replace(/[^A-Za-z0-9_.-]/g, "-")
    .replace(/^[^A-Za-z0-9]+/, "");
  return stem.slice(0, 64) || "model";
}

/** Parses and checks the environment; throws a ConfigError naming the first bad variable. */
export function readConfig(env: Env): ServiceConfig {
  const modelUri = checkModelUri(env.MODEL_URI || BUILTIN_MODEL_URI);
  const modelName = env.MODEL_NAME || defaultModelName(modelUri);
  if (!MODEL_NAME.test(modelName)) {
    throw new ConfigError(
      `MODEL_NAME must be 1-64 letters, digits, "_", "." or "-", starting with a letter or digit (got "${modelName}")`,
    );
  }
  const modelVersion = env.MODEL_VERSION || DEFAULT_MODEL_VERSION;
  if (!MODEL_NAME.test(modelVersion)) {
    throw new ConfigError(
      `MODEL_VERSION must be 1-64 letters, digits, "_", "." or "-" (got "${modelVersion}")`,
    );
  }
  const modelSha256 = env.MODEL_SHA256 ? env.MODEL_SHA256.toLowerCase() : undefined;
  if (modelSha256 !== undefined && !/^[0-9a-f]{64}$/.test(modelSha256)) {
    throw new ConfigError(
      `MODEL_SHA256 must be 64 hexadecimal characters (got "${env.MODEL_SHA256}")`,
    );
  }
  const logLevel = env.LOG_LEVEL || "info";
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")} (got "${logLevel}")`);
  }
  const modelMaxBytes = integer(
    env,
    "MODEL_MAX_BYTES",
    DEFAULT_MODEL_MAX_BYTES,
    1,
    Number.MAX_SAFE_INTEGER,
  );
  const bodyLimitBytes = optionalInteger(env, "MAX_BODY_BYTES", 1024, 1024 * MiB);
  const bodyBytesInFlight = optionalInteger(env, "MAX_BODY_BYTES_IN_FLIGHT", 1024, 16 * 1024 * MiB);
  if (
    bodyLimitBytes !== undefined &&
    bodyBytesInFlight !== undefined &&
    bodyLimitBytes > bodyBytesInFlight
  ) {
    throw new ConfigError(
      `MAX_BODY_BYTES_IN_FLIGHT (${bodyBytesInFlight}) must be at least MAX_BODY_BYTES (${bodyLimitBytes}), or no request of that size could ever be read`,
    );
  }
  return {
    port: integer(env, "PORT", 8080, 0, 65535),
    host: env.HOST || "0.0.0.0",
    modelUri,
    modelName,
    modelVersion,
    modelSha256,
    modelMaxBytes,
    modelLoadTimeoutSeconds: integer(
      env,
      "MODEL_LOAD_TIMEOUT_SECONDS",
      defaultModelLoadTimeoutSeconds(modelMaxBytes),
      1,
      86_400,
    ),
    modelCacheDir: path.resolve(env.MODEL_CACHE_DIR || defaultModelCacheDir()),
    s3: readS3Settings(env, modelUri),
    maxBatchSize: integer(env, "MAX_BATCH_SIZE", 1024, 1, 1_000_000),
    maxBatchDelayMs: milliseconds(env, "MAX_BATCH_DELAY_MS", DEFAULT_MAX_BATCH_DELAY_MS, 1000),
    warmUpRequests: integer(env, "WARM_UP_REQUESTS", DEFAULT_WARM_UP_REQUESTS, 0, 1_000_000),
    bodyLimitBytes,
    bodyBytesInFlight,
    bodyTimeoutSeconds: integer(env, "BODY_TIMEOUT_SECONDS", DEFAULT_BODY_TIMEOUT_SECONDS, 1, 600),
    shutdownGraceSeconds: integer(env, "SHUTDOWN_GRACE_SECONDS", 20, 1, 3600),
    logLevel,
  };
}
