import { BUCKET_URIS, STORE_ENDPOINT } from "../../service/src/config";
import { carriesCredentials, redactUri, storeHost } from "../app/model-store";
import { PROJECT, type ConfigKey, type ConfigReader } from "./reader";
import { parseRegisteredModelUri, type RegisteredModelRef } from "../registry/registered-model";

/** An S3-compatible store the pods (and the program, to pin the digest) read `s3://` models from. */
export interface S3StoreSettings {
  /** The bucket's region (the service's AWS_REGION). */
  readonly region: string;
  /** Another store than AWS S3, addressed path-style (AWS_ENDPOINT_URL_S3); undefined: AWS S3. */
  readonly endpoint?: string;
  /** The pods' credentials, kept in a Kubernetes Secret; undefined when not set. */
  readonly accessKeyId?: string;
  /** Set with --secret. */
  readonly secretAccessKey?: string;
}

/** The MLflow tracking server a `models:/` URI is resolved through at `pulumi up`. */
export interface RegistrySettings {
  readonly trackingUri: string;
  /** Bearer token the server wants (set with --secret); undefined: none. */
  readonly token?: string;
}

/** Where the model comes from and how it is identified. */
export interface ModelSettings {
  /** Undefined: the image's built-in iris model. A `models:/` URI is resolved later. */
  readonly modelUri?: string;
  /** Undefined: the service names the model after its file (or the registered model's name). */
  readonly modelName?: string;
  /** Undefined: the service reports version 1 (or the registry's version). */
  readonly modelVersion?: string;
  /** Lowercase hex SHA-256 the model's bytes must have; undefined: not verified. */
  readonly modelSha256?: string;
  /**
   * Whether modelUri must stay secret: it was set with `--secret`, or it carries a query string
   * or user info (a presigned URL's signature, a password).
   */
  readonly modelUriSecret: boolean;
  /** The registered model modelUri names (`models:/name@alias` or `models:/name/version`). */
  readonly registeredModel?: RegisteredModelRef;
  /** Set when registeredModel is. */
  readonly registry?: RegistrySettings;
  readonly s3: S3StoreSettings;
}

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const SHA256 = /^[0-9a-fA-F]{64}$/;
const NAME_WHAT = 'empty or 1-64 letters, digits, "_", "." or "-", starting with a letter or digit';

/** Whether the service can load a model from this URI, or the program resolve it. */
function isModelUri(uri: string): boolean {
  return (
    uri === "identity" ||
    /^https:\/\/[^/\s]+\/\S*$/.test(uri) ||
    Object.values(BUCKET_URIS).some((pattern) => pattern.test(uri)) ||
    parseRegisteredModelUri(uri) !== undefined ||
    /^\/\S+$/.test(uri)
  );
}

/** Why the pods could not reach the host in `url`, as a config problem; undefined if they can. */
function unreachableHost(url: string): string | undefined {
  const blocked = storeHost(url).blocked;
  return blocked === undefined
    ? undefined
    : `cannot be reached by the pods: ${blocked}, and their egress policy opens public ` +
        "addresses and cluster Services (<service>.<namespace>.svc) only";
}

/** A problem with a key, as {@link ConfigReader.fail} reports one. */
export interface KeyProblem {
  readonly key: ConfigKey;
  readonly problem: string;
  readonly example: string;
}

/**
 * Why the pods could not read a model at `uri` on this target, or undefined when they can: an
 * `https://` host their egress policy cannot admit, a `gs://` object on Kind (no Google
 * credentials there), an `s3://` object without the keys to read it. For a URI in config and for
 * the one a registered model resolves to alike.
 */
export function unreadableStore(
  uri: string,
  target: string,
  s3: S3StoreSettings,
): KeyProblem | undefined {
  if (uri.startsWith("https://") && unreachableHost(uri) !== undefined) {
    return {
      key: "modelUri",
      problem: `${unreachableHost(uri)}; serve the model from a public https:// host or a bucket`,
      example: "gs://my-bucket/model.onnx",
    };
  }
  if (target === "kind" && uri.startsWith("gs://")) {
    return {
      key: "modelUri",
      problem:
        "is a gs:// object, which a Kind cluster has no Google credentials to " +
        "read; use an https:// URL (a signed URL, stored with --secret) or target gke",
      example: "--secret https://storage.googleapis.com/my-bucket/model.onnx?X-Goog-Signature=...",
    };
  }
  if (uri.startsWith("s3://") && s3.accessKeyId === undefined) {
    return {
      key: "s3AccessKeyId",
      problem:
        "is required for an s3:// model: the pods read it with this key and s3SecretAccessKey, " +
        "kept in a Kubernetes Secret",
      example: "AKIA... && pulumi config set --secret s3SecretAccessKey ...",
    };
  }
  return undefined;
}

