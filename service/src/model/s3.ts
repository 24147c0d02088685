import {
  GetObjectCommand,
  S3Client,
  S3ServiceException,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { fromEnv } from "@aws-sdk/credential-provider-env";
import { fromTokenFile } from "@aws-sdk/credential-provider-web-identity";
import { ModelLoadError, shownUri, type ModelSource } from "./source";

/** A source of AWS credentials, as the S3 client takes one. */
export type AwsCredentialIdentityProvider = Exclude<
  NonNullable<S3ClientConfig["credentials"]>,
  { accessKeyId: string }
>;

/** How the service reaches an S3-compatible store (AWS S3, MinIO, and the like). */
export interface S3Settings {
  /** The bucket's region; AWS_REGION, default us-east-1. */
  readonly region: string;
  /**
   * Another store than AWS S3 (AWS_ENDPOINT_URL_S3), addressed path-style
   * (`<endpoint>/<bucket>/<key>`) as MinIO and its kin expect; undefined: AWS S3 itself.
   */
  readonly endpoint?: string;
  /**
   * Where credentials come from: `keys` (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and an optional
   * AWS_SESSION_TOKEN), `web-identity` (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, exchanged
   * with STS), or a provider of the caller's own (the Pulumi program passes the stack's keys, or
   * leaves it to the SDK's default chain); undefined: the SDK's default chain.
   */
  readonly credentials?: "keys" | "web-identity" | AwsCredentialIdentityProvider;
}

/** The bucket and key of an `s3://bucket/key` URI. */
function s3Location(uri: string): { bucket: string; key: string } | undefined {
  const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  return match ? { bucket: match[1], key: match[2] } : undefined;
}

function credentialsOf(settings: S3Settings): AwsCredentialIdentityProvider | undefined {
  switch (settings.credentials) {
    case "keys":
      return fromEnv();
    case "web-identity":
      return fromTokenFile();
    default:
      return settings.credentials;
  }
}

/** Error names S3 and S3-compatible stores answer for a missing bucket or object. */
const MISSING = new Set(["NoSuchKey", "NoSuchBucket", "NotFound"]);
/** ... and for credentials that are wrong, unknown, or not allowed to read the object. */
const DENIED = new Set([
  "AccessDenied",
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "InvalidToken",
  "ExpiredToken",
  "Forbidden",
]);
/** Socket errors that mean the endpoint was never reached. */
const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ETIMEDOUT",
  "ECONNRESET",
]);

/** Where the client sends requests, for messages: the endpoint, or AWS S3 in the region. */
function endpointOf(settings: S3Settings): string {
  return settings.endpoint ?? `https://s3.${settings.region}.amazonaws.com`;
}

/**
 * The one error a failed read becomes, named after what went wrong: the object (or bucket) does
 * not exist, access was denied, no credentials were found, or the endpoint could not be reached.
 */
function s3Failure(error: unknown, source: ModelSource, settings: S3Settings): Error {
  const where = shownUri(source);
  const { name } = error as Error;
  const code = (error as { code?: string }).code;
  const status = error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
  if (MISSING.has(name) || status === 404) {
    return new ModelLoadError(
      `model at ${where} does not exist (${name}): check the bucket and key, and AWS_REGION / AWS_ENDPOINT_URL_S3 for the store that holds it`,
    );
  }
  if (DENIED.has(name) || status === 403) {
    return new ModelLoadError(
      `access to the model at ${where} was denied (${name}): the credentials must exist at ${endpointOf(settings)} and may read the object (s3:GetObject)`,
    );
  }
  if ((code !== undefined && UNREACHABLE.has(code)) || name === "TimeoutError") {
    return new ModelLoadError(
      `S3 endpoint ${endpointOf(settings)} is unreachable (${code ?? name}) for the model at ${where}: check AWS_ENDPOINT_URL_S3 and that the network lets the pod reach it`,
    );
  }
  return error as Error;
}

/** Why no credentials could be had: none are set, or STS refused or could not be reached. */
function credentialsFailure(error: unknown, source: ModelSource, settings: S3Settings): Error {
  const { name, message } = error as Error;
  const code = (error as { code?: string }).code;
  const why = code ?? (name === "CredentialsProviderError" ? message : `${name}: ${message}`);
  const fix =
    settings.credentials === "web-identity"
      ? "the token in AWS_WEB_IDENTITY_TOKEN_FILE could not be exchanged with STS for AWS_ROLE_ARN; check both, and that the pod can reach STS"
      : "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN";
  return new ModelLoadError(
    `no AWS credentials to read the model at ${shownUri(source)} (${why}): ${fix}`,
  );
}

/**
 * Opens an `s3://bucket/key` object for reading: its size as the store declares it, and its
 * bytes as a stream. Errors are {@link ModelLoadError}s that name what went wrong.
 */
export async function openS3Object(
  source: ModelSource,
  settings: S3Settings,
  signal: AbortSignal | undefined,
): Promise<{ size: number | undefined; body: AsyncIterable<Uint8Array> }> {
  const location = s3Location(source.uri);
  if (!location) {
    throw new ModelLoadError(`model URI ${shownUri(source)} must be s3://bucket/key`);
  }
  const client = new S3Client({
    region: settings.region,
    endpoint: settings.endpoint,
    forcePathStyle: settings.endpoint !== undefined,
    credentials: credentialsOf(settings),
    // A bucket in another region answers with a redirect the client follows.
    followRegionRedirects: true,
    // Checksums the store may send are not needed: the service hashes every byte itself.
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  try {
    // Asked first, so a failure to get credentials (from STS, say) is not taken for the store's.
    await client.config.credentials();
  } catch (error) {
    if (signal?.aborted) throw error;
    throw credentialsFailure(error, source, settings);
  }
  try {
    const response = await client.send(
      new GetObjectCommand({ Bucket: location.bucket, Key: location.key }),
      { abortSignal: signal },
    );
    if (!response.Body) {
      throw new ModelLoadError(`model at ${shownUri(source)} came back from S3 without a body`);
    }
    return {
      size: response.ContentLength,
      body: response.Body as AsyncIterable<Uint8Array>,
    };
  } catch (error) {
    if (signal?.aborted || error instanceof ModelLoadError) throw error;
    throw s3Failure(error, source, settings);
  }
}
