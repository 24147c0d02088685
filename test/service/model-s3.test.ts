import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { BUILTIN_MODEL_URI } from "../../service/src/config";
import {
  ensureRegistryEnv,
  S3_KEYS,
  S3_REGION,
  startS3,
  type S3Store,
} from "../fixtures/model-stores";
import { run } from "../fixtures/python-env";
import { failedStart, startService } from "./support/service-process";

/**
 * MODEL_URI=s3://… against a real S3-compatible server (moto's, started here on 127.0.0.1), through
 * the service's own start-up: config, download, hash check, onnxruntime.
 */

const IRIS = readFileSync(BUILTIN_MODEL_URI);
const IRIS_SHA256 = createHash("sha256").update(IRIS).digest("hex");
const BUCKET = "models";

let store: S3Store;
/** The service's environment for `store` with the keys moto accepts. */
let reachable: Record<string, string>;

beforeAll(async () => {
  store = await startS3();
  await store.createBucket(BUCKET);
  await store.put(BUCKET, "iris/model.onnx", IRIS);
  reachable = {
    AWS_ENDPOINT_URL_S3: store.endpoint,
    AWS_REGION: S3_REGION,
    AWS_ACCESS_KEY_ID: S3_KEYS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3_KEYS.secretAccessKey,
  };
}, 120_000);
afterAll(() => store?.stop());

/** The line a failed start ends with; on Node 20 the AWS SDK also warns that it wants Node 22. */
const firstLine = (stderr: string) =>
  stderr.split("\n").find((line) => line.startsWith("mlscore: "));

describe("MODEL_URI=s3://", () => {
  it("downloads, verifies and serves the model; the name comes from the key", async () => {
    const service = await startService({
      ...reachable,
      MODEL_URI: `s3://${BUCKET}/iris/model.onnx`,
      MODEL_SHA256: IRIS_SHA256,
    });
    try {
      const metadata = await (await fetch(`${service.url}/v2/models/model`)).json();
      expect(metadata).toMatchObject({ name: "model", platform: "onnxruntime" });
      const answer = await fetch(`${service.url}/score`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ X: [[5.1, 3.5, 1.4, 0.2]] }),
      });
      expect(answer.status).toBe(200);
      const { score } = (await answer.json()) as { score: number[][] };
      // The iris classifier is sure this is a setosa.
      expect(score[0][0]).toBeGreaterThan(0.9);
    } finally {
      service.child.kill("SIGKILL");
    }
  });

  it("refuses bytes whose sha256 differs from MODEL_SHA256", async () => {
    const { code, stderr } = await failedStart({
      ...reachable,
      MODEL_URI: `s3://${BUCKET}/iris/model.onnx`,
      MODEL_SHA256: "0".repeat(64),
    });
    expect(code).toBe(1);
    expect(firstLine(stderr)).toBe(
      `mlscore: model at s3://${BUCKET}/iris/model.onnx has sha256 ${IRIS_SHA256}, but MODEL_SHA256 is ${"0".repeat(64)}`,
    );
  });

  it("refuses an object over MODEL_MAX_BYTES by the size the store declares", async () => {
    const { code, stderr } = await failedStart({
      ...reachable,
      MODEL_URI: `s3://${BUCKET}/iris/model.onnx`,
      MODEL_MAX_BYTES: "100",
    });
    expect(code).toBe(1);
    expect(firstLine(stderr)).toBe(
      `mlscore: model at s3://${BUCKET}/iris/model.onnx has ${IRIS.length} bytes, over MODEL_MAX_BYTES=100`,
    );
  });

  it.each([
    [`s3://${BUCKET}/iris/missing.onnx`, "NoSuchKey"],
    ["s3://no-such-bucket/iris/model.onnx", "NoSuchBucket"],
  ])("names a missing object: %s", async (uri, name) => {
    const { code, stderr } = await failedStart({ ...reachable, MODEL_URI: uri });
    expect(code).toBe(1);
    expect(firstLine(stderr)).toBe(
      `mlscore: model at ${uri} does not exist (${name}): check the bucket and key, and AWS_REGION / AWS_ENDPOINT_URL_S3 for the store that holds it`,
    );
  });

  it("names an endpoint it cannot reach", async () => {
    const closed = `http://127.0.0.1:${new URL(store.endpoint).port === "1" ? 2 : 1}`;
    const { code, stderr } = await failedStart({
      ...reachable,
      AWS_ENDPOINT_URL_S3: closed,
      MODEL_URI: `s3://${BUCKET}/iris/model.onnx`,
    });
    expect(code).toBe(1);
    expect(firstLine(stderr)).toBe(
      `mlscore: S3 endpoint ${closed} is unreachable (ECONNREFUSED) for the model at s3://${BUCKET}/iris/model.onnx: check AWS_ENDPOINT_URL_S3 and that the network lets the pod reach it`,
    );
  });

  it("refuses to start without credentials, naming the variables to set", async () => {
    const { code, stderr } = await failedStart({
      AWS_ENDPOINT_URL_S3: store.endpoint,
      MODEL_URI: `s3://${BUCKET}/iris/model.onnx`,
    });
    expect(code).toBe(1);
    expect(firstLine(stderr)).toBe(
      "mlscore: MODEL_URI is an s3:// object, which needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN",
    );
  });

  describe("with a web identity", () => {
    let dir: string;
    let identity: Record<string, string>;
    beforeAll(() => {
      dir = mkdtempSync(path.join(os.tmpdir(), "mlscore-identity-"));
      // A token as a Kubernetes projected ServiceAccount token looks; STS (moto's) accepts it.
      const part = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
      const token = `${part({ alg: "RS256" })}.${part({ sub: "system:serviceaccount:mlscore:mlscore-scoring", aud: "sts.amazonaws.com" })}.c2ln`;
      writeFileSync(path.join(dir, "token"), token);
      identity = {
        AWS_ENDPOINT_URL_S3: store.endpoint,
        AWS_REGION: S3_REGION,
        AWS_WEB_IDENTITY_TOKEN_FILE: path.join(dir, "token"),
        AWS_ROLE_ARN: "arn:aws:iam::123456789012:role/mlscore-model-reader",
        MODEL_URI: `s3://${BUCKET}/iris/model.onnx`,
      };
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it("exchanges the token with STS for credentials, then loads", async () => {
      const service = await startService({ ...identity, AWS_ENDPOINT_URL_STS: store.endpoint });
      try {
        expect((await fetch(`${service.url}/readyz`)).status).toBe(200);
      } finally {
        service.child.kill("SIGKILL");
      }
    });

    it("names STS when it cannot be reached, not the store", async () => {
      const { code, stderr } = await failedStart({
        ...identity,
        AWS_ENDPOINT_URL_STS: "http://127.0.0.1:1",
      });
      expect(code).toBe(1);
      expect(firstLine(stderr)).toBe(
        `mlscore: no AWS credentials to read the model at s3://${BUCKET}/iris/model.onnx (ECONNREFUSED): the token in AWS_WEB_IDENTITY_TOKEN_FILE could not be exchanged with STS for AWS_ROLE_ARN; check both, and that the pod can reach STS`,
      );
    });
  });
});