/** The S3 keys: both or neither, the secret one set with --secret. */
function readS3(read: ConfigReader, secretKeys: ReadonlySet<string>): S3StoreSettings {
  const region = read.text(
    "s3Region",
    "a region name such as eu-west-1",
    /^[a-z0-9][a-z0-9-]{0,49}$/,
    "us-east-1",
  );
  const endpoint = read.value("s3Endpoint", "https://minio.example.com:9000") ?? "";
  if (endpoint !== "" && !STORE_ENDPOINT.test(endpoint)) {
    read.fail(
      "s3Endpoint",
      `must be empty (AWS S3) or the store's http:// or https:// address, host and port only (got "${redactUri(endpoint)}")`,
      "https://minio.example.com:9000",
    );
  } else if (endpoint !== "" && unreachableHost(endpoint) !== undefined) {
    read.fail("s3Endpoint", unreachableHost(endpoint) as string, "http://minio.minio.svc:9000");
  }
  const accessKeyId = read.value("s3AccessKeyId", "AKIA...") ?? "";
  const secretAccessKey = read.value("s3SecretAccessKey", "--secret ...") ?? "";
  if ((accessKeyId === "") !== (secretAccessKey === "")) {
    const missing = accessKeyId === "" ? "s3AccessKeyId" : "s3SecretAccessKey";
    read.fail(
      missing,
      "must be set with the other S3 key",
      missing === "s3AccessKeyId" ? "AKIA..." : "--secret ...",
    );
  }
  if (secretAccessKey !== "" && !secretKeys.has(`${PROJECT}:s3SecretAccessKey`)) {
    read.fail(
      "s3SecretAccessKey",
      "must be set as a secret, or it is stored in plain text",
      "--secret ...",
    );
  }
  return {
    region,
    endpoint: endpoint.replace(/\/$/, "") || undefined,
    accessKeyId: accessKeyId || undefined,
    secretAccessKey: secretAccessKey || undefined,
  };
}

