import path from "node:path";

/** The service's whole configuration, read once from the environment at start. */
export interface ServiceConfig {
  /** 0 picks a free port (tests); the `ready` log line says which. */
  readonly port: number;
  readonly host: string;
  /** `identity`, a file path, an `https://` URL or a `gs://bucket/object`. */
  readonly modelUri: string;
  readonly modelName: string;
  readonly modelVersion: string;
  /** Hex SHA-256 the model's bytes must have, when given. */
  readonly modelSha256: string | undefined;
  /** Largest model accepted, in bytes; a bigger download is stopped. */
  readonly modelMaxBytes: number;
  readonly maxBatchSize: number;
  readonly bodyLimitBytes: number;
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

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

type Env = Readonly<Record<string, string | undefined>>;

function integer(env: Env, key: string, fallback: number, min: number, max: number): number {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(`${key} must be a whole number from ${min} to ${max} (got "${raw}")`);
  }
  return value;
}

function checkModelUri(uri: string): string {
  if (uri === "identity" || uri.startsWith("https://")) return uri;
  if (uri.startsWith("gs://")) {
    if (!/^gs:\/\/[a-z0-9][a-z0-9._-]{1,221}\/.+/.test(uri)) {
      throw new ConfigError(
        `MODEL_URI must name a bucket and an object, gs://bucket/path (got "${uri}")`,
      );
    }
    return uri;
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri)) {
    throw new ConfigError(
      `MODEL_URI must be "identity", a file path, an https:// URL or a gs:// object (got "${uri}")`,
    );
  }
  return path.resolve(uri);
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
  const modelVersion = env.MODEL_VERSION || "1";
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
  return {
    port: integer(env, "PORT", 8080, 0, 65535),
    host: env.HOST || "0.0.0.0",
    modelUri,
    modelName,
    modelVersion,
    modelSha256,
    modelMaxBytes: integer(env, "MODEL_MAX_BYTES", 512 * 1024 * 1024, 1, Number.MAX_SAFE_INTEGER),
    maxBatchSize: integer(env, "MAX_BATCH_SIZE", 1024, 1, 1_000_000),
    bodyLimitBytes: integer(env, "MAX_BODY_BYTES", 5 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    shutdownGraceSeconds: integer(env, "SHUTDOWN_GRACE_SECONDS", 20, 1, 3600),
    logLevel,
  };
}
