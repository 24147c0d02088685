import { GKE_METADATA_SERVER, PRIVATE_RANGES, modelStoreEgress } from "../../infra/app/model-store";
import { ConfigError, parseConfig, type RawConfig } from "../../infra/config";
import { readStackConfig } from "./harness/stack-config";

/** The config keys of an s3:// model and a registered one: what they accept, what they refuse. */

const dev = readStackConfig("dev");
const KEYS = { "mlscore:s3AccessKeyId": "AKIAEXAMPLE", "mlscore:s3SecretAccessKey": "s3cret" };
const SECRET_KEY = new Set(["mlscore:s3SecretAccessKey"]);

function problems(raw: RawConfig, secretKeys: ReadonlySet<string> = SECRET_KEY): string[] {
  try {
    parseConfig(raw, secretKeys);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return [...(error as ConfigError).problems];
  }
  throw new Error("parseConfig accepted a config it should reject");
}

describe("an s3:// model", () => {
  it("reads the store's region, endpoint and keys", () => {
    const config = parseConfig(
      {
        ...dev,
        ...KEYS,
        "mlscore:modelUri": "s3://models/iris/model.onnx",
        "mlscore:s3Endpoint": "http://minio.minio.svc:9000/",
        "mlscore:s3Region": "eu-west-1",
      },
      SECRET_KEY,
    );
    expect(config.app).toMatchObject({
      modelUri: "s3://models/iris/model.onnx",
      modelUriSecret: false,
      s3: {
        region: "eu-west-1",
        endpoint: "http://minio.minio.svc:9000",
        accessKeyId: "AKIAEXAMPLE",
        secretAccessKey: "s3cret",
      },
    });
  });

  it.each([
    [
      "without keys",
      { "mlscore:modelUri": "s3://models/m.onnx" },
      "mlscore:s3AccessKeyId is required for an s3:// model: the pods read it with this key and " +
        "s3SecretAccessKey, kept in a Kubernetes Secret; set it with: pulumi config set " +
        "s3AccessKeyId AKIA... && pulumi config set --secret s3SecretAccessKey ...",
    ],
    [
      "with only the key id",
      { "mlscore:modelUri": "s3://models/m.onnx", "mlscore:s3AccessKeyId": "AKIAEXAMPLE" },
      "mlscore:s3SecretAccessKey must be set with the other S3 key; set it with: pulumi config " +
        "set s3SecretAccessKey --secret ...",
    ],
    [
      "on a loopback endpoint",
      {
        ...KEYS,
        "mlscore:modelUri": "s3://models/m.onnx",
        "mlscore:s3Endpoint": "http://127.0.0.1:9000",
      },
      "mlscore:s3Endpoint cannot be reached by the pods: its host 127.0.0.1 is in the private " +
        "range 127.0.0.0/8, and their egress policy opens public addresses and cluster Services " +
        "(<service>.<namespace>.svc) only; set it with: pulumi config set s3Endpoint " +
        "http://minio.minio.svc:9000",
    ],
    [
      "on an endpoint with a path",
      {
        ...KEYS,
        "mlscore:modelUri": "s3://models/m.onnx",
        "mlscore:s3Endpoint": "https://minio.example.com/models",
      },
      "mlscore:s3Endpoint must be empty (AWS S3) or the store's http:// or https:// address, " +
        'host and port only (got "https://minio.example.com/models"); set it with: pulumi config ' +
        "set s3Endpoint https://minio.example.com:9000",
    ],
  ])("is refused %s", (_, change, message) => {
    expect(problems({ ...dev, ...change })).toEqual([message]);
  });

  it("refuses a secret key that was not set as a secret", () => {
    expect(
      problems({ ...dev, ...KEYS, "mlscore:modelUri": "s3://models/m.onnx" }, new Set()),
    ).toEqual([
      "mlscore:s3SecretAccessKey must be set as a secret, or it is stored in plain text; set it " +
        "with: pulumi config set s3SecretAccessKey --secret ...",
    ]);
  });

  it("refuses S3 keys for a model that is not in S3", () => {
    expect(
      problems({ ...dev, ...KEYS, "mlscore:modelUri": "https://models.example.com/m.onnx" }),
    ).toEqual([
      "mlscore:s3AccessKeyId applies only to an s3:// model or a registered one (models:/...); " +
        "remove it with: pulumi config rm s3AccessKeyId",
      "mlscore:s3SecretAccessKey applies only to an s3:// model or a registered one " +
        "(models:/...); remove it with: pulumi config rm s3SecretAccessKey",
    ]);
  });
});