describe("MODEL_URI=s3:// on a store that checks credentials", () => {
  let guarded: S3Store;
  /** Keys of a user that exists but may read nothing. */
  let powerless: { id: string; secret: string };

  beforeAll(async () => {
    // moto checks every request's signature and IAM policy after the first four: the bucket, the
    // object, the user and its key are made before that.
    guarded = await startS3({ env: { INITIAL_NO_AUTH_ACTION_COUNT: "4" } });
    await guarded.createBucket(BUCKET);
    await guarded.put(BUCKET, "iris/model.onnx", IRIS);
    const script = [
      "import boto3, json",
      `iam = boto3.client("iam", endpoint_url="${guarded.endpoint}", region_name="${S3_REGION}", aws_access_key_id="x", aws_secret_access_key="x")`,
      'iam.create_user(UserName="powerless")',
      'key = iam.create_access_key(UserName="powerless")["AccessKey"]',
      'print(json.dumps({"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}))',
    ].join("\n");
    const python = path.join(ensureRegistryEnv(), "bin", "python");
    powerless = JSON.parse(run(python, ["-c", script], "create an IAM user")) as typeof powerless;
  }, 120_000);
  afterAll(() => guarded?.stop());

  it.each([
    ["a user without a policy", () => powerless, "AccessDenied"],
    [
      "keys the store does not know",
      () => ({ id: "AKIAUNKNOWN0000000000", secret: "x" }),
      "InvalidAccessKeyId",
    ],
  ])("names access denied for %s", async (_, keys, name) => {
    const { code, stderr } = await failedStart({
      AWS_ENDPOINT_URL_S3: guarded.endpoint,
      AWS_REGION: S3_REGION,
      AWS_ACCESS_KEY_ID: keys().id,
      AWS_SECRET_ACCESS_KEY: keys().secret,
      MODEL_URI: `s3://${BUCKET}/iris/model.onnx`,
    });
    expect(code).toBe(1);
    expect(firstLine(stderr)).toBe(
      `mlscore: access to the model at s3://${BUCKET}/iris/model.onnx was denied (${name}): the credentials must exist at ${guarded.endpoint} and may read the object (s3:GetObject)`,
    );
  });
});
