import { createHash } from "node:crypto";
import dns from "node:dns";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import program from "../../infra/index";
import { PRIVATE_RANGES } from "../../infra/app/model-store";
import { BUILTIN_MODEL_URI } from "../../service/src/config";
import { linearRegressor } from "../fixtures/onnx-models";
import {
  freePort,
  S3_KEYS,
  S3_REGION,
  startMlflow,
  startS3,
  type MlflowServer,
  type S3Store,
} from "../fixtures/model-stores";
import { startService } from "../service/support/service-process";
import { type RecordedRun, unwrapSecrets } from "./harness/recorded-run";
import { recordResources } from "./harness/recording";
import { readStackConfig } from "./harness/stack-config";

/**
 * `modelUri: models:/iris@champion` against a real MLflow tracking server (sqlite backend) whose
 * artifacts are in a real S3-compatible store (moto's), both on 127.0.0.1: the whole program runs
 * under the mocks for the cloud parts, and resolves the model through the real registry and store.
 *
 * The one stand-in: the stack refuses a loopback store (the pods could never reach it), so the
 * store is configured by a name, s3.mlscore.test, that this test process resolves to 127.0.0.1.
 */

const STORE_HOST = "s3.mlscore.test";
const BUCKET = "mlflow";
const IMAGE = `registry.example.com/mlscore@sha256:${"0123456789abcdef".repeat(4)}`;

let store: S3Store;
let mlflow: MlflowServer;
let dir: string;
/** What registry.py answered for each logged version, by version number. */
const logged: Record<string, Record<string, string>> = {};
const realLookup = dns.lookup;

/** The bytes MLflow stored for a logged version, read from the store here, and their digest. */
async function storedDigest(version: string): Promise<string> {
  const key = `${logged[version].artifact_uri.replace(`s3://${BUCKET}/`, "")}/model.onnx`;
  const object = await store.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  const bytes = await object.Body!.transformToByteArray();
  return createHash("sha256").update(bytes).digest("hex");
}

beforeAll(async () => {
  // Only the configured store name goes to 127.0.0.1; every other name resolves as ever.
  (dns as { lookup: unknown }).lookup = (host: string, ...rest: unknown[]) =>
    (realLookup as (...args: unknown[]) => void).call(
      dns,
      host === STORE_HOST ? "127.0.0.1" : host,
      ...rest,
    );
  store = await startS3({ hostName: STORE_HOST });
  mlflow = await startMlflow(store, BUCKET);
  dir = mkdtempSync(path.join(os.tmpdir(), "mlscore-registry-"));
  const other = path.join(dir, "regressor.onnx");
  writeFileSync(other, linearRegressor());
  // Version 1 the iris classifier, 2 another ONNX model, 3 a model with no ONNX file.
  const answers = mlflow.registry(
    ["log-onnx", "iris", BUILTIN_MODEL_URI],
    ["log-onnx", "iris", other],
    ["log-pyfunc", "iris"],
    ["alias", "iris", "champion", "1"],
  );
  for (const answer of answers.slice(0, 3)) logged[answer.version] = answer;
}, 300_000);