/** The tracking server's address and token; required for a `models:/` URI, refused otherwise. */
function readRegistry(
  read: ConfigReader,
  registered: boolean,
  secretKeys: ReadonlySet<string>,
): RegistrySettings | undefined {
  const trackingUri = read.value("mlflowTrackingUri", "https://mlflow.example.com") ?? "";
  const token = read.value("mlflowTrackingToken", "--secret <token>") ?? "";
  if (trackingUri !== "" && !/^https?:\/\/[^/?#@\s]+(\/[^?#\s]*)?$/.test(trackingUri)) {
    read.fail(
      "mlflowTrackingUri",
      `must be the tracking server's http:// or https:// address (got "${redactUri(trackingUri)}")`,
      "https://mlflow.example.com",
    );
  }
  if (token !== "" && !secretKeys.has(`${PROJECT}:mlflowTrackingToken`)) {
    read.fail(
      "mlflowTrackingToken",
      "must be set as a secret, or it is stored in plain text",
      "--secret <token>",
    );
  }
  if (registered && trackingUri === "") {
    read.fail(
      "mlflowTrackingUri",
      "is required when modelUri names a registered model (models:/...)",
      "https://mlflow.example.com",
    );
  }
  if (!registered) {
    for (const [key, value] of [
      ["mlflowTrackingUri", trackingUri],
      ["mlflowTrackingToken", token],
    ] as const) {
      if (value !== "") {
        read.remove(key, "applies only when modelUri names a registered model (models:/...)");
      }
    }
    return undefined;
  }
  return { trackingUri: trackingUri.replace(/\/$/, ""), token: token || undefined };
}

/** The config keys of one model the pods serve, and what an empty URI means for it. */
export interface ModelKeys {
  readonly uri: ConfigKey;
  readonly name: ConfigKey;
  readonly version: ConfigKey;
  readonly sha256: ConfigKey;
  readonly empty: string;
}

export const STABLE_MODEL: ModelKeys = {
  uri: "modelUri",
  name: "modelName",
  version: "modelVersion",
  sha256: "modelSha256",
  empty: "the built-in iris model",
};

export const CANARY_MODEL: ModelKeys = {
  uri: "canaryModelUri",
  name: "canaryModelName",
  version: "canaryModelVersion",
  sha256: "canaryModelSha256",
  empty: "no canary",
};

/** One model's URI, name, version and digest as given, by the same rules for both sides. */
export function readModelKeys(
  read: ConfigReader,
  keys: ModelKeys,
): { uri: string; name: string; version: string; sha256: string } {
  const example = "gs://my-bucket/model.onnx";
  const uri = read.value(keys.uri, example) ?? "";
  if (uri !== "" && !isModelUri(uri)) {
    read.fail(
      keys.uri,
      `must be empty (${keys.empty}), identity, an absolute path inside the image, ` +
        "an https:// URL, a gs://bucket/object, an s3://bucket/key, or a registered model " +
        `models:/<name>@<alias> or models:/<name>/<version> (got "${redactUri(uri)}")`,
      example,
    );
  }
  const name = read.text(keys.name, NAME_WHAT, MODEL_NAME, "iris", true);
  const version = read.text(keys.version, NAME_WHAT, MODEL_NAME, "2", true);
  const sha256 = read.text(
    keys.sha256,
    "empty or the model file's SHA-256 as 64 hexadecimal characters",
    SHA256,
    "$(sha256sum model.onnx | cut -c1-64)",
    true,
  );
  return { uri, name, version, sha256: sha256.toLowerCase() };
}

/** Reports why the pods could not read the model at `uri`, as a problem with `key` if it is the URI's. */
export function checkReadable(
  read: ConfigReader,
  uriKey: ConfigKey,
  uri: string,
  target: string,
  s3: S3StoreSettings,
): void {
  const unreadable = isModelUri(uri) ? unreadableStore(uri, target, s3) : undefined;
  if (unreadable !== undefined) {
    read.fail(
      unreadable.key === "modelUri" ? uriKey : unreadable.key,
      unreadable.problem,
      unreadable.example,
    );
  }
}

/**
 * Reads modelUri and what goes with it: the model's name, version and digest, the registry a
 * `models:/` URI is resolved through, and the S3 store an `s3://` model is read from.
 */
export function readModelSettings(
  read: ConfigReader,
  target: string,
  secretKeys: ReadonlySet<string>,
  canaryUri: string,
): ModelSettings {
  const {
    uri: modelUri,
    name: modelName,
    version: modelVersion,
    sha256: modelSha256,
  } = readModelKeys(read, STABLE_MODEL);
  const registeredModel = parseRegisteredModelUri(modelUri);
  if (registeredModel !== undefined) {
    for (const [key, value] of [
      ["modelVersion", modelVersion],
      ["modelSha256", modelSha256],
    ] as const) {
      if (value !== "") {
        read.remove(
          key,
          `comes from the registry when modelUri is ${modelUri}, which pins the version and ` +
            "digest it resolves to",
        );
      }
    }
  }
  // A malformed models:/ URI is reported once, as such, not also as a stray tracking server.
  const registry = readRegistry(read, modelUri.startsWith("models:"), secretKeys);
  const s3 = readS3(read, secretKeys);
  checkReadable(read, "modelUri", modelUri, target, s3);
  const usesS3 =
    modelUri.startsWith("s3://") || registeredModel !== undefined || canaryUri.startsWith("s3://");
  if (!usesS3) {
    for (const [key, value] of [
      ["s3Endpoint", s3.endpoint],
      ["s3AccessKeyId", s3.accessKeyId],
      ["s3SecretAccessKey", s3.secretAccessKey],
    ] as const) {
      if (value !== undefined) {
        read.remove(key, "applies only to an s3:// model or a registered one (models:/...)");
      }
    }
  }
  return {
    modelUri: modelUri || undefined,
    modelName: modelName || undefined,
    modelVersion: modelVersion || undefined,
    modelSha256: modelSha256 || undefined,
    modelUriSecret: secretKeys.has(`${PROJECT}:modelUri`) || carriesCredentials(modelUri),
    registeredModel,
    registry,
    s3,
  };
}