describe("a registered model", () => {
  const registered = {
    ...dev,
    "mlscore:modelUri": "models:/iris@champion",
    "mlscore:mlflowTrackingUri": "https://mlflow.example.com/",
  };

  it.each([
    ["models:/iris@champion", { name: "iris", alias: "champion", version: undefined }],
    ["models:/fraud-detector/12", { name: "fraud-detector", alias: undefined, version: "12" }],
  ])("reads %s and its tracking server", (uri, ref) => {
    const config = parseConfig({ ...registered, "mlscore:modelUri": uri }, SECRET_KEY);
    expect(config.app.registeredModel).toEqual({ uri, ...ref });
    expect(config.app.registry).toEqual({
      trackingUri: "https://mlflow.example.com",
      token: undefined,
    });
  });

  it.each([
    [
      "without a tracking server",
      { "mlscore:mlflowTrackingUri": "" },
      "mlscore:mlflowTrackingUri is required when modelUri names a registered model " +
        "(models:/...); set it with: pulumi config set mlflowTrackingUri https://mlflow.example.com",
    ],
    [
      "with a digest the registry would contradict",
      { "mlscore:modelSha256": "a".repeat(64) },
      "mlscore:modelSha256 comes from the registry when modelUri is models:/iris@champion, which " +
        "pins the version and digest it resolves to; remove it with: pulumi config rm modelSha256",
    ],
    [
      "with a token not set as a secret",
      { "mlscore:mlflowTrackingToken": "dapi0123" },
      "mlscore:mlflowTrackingToken must be set as a secret, or it is stored in plain text; set " +
        "it with: pulumi config set mlflowTrackingToken --secret <token>",
    ],
    [
      "named without an alias or a version",
      { "mlscore:modelUri": "models:/iris" },
      "mlscore:modelUri must be empty (the built-in iris model), identity, an absolute path " +
        "inside the image, an https:// URL, a gs://bucket/object, an s3://bucket/key, or a " +
        "registered model models:/<name>@<alias> or models:/<name>/<version> " +
        '(got "models:/iris"); set it with: pulumi config set modelUri gs://my-bucket/model.onnx',
    ],
  ])("is refused %s", (_, change, message) => {
    expect(problems({ ...registered, ...change })).toEqual([message]);
  });

  it("refuses a tracking server for a model that is not registered", () => {
    expect(problems({ ...registered, "mlscore:modelUri": "" })).toEqual([
      "mlscore:mlflowTrackingUri applies only when modelUri names a registered model " +
        "(models:/...); remove it with: pulumi config rm mlflowTrackingUri",
    ]);
  });
});

describe("modelStoreEgress", () => {
  const publicOn = (port: number) => ({
    to: [{ ipBlock: { cidr: "0.0.0.0/0", except: PRIVATE_RANGES } }],
    ports: [{ protocol: "TCP", port }],
  });

  it.each([
    ["s3://models/m.onnx", undefined, [publicOn(443)]],
    ["s3://models/m.onnx", "https://minio.example.com:9443", [publicOn(9443)]],
    ["s3://models/m.onnx", "http://storage.example.com", [publicOn(80)]],
    [
      "s3://models/m.onnx",
      "http://minio.minio.svc.cluster.local:9000",
      [
        {
          to: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "minio" } } }],
          ports: [{ protocol: "TCP", port: 9000 }],
        },
      ],
    ],
    ["https://models.example.com:8443/m.onnx", undefined, [publicOn(8443)]],
    [
      "https://files.models.svc/m.onnx",
      undefined,
      [
        {
          to: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "models" } } }],
          ports: [{ protocol: "TCP", port: 443 }],
        },
      ],
    ],
    [
      "gs://b/m.onnx",
      "http://ignored.example.com",
      [
        publicOn(443),
        ...GKE_METADATA_SERVER.map(({ cidr, port }) => ({
          to: [{ ipBlock: { cidr } }],
          ports: [{ protocol: "TCP", port }],
        })),
      ],
    ],
    ["/app/models/iris.onnx", "http://ignored.example.com", []],
  ])("opens %s (endpoint %s) and no more", (uri, endpoint, rules) => {
    expect(modelStoreEgress(uri, endpoint)).toEqual(rules);
  });
});