afterAll(async () => {
  (dns as { lookup: unknown }).lookup = realLookup;
  await mlflow?.stop();
  await store?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A cluster stack whose model is `modelUri`, in the registry and store started above. */
function stackConfig(modelUri: string, extra: Record<string, string> = {}) {
  return {
    ...readStackConfig("cluster"),
    target: "cluster",
    image: IMAGE,
    istioEnabled: false,
    modelUri,
    mlflowTrackingUri: mlflow.trackingUri,
    s3Endpoint: `http://${STORE_HOST}:${new URL(store.endpoint).port}`,
    s3AccessKeyId: S3_KEYS.accessKeyId,
    s3SecretAccessKey: S3_KEYS.secretAccessKey,
    ...extra,
  };
}

const deploy = (modelUri: string, extra: Record<string, string> = {}) =>
  recordResources(program, {
    stack: "cluster",
    config: stackConfig(modelUri, extra),
    secretKeys: ["s3SecretAccessKey"],
  });

/** The scoring container's environment, by name: a value, or the Secret key it comes from. */
function containerEnv(run: RecordedRun): Record<string, unknown> {
  const deployment = run.one("kubernetes:apps/v1:Deployment", "scoring-deployment");
  const spec = unwrapSecrets(deployment.inputs.spec) as {
    template: {
      spec: { containers: { env: { name: string; value?: string; valueFrom?: unknown }[] }[] };
    };
  };
  return Object.fromEntries(
    spec.template.spec.containers[0].env.map((entry) => [
      entry.name,
      entry.value ?? entry.valueFrom,
    ]),
  );
}

/** Every resource's inputs, by type and name, secrets unwrapped. */
function inputsOf(run: RecordedRun): Map<string, string> {
  return new Map(
    run.resources.map((r) => [`${r.type} ${r.name}`, JSON.stringify(unwrapSecrets(r.inputs))]),
  );
}

describe("modelUri: models:/iris@champion", () => {
  let first: RecordedRun;
  beforeAll(async () => {
    first = await deploy("models:/iris@champion");
  }, 60_000);

  it("pins the Deployment to the version the alias names: its file, digest and version", async () => {
    const env = containerEnv(first);
    expect(env).toMatchObject({
      MODEL_URI: `${logged["1"].artifact_uri}/model.onnx`,
      MODEL_SHA256: await storedDigest("1"),
      MODEL_VERSION: "1",
      MODEL_NAME: "iris",
      AWS_REGION: S3_REGION,
      AWS_ENDPOINT_URL_S3: `http://${STORE_HOST}:${new URL(store.endpoint).port}`,
    });
    // The keys come from a Secret, never the pod spec.
    const keys = first.one("kubernetes:core/v1:Secret", "scoring-model-store-keys");
    expect(unwrapSecrets(keys.inputs.stringData)).toEqual({
      AWS_ACCESS_KEY_ID: S3_KEYS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3_KEYS.secretAccessKey,
    });
    const secretName = (keys.state.metadata as { name: string }).name;
    for (const key of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]) {
      expect(env[key]).toEqual({ secretKeyRef: { name: secretName, key } });
    }
  });

  it("reports the provenance: name, resolved version, alias, run and digest", async () => {
    expect(first.outputs.registeredModel).toEqual({
      name: "iris",
      version: "1",
      alias: "champion",
      runId: logged["1"].run_id,
      sha256: await storedDigest("1"),
    });
    expect(first.outputs.modelUri).toBe(`${logged["1"].artifact_uri}/model.onnx`);
    // The pods answer as the registered model's name and version, and the output says so.
    expect(first.outputs.servedModels).toEqual({ stable: { name: "iris", version: "1" } });
  });

  it("lets the pods reach the store on its port, and nothing else for the model", () => {
    const policy = first.one(
      "kubernetes:networking.k8s.io/v1:NetworkPolicy",
      "scoring-allow-model-store",
    );
    expect((policy.inputs.spec as { egress: unknown }).egress).toEqual([
      {
        to: [{ ipBlock: { cidr: "0.0.0.0/0", except: PRIVATE_RANGES } }],
        ports: [{ protocol: "TCP", port: Number(new URL(store.endpoint).port) }],
      },
    ]);
  });

  it("changes nothing while the registry does not, and pins the same by version number", async () => {
    expect(inputsOf(await deploy("models:/iris@champion"))).toEqual(inputsOf(first));
    const byNumber = containerEnv(await deploy("models:/iris/1"));
    expect(byNumber).toEqual(containerEnv(first));
  });

  it("moving the alias changes the Deployment's model inputs and nothing else", async () => {
    mlflow.registry(["alias", "iris", "champion", "2"]);
    try {
      const moved = await deploy("models:/iris@champion");
      const before = inputsOf(first);
      const after = inputsOf(moved);
      const changed = [...after.keys()].filter((key) => after.get(key) !== before.get(key));
      expect(changed).toEqual(["kubernetes:apps/v1:Deployment scoring-deployment"]);
      const [was, now] = [containerEnv(first), containerEnv(moved)];
      const differs = Object.keys(now).filter(
        (key) => JSON.stringify(now[key]) !== JSON.stringify(was[key]),
      );
      expect(differs.sort()).toEqual(["MODEL_SHA256", "MODEL_URI", "MODEL_VERSION"]);
      expect(now).toMatchObject({
        MODEL_URI: `${logged["2"].artifact_uri}/model.onnx`,
        MODEL_SHA256: await storedDigest("2"),
        MODEL_VERSION: "2",
      });
      expect(moved.outputs.registeredModel).toMatchObject({ version: "2", alias: "champion" });
      expect(moved.outputs.servedModels).toEqual({ stable: { name: "iris", version: "2" } });
    } finally {
      mlflow.registry(["alias", "iris", "champion", "1"]);
    }
  });

  it("serves what it pinned: the service loads the resolved model through its own load path", async () => {
    const env = containerEnv(first);
    const service = await startService({
      MODEL_URI: env.MODEL_URI as string,
      MODEL_SHA256: env.MODEL_SHA256 as string,
      MODEL_NAME: env.MODEL_NAME as string,
      MODEL_VERSION: env.MODEL_VERSION as string,
      AWS_ENDPOINT_URL_S3: store.endpoint,
      AWS_REGION: S3_REGION,
      AWS_ACCESS_KEY_ID: S3_KEYS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3_KEYS.secretAccessKey,
    });
    try {
      const metadata = await (await fetch(`${service.url}/v2/models/iris/versions/1`)).json();
      expect(metadata).toMatchObject({ name: "iris", versions: ["1"], platform: "onnxruntime" });
    } finally {
      service.child.kill("SIGKILL");
    }
  });
});

describe("a registered model that cannot be pinned", () => {
  /** The one config problem `pulumi up` stops with, before any resource. */
  async function refusal(modelUri: string, extra: Record<string, string> = {}): Promise<string> {
    const error = await deploy(modelUri, extra).then(
      () => undefined,
      (thrown: Error) => thrown,
    );
    expect(error?.name).toBe("ConfigError");
    return (error as Error).message;
  }

  it.each([
    [
      "an unknown model",
      "models:/churn@champion",
      () =>
        `registered model "churn" does not exist at ${mlflow.trackingUri}; register it ` +
        "(registered_model_name= when logging it, or mlflow.register_model) or fix modelUri",
    ],
    [
      "an unknown alias",
      "models:/iris@challenger",
      () =>
        'registered model "iris" has no alias "challenger" (its aliases: @champion); set it with ' +
        'MlflowClient().set_registered_model_alias("iris", "challenger", <version>)',
    ],
    [
      "an unknown version",
      "models:/iris/9",
      () =>
        'registered model "iris" has no version 9 (its latest is 3); point modelUri at a version ' +
        "it has, or an alias",
    ],
    [
      "a version without an ONNX file",
      "models:/iris/3",
      () =>
        "version 3 has no ONNX file: its MLmodel lists the flavors python_function, not onnx; " +
        "log it with mlflow.onnx.log_model, or point modelUri at a version that was",
    ],
  ])("refuses %s, naming the model and what to do", async (_, modelUri, message) => {
    expect(await refusal(modelUri)).toBe(
      `mlscore:modelUri ${modelUri} cannot be resolved: ${message()}`,
    );
  });

  it("refuses a tracking server it cannot reach", async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    expect(await refusal("models:/iris@champion", { mlflowTrackingUri: closed })).toBe(
      "mlscore:modelUri models:/iris@champion cannot be resolved: cannot reach the MLflow " +
        `tracking server at ${closed} (ECONNREFUSED); check mlflowTrackingUri and ` +
        "that this machine reaches it",
    );
  });

  it("refuses a version in S3 when the pods have no keys for it, though this machine has", async () => {
    // The operator's own credentials let the program read the model; the pods would have none.
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = S3_KEYS.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = S3_KEYS.secretAccessKey;
    try {
      const error = await recordResources(program, {
        stack: "cluster",
        config: {
          ...stackConfig("models:/iris@champion"),
          s3AccessKeyId: "",
          s3SecretAccessKey: "",
        },
      }).then(
        () => undefined,
        (thrown: Error) => thrown,
      );
      expect(error?.message).toBe(
        `mlscore:modelUri models:/iris@champion is version 1 at ${logged["1"].artifact_uri}/model.onnx, ` +
          "but mlscore:s3AccessKeyId is required for an s3:// model: the pods read it with this " +
          "key and s3SecretAccessKey, kept in a Kubernetes Secret; set it with: pulumi config " +
          "set s3AccessKeyId AKIA... && pulumi config set --secret s3SecretAccessKey ...",
      );
    } finally {
      for (const [key, value] of [
        ["AWS_ACCESS_KEY_ID", saved.id],
        ["AWS_SECRET_ACCESS_KEY", saved.secret],
      ] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });
});
