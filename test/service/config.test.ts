import os from "node:os";
import path from "node:path";
import {
  ConfigError,
  defaultModelLoadTimeoutSeconds,
  defaultModelName,
  readConfig,
} from "../../service/src/config";
import { SERVICE_VERSION } from "../../service/src/version";
import { DEFAULT_WARM_UP_REQUESTS } from "../../service/src/warm-up";
import servicePackage from "../../service/package.json";

describe("readConfig", () => {
  it("serves the built-in iris model on port 8080 when nothing is set", () => {
    const config = readConfig({});
    expect(config).toMatchObject({
      port: 8080,
      host: "0.0.0.0",
      modelUri: path.resolve(__dirname, "../../service/models/iris.onnx"),
      modelName: "iris",
      modelVersion: "1",
      modelSha256: undefined,
      modelMaxBytes: 512 * 1024 * 1024,
      // 30 s plus 1 s per 4 MiB of MODEL_MAX_BYTES.
      modelLoadTimeoutSeconds: 158,
      modelCacheDir: path.join(os.tmpdir(), "mlscore-models"),
      maxBatchSize: 1024,
      maxBatchDelayMs: 1,
      warmUpRequests: DEFAULT_WARM_UP_REQUESTS,
      // Derived from the model and the bytes in flight once the model is loaded.
      bodyLimitBytes: undefined,
      bodyBytesInFlight: undefined,
      bodyTimeoutSeconds: 10,
      shutdownGraceSeconds: 20,
      logLevel: "info",
    });
  });

  it("reads every variable it documents", () => {
    const config = readConfig({
      PORT: "9000",
      HOST: "127.0.0.1",
      MODEL_URI: "gs://models-bucket/fraud/v3/model.onnx",
      MODEL_NAME: "fraud",
      MODEL_VERSION: "3",
      MODEL_SHA256: "A".repeat(64),
      MODEL_MAX_BYTES: "1000",
      MODEL_LOAD_TIMEOUT_SECONDS: "600",
      MODEL_CACHE_DIR: "cache/models",
      MAX_BATCH_SIZE: "10",
      MAX_BATCH_DELAY_MS: "0.25",
      WARM_UP_REQUESTS: "0",
      MAX_BODY_BYTES: "2048",
      MAX_BODY_BYTES_IN_FLIGHT: "4096",
      BODY_TIMEOUT_SECONDS: "3",
      SHUTDOWN_GRACE_SECONDS: "5",
      LOG_LEVEL: "debug",
    });
    expect(config).toEqual({
      port: 9000,
      host: "127.0.0.1",
      modelUri: "gs://models-bucket/fraud/v3/model.onnx",
      modelName: "fraud",
      modelVersion: "3",
      modelSha256: "a".repeat(64),
      modelMaxBytes: 1000,
      modelLoadTimeoutSeconds: 600,
      modelCacheDir: path.resolve("cache/models"),
      maxBatchSize: 10,
      maxBatchDelayMs: 0.25,
      warmUpRequests: 0,
      bodyLimitBytes: 2048,
      bodyBytesInFlight: 4096,
      bodyTimeoutSeconds: 3,
      shutdownGraceSeconds: 5,
      logLevel: "debug",
      s3: { region: "us-east-1", endpoint: undefined, credentials: undefined },
    });
  });

  it("reads an s3:// model's store from the standard AWS variables", () => {
    const keys = { AWS_ACCESS_KEY_ID: "AKIA0", AWS_SECRET_ACCESS_KEY: "secret" };
    expect(
      readConfig({
        MODEL_URI: "s3://models/iris/model.onnx",
        AWS_REGION: "eu-west-1",
        AWS_ENDPOINT_URL_S3: "http://minio.minio.svc.cluster.local:9000/",
        ...keys,
      }),
    ).toMatchObject({
      modelUri: "s3://models/iris/model.onnx",
      modelName: "model",
      s3: {
        region: "eu-west-1",
        endpoint: "http://minio.minio.svc.cluster.local:9000",
        credentials: "keys",
      },
    });
    // The general variables when the S3 ones are not set; a web identity where no keys are.
    expect(
      readConfig({
        MODEL_URI: "s3://models/m.onnx",
        AWS_DEFAULT_REGION: "ap-south-1",
        AWS_ENDPOINT_URL: "https://storage.example.com",
        AWS_WEB_IDENTITY_TOKEN_FILE: "/var/run/secrets/token",
        AWS_ROLE_ARN: "arn:aws:iam::123456789012:role/reader",
      }).s3,
    ).toEqual({
      region: "ap-south-1",
      endpoint: "https://storage.example.com",
      credentials: "web-identity",
    });
  });

  it("derives the start-up window from MODEL_MAX_BYTES unless MODEL_LOAD_TIMEOUT_SECONDS is set", () => {
    expect(readConfig({ MODEL_MAX_BYTES: String(100 * 1024 * 1024) }).modelLoadTimeoutSeconds).toBe(
      55,
    );
    expect(readConfig({ MODEL_MAX_BYTES: "1" }).modelLoadTimeoutSeconds).toBe(31);
    expect(defaultModelLoadTimeoutSeconds(2 * 1024 * 1024 * 1024)).toBe(542);
  });

  it("resolves a relative model path against the working directory", () => {
    expect(readConfig({ MODEL_URI: "models/m.onnx" }).modelUri).toBe(path.resolve("models/m.onnx"));
  });

  it.each([
    [{ PORT: "abc" }, 'PORT must be a whole number from 0 to 65535 (got "abc")'],
    [{ PORT: "70000" }, 'PORT must be a whole number from 0 to 65535 (got "70000")'],
    [{ PORT: "80.5" }, 'PORT must be a whole number from 0 to 65535 (got "80.5")'],
    [{ MAX_BATCH_SIZE: "0" }, 'MAX_BATCH_SIZE must be a whole number from 1 to 1000000 (got "0")'],
    [
      { WARM_UP_REQUESTS: "-5" },
      'WARM_UP_REQUESTS must be a whole number from 0 to 1000000 (got "-5")',
    ],
    [
      { MAX_BODY_BYTES: "10" },
      'MAX_BODY_BYTES must be a whole number from 1024 to 1073741824 (got "10")',
    ],
    [
      { MAX_BODY_BYTES: "8192", MAX_BODY_BYTES_IN_FLIGHT: "4096" },
      "MAX_BODY_BYTES_IN_FLIGHT (4096) must be at least MAX_BODY_BYTES (8192), or no request of that size could ever be read",
    ],
    [
      { BODY_TIMEOUT_SECONDS: "0" },
      'BODY_TIMEOUT_SECONDS must be a whole number from 1 to 600 (got "0")',
    ],
    [
      { MODEL_LOAD_TIMEOUT_SECONDS: "soon" },
      'MODEL_LOAD_TIMEOUT_SECONDS must be a whole number from 1 to 86400 (got "soon")',
    ],
    [
      { SHUTDOWN_GRACE_SECONDS: "-1" },
      'SHUTDOWN_GRACE_SECONDS must be a whole number from 1 to 3600 (got "-1")',
    ],
    [
      { MODEL_URI: "http://example.com/m.onnx" },
      'MODEL_URI must be "identity", a file path, an https:// URL, a gs:// or an s3:// object (got "http://example.com/m.onnx")',
    ],
    [
      { MODEL_URI: "s3://Bucket/m.onnx" },
      'MODEL_URI must name a bucket and an object, s3://bucket/path (got "s3://Bucket/m.onnx")',
    ],
    [
      { MODEL_URI: "s3://bucket/m.onnx" },
      "MODEL_URI is an s3:// object, which needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN",
    ],
    [{ AWS_ACCESS_KEY_ID: "AKIA0" }, "AWS_SECRET_ACCESS_KEY must be set with AWS_ACCESS_KEY_ID"],
    [
      { AWS_ROLE_ARN: "arn:aws:iam::1:role/r" },
      "AWS_WEB_IDENTITY_TOKEN_FILE must be set with AWS_ROLE_ARN",
    ],
    [
      { AWS_ENDPOINT_URL_S3: "minio:9000" },
      'AWS_ENDPOINT_URL_S3 must be the store\'s http:// or https:// address, host and port only, such as https://minio.example.com:9000 (got "minio:9000")',
    ],
    [
      { AWS_ENDPOINT_URL: "https://user:SECRET@minio.example.com/bucket" },
      'AWS_ENDPOINT_URL must be the store\'s http:// or https:// address, host and port only, such as https://minio.example.com:9000 (got "https://minio.example.com/bucket")',
    ],
    [
      { AWS_REGION: "EU West" },
      'AWS_REGION must be a region name such as eu-west-1 (got "EU West")',
    ],
    [
      { MODEL_URI: "gs://bucket-only" },
      'MODEL_URI must name a bucket and an object, gs://bucket/path (got "gs://bucket-only")',
    ],
    [
      // A presigned URL's signature never appears in a message.
      { MODEL_URI: "s3://bucket/m.onnx?X-Amz-Signature=SECRET" },
      'MODEL_URI must name a bucket and an object, s3://bucket/path (got "s3://bucket/m.onnx")',
    ],
    [
      { MODEL_NAME: "my model" },
      'MODEL_NAME must be 1-64 letters, digits, "_", "." or "-", starting with a letter or digit (got "my model")',
    ],
    [
      { MODEL_VERSION: "v/1" },
      'MODEL_VERSION must be 1-64 letters, digits, "_", "." or "-" (got "v/1")',
    ],
    [{ MODEL_SHA256: "abc" }, 'MODEL_SHA256 must be 64 hexadecimal characters (got "abc")'],
    [
      { LOG_LEVEL: "verbose" },
      'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent (got "verbose")',
    ],
  ])("rejects %j with a message naming the variable", (env, message) => {
    expect(() => readConfig(env)).toThrow(new ConfigError(message));
  });

  it.each(["-1", "1e3", "soon", "1001", ".5"])("rejects MAX_BATCH_DELAY_MS=%s", (value) => {
    expect(() => readConfig({ MAX_BATCH_DELAY_MS: value })).toThrow(
      new ConfigError(
        `MAX_BATCH_DELAY_MS must be a number of milliseconds from 0 to 1000, such as 0.5 (got "${value}")`,
      ),
    );
  });

  it("turns batching off with MAX_BATCH_DELAY_MS=0", () => {
    expect(readConfig({ MAX_BATCH_DELAY_MS: "0" }).maxBatchDelayMs).toBe(0);
  });
});

describe("defaultModelName", () => {
  it.each([
    ["identity", "identity"],
    ["/models/iris.onnx", "iris"],
    ["https://models.example.com/v2/churn%20model.onnx?token=x", "churn-model"],
    ["gs://bucket/path/fraud.v3.onnx", "fraud.v3"],
    ["/models/.onnx", "model"],
  ])("names %s %s", (uri, name) => {
    expect(defaultModelName(uri)).toBe(name);
  });
});

describe("SERVICE_VERSION", () => {
  it("matches service/package.json", () => {
    expect(SERVICE_VERSION).toBe(servicePackage.version);
  });
});
