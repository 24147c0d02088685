import { readFileSync } from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { parse as parseYaml } from "yaml";
import {
  CONFIG_KEYS,
  ConfigError,
  loadConfig,
  parseConfig,
  type RawConfig,
  type StackConfig,
} from "../../infra/config";
import { readStackConfig, REPO_ROOT } from "./harness/stack-config";

interface Declaration {
  type: string;
  default?: unknown;
  description?: string;
}

function yamlFile(name: string): Record<string, unknown> {
  return parseYaml(readFileSync(path.join(REPO_ROOT, name), "utf8")) as Record<string, unknown>;
}

const declared = yamlFile("Pulumi.yaml").config as Record<string, Declaration>;
const STACKS = ["dev", "gke"] as const;

/** The message parseConfig throws for `raw`, or fails the test when it does not throw. */
function configError(raw: RawConfig, readProjectFile?: (file: string) => string): ConfigError {
  try {
    parseConfig(raw, new Set(), readProjectFile);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("parseConfig accepted a config it should reject");
}

const dev = readStackConfig("dev");
const gke = { ...readStackConfig("gke"), "gcp:project": "mlscore-test-project" };
const PINNED = `registry.example.com/mlscore@sha256:${"0123456789abcdef".repeat(4)}`;
const GOLDEN = "service/models/iris.golden.json";
/** The dev stack with a canary of the built-in model at version 2. */
const canaryDev = {
  ...dev,
  "mlscore:canaryModelUri": "/app/models/iris.onnx",
  "mlscore:canaryModelVersion": "2",
  "mlscore:canaryGoldenRequests": GOLDEN,
};
/** An existing cluster, as the engine test and a k3d or EKS user configure it. */
const existing = {
  ...readStackConfig("no-such-stack"),
  "mlscore:target": "cluster",
  "mlscore:image": PINNED,
};

describe("Pulumi.yaml and the TypeScript the CLI compiles", () => {
  // The Node.js language host runs the program from `main` when it names a folder and ts-node
  // looks for tsconfig.json only there; with `main: infra/` it found none and compiled with its
  // non-strict defaults. Without `main` it runs from here, where tsconfig.json is, and starts
  // package.json's `main`.
  it("names no main folder, so the program runs from the folder with tsconfig.json", () => {
    const project = yamlFile("Pulumi.yaml");
    expect(project).not.toHaveProperty("main");
    expect(project.runtime).toEqual({ name: "nodejs", options: { typescript: true } });
    const tsconfig = JSON.parse(readFileSync(path.join(REPO_ROOT, "tsconfig.json"), "utf8")) as {
      compilerOptions: Record<string, unknown>;
      include: string[];
    };
    expect(tsconfig.compilerOptions.strict).toBe(true);
    expect(tsconfig.include).toContain("infra");
  });

  it("starts infra/index.ts, package.json's main", () => {
    const manifest = JSON.parse(readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as {
      main: string;
    };
    expect(manifest.main).toBe("infra/index.ts");
  });
});

describe("Pulumi.yaml config block", () => {
  it("declares exactly the keys the program reads, each with a type and description", () => {
    expect(Object.keys(declared).sort()).toEqual([...CONFIG_KEYS].sort());
    for (const [key, declaration] of Object.entries(declared)) {
      expect([key, typeof declaration.description]).toEqual([key, "string"]);
      expect([key, ["string", "integer", "boolean"].includes(declaration.type)]).toEqual([
        key,
        true,
      ]);
    }
  });

  it("gives every key but target a default of its declared type", () => {
    const jsTypes: Record<string, string> = {
      string: "string",
      integer: "number",
      boolean: "boolean",
    };
    for (const [key, declaration] of Object.entries(declared)) {
      if (key === "target") {
        expect(declaration.default).toBeUndefined();
        continue;
      }
      expect([key, typeof declaration.default]).toEqual([key, jsTypes[declaration.type]]);
      if (declaration.type === "integer") {
        expect([key, Number.isInteger(declaration.default)]).toEqual([key, true]);
      }
    }
  });

  it("has defaults that pass validation once a target is chosen", () => {
    const defaults = readStackConfig("no-such-stack");
    expect(() => parseConfig({ ...defaults, "mlscore:target": "kind" })).not.toThrow();
  });

  it("leaves a missing target to the CLI, which stops before the program runs", () => {
    // With no default declared, the CLI refuses the stack with its own message ("Stack 'x' is
    // missing configuration value 'target'", shown by the engine test), so the program's own
    // message below is reached only when a value is set but empty.
    expect(declared.target).not.toHaveProperty("default");
    expect(configError({ ...dev, "mlscore:target": "" }).message).toBe(
      "mlscore:target is required: kind (a local Kind cluster), gke (Google Cloud) or cluster " +
        "(an existing cluster); set it with: pulumi config set target kind",
    );
  });
});

describe.each(STACKS)("Pulumi.%s.yaml", (stack) => {
  const stackConfig = yamlFile(`Pulumi.${stack}.yaml`).config as Record<string, unknown>;

  it("sets only declared project keys or provider keys", () => {
    for (const key of Object.keys(stackConfig)) {
      const [namespace, name] = key.split(":");
      if (namespace === "mlscore") {
        expect(CONFIG_KEYS).toContain(name);
      } else {
        expect(["gcp"]).toContain(namespace);
      }
    }
  });

  it("holds only values that differ from the Pulumi.yaml defaults", () => {
    for (const [key, value] of Object.entries(stackConfig)) {
      const name = key.replace(/^mlscore:/, "");
      const declaration = declared[name];
      if (declaration && "default" in declaration) {
        expect([key, value]).not.toEqual([key, declaration.default]);
      }
    }
  });

  it("writes each value with its declared type, as the CLI checks", () => {
    for (const [key, value] of Object.entries(stackConfig)) {
      const declaration = declared[key.replace(/^mlscore:/, "")];
      if (!declaration) {
        continue;
      }
      const ok =
        declaration.type === "integer"
          ? Number.isInteger(value)
          : declaration.type === "boolean"
            ? typeof value === "boolean"
            : typeof value === "string";
      expect([key, ok]).toEqual([key, true]);
    }
  });
});

describe("parseConfig on the real stacks", () => {
  it("reads the dev stack as Kind with the derived MetalLB range", () => {
    const expected: StackConfig = {
      cluster: {
        target: "kind",
        clusterName: "mlscore",
        metallbVersion: "0.14.9",
        metallbAddressRange: undefined,
        metricsServerVersion: "3.13.1",
      },
      app: {
        namespace: "mlscore",
        replicas: 2,
        minReplicas: 2,
        maxReplicas: 4,
        targetCpuUtilization: 70,
        cpuRequest: "1",
        cpuLimit: "1",
        memoryRequest: "256Mi",
        memoryLimit: "512Mi",
        modelUri: undefined,
        modelName: undefined,
        modelVersion: undefined,
        modelSha256: undefined,
        modelMaxBytes: 100 * 2 ** 20,
        modelUriSecret: false,
        registeredModel: undefined,
        registry: undefined,
        s3: {
          region: "us-east-1",
          endpoint: undefined,
          accessKeyId: undefined,
          secretAccessKey: undefined,
        },
        loadBalancerSourceRanges: [],
        monitoringNamespace: undefined,
        servedModel: { name: "iris", version: "1" },
        canary: undefined,
      },
      istio: {
        enabled: true,
        version: "1.31.1",
        install: true,
        gatewayNamespace: "istio-ingress",
        tlsSecretName: undefined,
      },
    };
    expect(parseConfig(dev)).toEqual(expected);
  });

  it("reads the gke stack, its project coming from gcp:project", () => {
    const config = parseConfig(gke);
    expect(config.cluster).toEqual({
      target: "gke",
      project: "mlscore-test-project",
      region: "us-central1",
      zone: "us-central1-a",
      nodeCount: 3,
      minNodes: 1,
      maxNodes: 5,
      machineType: "e2-standard-2",
    });
    expect(config.app).toMatchObject({
      replicas: 3,
      minReplicas: 3,
      maxReplicas: 5,
      monitoringNamespace: "gmp-system",
    });
  });

  it("rejects the gke stack file as committed: the project is the user's to set", () => {
    expect(configError(readStackConfig("gke")).message).toBe(
      "mlscore:gcpProject (or gcp:project) is required when mlscore:target is gke; " +
        "set it with: pulumi config set gcp:project my-project-id",
    );
  });

  it("reads an existing cluster: its image, and the current context unless one is named", () => {
    expect(parseConfig(existing).cluster).toEqual({
      target: "cluster",
      kubeContext: undefined,
      image: PINNED,
    });
    expect(
      parseConfig({ ...existing, "mlscore:kubeContext": "arn:aws:eks:eu-west-1:1:cluster/ml" })
        .cluster,
    ).toEqual({
      target: "cluster",
      kubeContext: "arn:aws:eks:eu-west-1:1:cluster/ml",
      image: PINNED,
    });
  });

  it("keeps optional values that are set", () => {
    const sha = "AB".repeat(32);
    const config = parseConfig({
      ...dev,
      "mlscore:modelUri": "https://models.example.com/iris/v2.onnx",
      "mlscore:modelName": "iris-v2",
      "mlscore:modelVersion": "2",
      "mlscore:modelSha256": sha,
      "mlscore:modelMaxSize": "1Gi",
      "mlscore:memoryLimit": "3Gi",
      "mlscore:metallbAddressRange": "172.18.0.0/28",
      "mlscore:loadBalancerSourceRanges": "203.0.113.0/24,198.51.100.7/32",
      "mlscore:monitoringNamespace": "monitoring",
      "mlscore:tlsSecretName": "mlscore-tls",
    });
    expect(config.app).toMatchObject({
      modelUri: "https://models.example.com/iris/v2.onnx",
      modelName: "iris-v2",
      modelVersion: "2",
      modelSha256: sha.toLowerCase(),
      modelMaxBytes: 2 ** 30,
      loadBalancerSourceRanges: ["203.0.113.0/24", "198.51.100.7/32"],
      monitoringNamespace: "monitoring",
      servedModel: { name: "iris-v2", version: "2" },
    });
    expect(config.istio).toEqual({
      enabled: true,
      version: "1.31.1",
      install: true,
      gatewayNamespace: "istio-ingress",
      tlsSecretName: "mlscore-tls",
    });
    expect(config.cluster).toMatchObject({ metallbAddressRange: "172.18.0.0/28" });
  });

  it("turns Istio off on request", () => {
    expect(parseConfig({ ...dev, "mlscore:istioEnabled": "false" }).istio.enabled).toBe(false);
  });

  it("accepts a gs:// model on gke, where Workload Identity reads it", () => {
    const uri = "gs://models-bucket/iris/v2.onnx";
    expect(parseConfig({ ...gke, "mlscore:modelUri": uri }).app.modelUri).toBe(uri);
  });
});

describe("parseConfig rejects each bad value with its exact message", () => {
  const cases: [string, RawConfig, Record<string, string | undefined>, string][] = [
    [
      "an unknown target",
      dev,
      { "mlscore:target": "aks" },
      'mlscore:target must be kind, gke or cluster (got "aks"); ' +
        "set it with: pulumi config set target kind",
    ],
    [
      "an existing cluster without an image",
      existing,
      { "mlscore:image": "" },
      "mlscore:image is required when mlscore:target is cluster: the cluster target builds no " +
        "image, so give one built elsewhere as repository@sha256:<64 hex digits>; set it with: " +
        "pulumi config set image registry.example.com/mlscore@sha256:<64 hex digits>",
    ],
    [
      "an existing cluster with an image by tag",
      existing,
      { "mlscore:image": "registry.example.com/mlscore:latest" },
      'mlscore:image must be pinned by digest (got "registry.example.com/mlscore:latest"): the ' +
        "cluster target builds no image, so give one built elsewhere as " +
        "repository@sha256:<64 hex digits>; set it with: " +
        "pulumi config set image registry.example.com/mlscore@sha256:<64 hex digits>",
    ],
    [
      "a kubeconfig context with a space",
      existing,
      { "mlscore:kubeContext": "my cluster" },
      'mlscore:kubeContext must be a kubeconfig context name (no spaces) (got "my cluster"); ' +
        "set it with: pulumi config set kubeContext my-context",
    ],
    [
      "an image on kind, which builds its own",
      dev,
      { "mlscore:image": PINNED },
      "mlscore:image applies only when mlscore:target is cluster (kind builds the image from " +
        "service/ and chooses its own context); remove it with: pulumi config rm image",
    ],
    [
      "a kubeconfig context on gke, which makes its own",
      gke,
      { "mlscore:kubeContext": "kind-mlscore" },
      "mlscore:kubeContext applies only when mlscore:target is cluster (gke builds the image " +
        "from service/ and chooses its own context); remove it with: pulumi config rm kubeContext",
    ],
    [
      "a MetalLB range on an existing cluster",
      existing,
      { "mlscore:metallbAddressRange": "172.18.0.0/28" },
      "mlscore:metallbAddressRange applies only when mlscore:target is kind (MetalLB is " +
        "installed nowhere else); remove it with: pulumi config rm metallbAddressRange",
    ],
    [
      "a Google Cloud project on an existing cluster",
      existing,
      { "mlscore:gcpProject": "mlscore-test-project" },
      "mlscore:gcpProject applies only when mlscore:target is gke; " +
        "remove it with: pulumi config rm gcpProject",
    ],
    [
      "a namespace that is no DNS label",
      dev,
      { "mlscore:namespace": "ML_Score" },
      'mlscore:namespace must be a lowercase DNS label of at most 63 characters (got "ML_Score"); ' +
        "set it with: pulumi config set namespace mlscore",
    ],
    [
      "a namespace an add-on owns",
      dev,
      { "mlscore:namespace": "istio-system" },
      'mlscore:namespace must not be "istio-system", which the cluster or an add-on owns; ' +
        "set it with: pulumi config set namespace mlscore",
    ],
    [
      "a namespace that is too long",
      dev,
      { "mlscore:namespace": "a".repeat(64) },
      "mlscore:namespace must be at most 63 characters (got 64); " +
        "set it with: pulumi config set namespace mlscore",
    ],
    [
      "zero replicas",
      dev,
      { "mlscore:replicas": "0" },
      'mlscore:replicas must be a whole number from 1 to 50 (got "0"); ' +
        "set it with: pulumi config set replicas 2",
    ],
    [
      "fractional replicas",
      dev,
      { "mlscore:replicas": "2.5" },
      'mlscore:replicas must be a whole number from 1 to 50 (got "2.5"); ' +
        "set it with: pulumi config set replicas 2",
    ],
    [
      "minReplicas above replicas",
      dev,
      { "mlscore:minReplicas": "3" },
      "mlscore:minReplicas (3) must not exceed mlscore:replicas (2); " +
        "set it with: pulumi config set minReplicas 2",
    ],
    [
      "replicas above maxReplicas",
      dev,
      { "mlscore:replicas": "5" },
      "mlscore:replicas (5) must not exceed mlscore:maxReplicas (4); " +
        "set it with: pulumi config set maxReplicas 5",
    ],
    [
      "a CPU target outside 10-95",
      dev,
      { "mlscore:targetCpuUtilization": "100" },
      'mlscore:targetCpuUtilization must be a whole number from 10 to 95 (got "100"); ' +
        "set it with: pulumi config set targetCpuUtilization 70",
    ],
    [
      "a CPU quantity that is no quantity",
      dev,
      { "mlscore:cpuRequest": "lots" },
      'mlscore:cpuRequest must be a CPU quantity such as 250m or 1 (got "lots"); ' +
        "set it with: pulumi config set cpuRequest 1",
    ],
    [
      "a CPU request above its limit",
      dev,
      { "mlscore:cpuRequest": "1500m" },
      "mlscore:cpuRequest (1500m) must not exceed mlscore:cpuLimit (1); " +
        "set it with: pulumi config set cpuLimit 1500m",
    ],
    [
      "a memory quantity in the wrong unit",
      dev,
      { "mlscore:memoryLimit": "1GB" },
      'mlscore:memoryLimit must be a memory quantity such as 256Mi or 1Gi (got "1GB"); ' +
        "set it with: pulumi config set memoryLimit 512Mi",
    ],
    [
      "a memory request above its limit",
      dev,
      { "mlscore:memoryRequest": "1Gi" },
      "mlscore:memoryRequest (1Gi) must not exceed mlscore:memoryLimit (512Mi); " +
        "set it with: pulumi config set memoryLimit 1Gi",
    ],
    [
      "a model URI with an unsupported scheme",
      dev,
      { "mlscore:modelUri": "hdfs://namenode/model.onnx" },
      "mlscore:modelUri must be empty (the built-in iris model), identity, an absolute path " +
        "inside the image, an https:// URL, a gs://bucket/object, an s3://bucket/key, or a " +
        "registered model models:/<name>@<alias> or models:/<name>/<version> " +
        '(got "hdfs://namenode/model.onnx"); ' +
        "set it with: pulumi config set modelUri gs://my-bucket/model.onnx",
    ],
    [
      "a relative model path",
      dev,
      { "mlscore:modelUri": "models/iris.onnx" },
      "mlscore:modelUri must be empty (the built-in iris model), identity, an absolute path " +
        "inside the image, an https:// URL, a gs://bucket/object, an s3://bucket/key, or a " +
        "registered model models:/<name>@<alias> or models:/<name>/<version> " +
        '(got "models/iris.onnx"); ' +
        "set it with: pulumi config set modelUri gs://my-bucket/model.onnx",
    ],
    [
      "a model name with a slash",
      dev,
      { "mlscore:modelName": "iris/v2" },
      'mlscore:modelName must be empty or 1-64 letters, digits, "_", "." or "-", starting with a ' +
        'letter or digit (got "iris/v2"); set it with: pulumi config set modelName iris',
    ],
    [
      "istioEnabled that is no boolean",
      dev,
      { "mlscore:istioEnabled": "yes" },
      'mlscore:istioEnabled must be true or false (got "yes"); ' +
        "set it with: pulumi config set istioEnabled true",
    ],
    [
      "a floating Istio version",
      dev,
      { "mlscore:istioVersion": "latest" },
      'mlscore:istioVersion must be a release version such as 1.31.1 (got "latest"); ' +
        "set it with: pulumi config set istioVersion 1.31.1",
    ],
    [
      "a MetalLB version with a v prefix",
      dev,
      { "mlscore:metallbVersion": "v0.14.9" },
      'mlscore:metallbVersion must be a release version such as 0.14.9 (got "v0.14.9"); ' +
        "set it with: pulumi config set metallbVersion 0.14.9",
    ],
    [
      "a backwards MetalLB range",
      dev,
      { "mlscore:metallbAddressRange": "172.18.255.250-172.18.255.200" },
      "mlscore:metallbAddressRange must be empty (derived from the kind Docker network), an IPv4 " +
        'range first-last or an IPv4 CIDR (got "172.18.255.250-172.18.255.200"); ' +
        "set it with: pulumi config set metallbAddressRange 172.18.255.200-172.18.255.250",
    ],
    [
      "a MetalLB range on gke",
      gke,
      { "mlscore:metallbAddressRange": "10.0.0.0/28" },
      "mlscore:metallbAddressRange applies only when mlscore:target is kind (MetalLB is " +
        "installed nowhere else); remove it with: pulumi config rm metallbAddressRange",
    ],
    [
      "a Kind cluster name with capitals",
      dev,
      { "mlscore:kindClusterName": "MyCluster" },
      'mlscore:kindClusterName must be a lowercase DNS label (got "MyCluster"); ' +
        "set it with: pulumi config set kindClusterName mlscore",
    ],
    [
      "a GCP project set on kind",
      dev,
      { "mlscore:gcpProject": "mlscore-test-project" },
      "mlscore:gcpProject applies only when mlscore:target is gke; " +
        "remove it with: pulumi config rm gcpProject",
    ],
    [
      "a malformed GCP project",
      gke,
      { "mlscore:gcpProject": "My_Project", "gcp:project": undefined },
      "mlscore:gcpProject must be a Google Cloud project ID: 6-30 lowercase letters, digits or " +
        'hyphens (got "My_Project"); set it with: pulumi config set gcpProject my-project-id',
    ],
    [
      "two different GCP projects",
      gke,
      { "mlscore:gcpProject": "another-project" },
      'mlscore:gcpProject ("another-project") and gcp:project ("mlscore-test-project") name ' +
        "different projects; remove one with: pulumi config rm gcpProject",
    ],
    [
      "a malformed region",
      gke,
      { "mlscore:gcpRegion": "us central" },
      'mlscore:gcpRegion must be a Google Cloud region such as us-central1 (got "us central"); ' +
        "set it with: pulumi config set gcpRegion us-central1",
    ],
    [
      "a provider region that disagrees",
      gke,
      { "gcp:region": "europe-west1" },
      'gcp:region ("europe-west1") differs from mlscore:gcpRegion ("us-central1"), which this ' +
        "program uses; set it with: pulumi config set gcpRegion europe-west1",
    ],
    [
      "a zone outside the region",
      gke,
      { "mlscore:gcpZone": "europe-west1-b" },
      "mlscore:gcpZone must be a zone of mlscore:gcpRegion us-central1, such as us-central1-a " +
        '(got "europe-west1-b"); set it with: pulumi config set gcpZone us-central1-a',
    ],
    [
      "no nodes",
      gke,
      { "mlscore:nodeCount": "0" },
      'mlscore:nodeCount must be a whole number from 1 to 100 (got "0"); ' +
        "set it with: pulumi config set nodeCount 3",
    ],
    [
      "minNodes above nodeCount",
      gke,
      { "mlscore:minNodes": "4" },
      "mlscore:minNodes (4) must not exceed mlscore:nodeCount (3); " +
        "set it with: pulumi config set minNodes 3",
    ],
    [
      "nodeCount above maxNodes",
      gke,
      { "mlscore:nodeCount": "6" },
      "mlscore:nodeCount (6) must not exceed mlscore:maxNodes (5); " +
        "set it with: pulumi config set maxNodes 6",
    ],
    [
      "a machine type that is no machine type",
      gke,
      { "mlscore:machineType": "large" },
      "mlscore:machineType must be a Compute Engine machine type such as e2-standard-2 " +
        '(got "large"); set it with: pulumi config set machineType e2-standard-2',
    ],
    [
      "a memory limit that cannot hold the largest model",
      dev,
      { "mlscore:modelMaxSize": "512Mi" },
      "mlscore:memoryLimit (512Mi) cannot hold a model of mlscore:modelMaxSize (512Mi): loading " +
        "one peaks at about 1332Mi (256Mi at rest plus 2.1 × the model); lower modelMaxSize or " +
        "raise the limit; set it with: pulumi config set memoryLimit 1332Mi",
    ],
    [
      "a memory limit below what the process needs at rest",
      dev,
      {
        "mlscore:memoryRequest": "64Mi",
        "mlscore:memoryLimit": "128Mi",
        "mlscore:modelMaxSize": "1Mi",
      },
      "mlscore:memoryLimit (128Mi) cannot hold a model of mlscore:modelMaxSize (1Mi): loading " +
        "one peaks at about 259Mi (256Mi at rest plus 2.1 × the model); lower modelMaxSize or " +
        "raise the limit; set it with: pulumi config set memoryLimit 259Mi",
    ],
    [
      "a model size that is no memory quantity",
      dev,
      { "mlscore:modelMaxSize": "200MB" },
      'mlscore:modelMaxSize must be a memory quantity such as 256Mi or 1Gi (got "200MB"); ' +
        "set it with: pulumi config set modelMaxSize 100Mi",
    ],
    [
      "a model size under a mebibyte",
      dev,
      { "mlscore:modelMaxSize": "512Ki" },
      'mlscore:modelMaxSize must be at least 1Mi (got "512Ki"); ' +
        "set it with: pulumi config set modelMaxSize 100Mi",
    ],
    [
      "a model digest that is not 64 hex characters",
      dev,
      { "mlscore:modelSha256": "abc123" },
      "mlscore:modelSha256 must be empty or the model file's SHA-256 as 64 hexadecimal " +
        'characters (got "abc123"); set it with: pulumi config set modelSha256 ' +
        "$(sha256sum model.onnx | cut -c1-64)",
    ],
    [
      "a model version with a space",
      dev,
      { "mlscore:modelVersion": "v 2" },
      'mlscore:modelVersion must be empty or 1-64 letters, digits, "_", "." or "-", starting ' +
        'with a letter or digit (got "v 2"); set it with: pulumi config set modelVersion 2',
    ],
    [
      "a gs:// model on Kind, which has no Google credentials",
      dev,
      { "mlscore:modelUri": "gs://models-bucket/iris.onnx" },
      "mlscore:modelUri is a gs:// object, which a Kind cluster has no Google credentials to " +
        "read; use an https:// URL (a signed URL, stored with --secret) or target gke; set it " +
        "with: pulumi config set modelUri --secret " +
        "https://storage.googleapis.com/my-bucket/model.onnx?X-Goog-Signature=...",
    ],
    [
      "an https:// model on a private address the egress policy blocks",
      gke,
      { "mlscore:modelUri": "https://10.1.2.3/models/iris.onnx" },
      "mlscore:modelUri cannot be reached by the pods: its host 10.1.2.3 is in the private " +
        "range 10.0.0.0/8, and their egress policy opens public " +
        "addresses and cluster Services (<service>.<namespace>.svc) only; serve the model from a " +
        "public https:// host or a bucket; set it with: pulumi config set modelUri " +
        "gs://my-bucket/model.onnx",
    ],
    [
      "an https:// model on the link-local metadata address",
      gke,
      { "mlscore:modelUri": "https://169.254.169.254/computeMetadata/v1/" },
      "mlscore:modelUri cannot be reached by the pods: its host 169.254.169.254 is in the " +
        "private range 169.254.0.0/16, and their egress policy opens public " +
        "addresses and cluster Services (<service>.<namespace>.svc) only; serve the model from a " +
        "public https:// host or a bucket; set it with: pulumi config set modelUri " +
        "gs://my-bucket/model.onnx",
    ],
    [
      "an https:// model on a host-local name",
      dev,
      { "mlscore:modelUri": "https://models.local/iris.onnx" },
      "mlscore:modelUri cannot be reached by the pods: its host models.local is a host-local " +
        "name, and their egress policy opens public " +
        "addresses and cluster Services (<service>.<namespace>.svc) only; serve the model from a " +
        "public https:// host or a bucket; set it with: pulumi config set modelUri " +
        "gs://my-bucket/model.onnx",
    ],
    [
      "an https:// model on an IPv6 literal",
      dev,
      { "mlscore:modelUri": "https://[fd00::1]/iris.onnx" },
      "mlscore:modelUri cannot be reached by the pods: its host [fd00::1] is an IPv6 address, " +
        "and their egress policy opens public " +
        "addresses and cluster Services (<service>.<namespace>.svc) only; serve the model from a " +
        "public https:// host or a bucket; set it with: pulumi config set modelUri " +
        "gs://my-bucket/model.onnx",
    ],
    [
      "a bad model URI carrying a signature, which the message must not repeat",
      dev,
      { "mlscore:modelUri": "s3://user:hunter2@bucket/model.onnx?X-Amz-Signature=deadbeef" },
      "mlscore:modelUri must be empty (the built-in iris model), identity, an absolute path " +
        "inside the image, an https:// URL, a gs://bucket/object, an s3://bucket/key, or a " +
        "registered model models:/<name>@<alias> or models:/<name>/<version> " +
        '(got "s3://…@bucket/model.onnx?…"); ' +
        "set it with: pulumi config set modelUri gs://my-bucket/model.onnx",
    ],
    [
      "a source range that is no CIDR",
      dev,
      { "mlscore:loadBalancerSourceRanges": "203.0.113.0/24,office" },
      "mlscore:loadBalancerSourceRanges must be empty (any source) or IPv4 CIDRs separated by " +
        'commas, such as 203.0.113.0/24,198.51.100.7/32 (got "office"); ' +
        "set it with: pulumi config set loadBalancerSourceRanges 203.0.113.0/24",
    ],
    [
      "a TLS secret without the gateway that would serve it",
      dev,
      { "mlscore:tlsSecretName": "mlscore-tls", "mlscore:istioEnabled": "false" },
      "mlscore:tlsSecretName needs mlscore:istioEnabled true: the gateway terminates TLS; " +
        "remove it with: pulumi config rm tlsSecretName",
    ],
    [
      "a TLS secret name with capitals",
      dev,
      { "mlscore:tlsSecretName": "MyCert" },
      "mlscore:tlsSecretName must be empty or the name of a kubernetes.io/tls Secret (a " +
        'lowercase DNS subdomain) (got "MyCert"); set it with: pulumi config set tlsSecretName ' +
        "mlscore-tls",
    ],
    [
      "a monitoring namespace with an underscore",
      gke,
      { "mlscore:monitoringNamespace": "gmp_system" },
      'mlscore:monitoringNamespace must be empty or a lowercase DNS label (got "gmp_system"); ' +
        "set it with: pulumi config set monitoringNamespace gmp-system",
    ],
    [
      "a floating metrics-server version",
      dev,
      { "mlscore:metricsServerVersion": "latest" },
      'mlscore:metricsServerVersion must be a release version such as 3.13.1 (got "latest"); ' +
        "set it with: pulumi config set metricsServerVersion 3.13.1",
    ],
    [
      "more replicas spread one per node than gke may ever have nodes",
      gke,
      {
        "mlscore:minReplicas": "3",
        "mlscore:maxNodes": "2",
        "mlscore:nodeCount": "2",
        "mlscore:minNodes": "1",
      },
      "mlscore:minReplicas (3) must not exceed mlscore:maxNodes (2); " +
        "set it with: pulumi config set maxNodes 3",
    ],
    [
      "a canary without Istio to split the traffic",
      canaryDev,
      { "mlscore:istioEnabled": "false" },
      "mlscore:canaryModelUri needs mlscore:istioEnabled true: Istio's route splits the traffic " +
        "between the stable model and the canary, and without it no request could reach the " +
        "canary; set it with: pulumi config set istioEnabled true",
    ],
    [
      "a canary without golden requests",
      canaryDev,
      { "mlscore:canaryGoldenRequests": "" },
      "mlscore:canaryGoldenRequests is required with a canary: the gate checks the canary's " +
        "answers to these requests before it gets any traffic; set it with: " +
        "pulumi config set canaryGoldenRequests service/models/iris.golden.json",
    ],
    [
      "golden requests that do not exist",
      canaryDev,
      { "mlscore:canaryGoldenRequests": "service/models/nope.json" },
      "mlscore:canaryGoldenRequests (service/models/nope.json) cannot be read (ENOENT); " +
        "set it with: pulumi config set canaryGoldenRequests service/models/iris.golden.json",
    ],
    [
      "golden requests outside the project folder",
      canaryDev,
      { "mlscore:canaryGoldenRequests": "../secrets.json" },
      "mlscore:canaryGoldenRequests must be empty or a path inside the project folder, such as " +
        'service/models/iris.golden.json (got "../secrets.json"); set it with: ' +
        "pulumi config set canaryGoldenRequests service/models/iris.golden.json",
    ],
    [
      "a canary that answers as the stable model does",
      canaryDev,
      { "mlscore:canaryModelVersion": "" },
      'mlscore:canaryModelVersion must differ from the stable model\'s version ("1") while both ' +
        'answer as "iris": clients, metrics and the smoke test tell them apart by it; ' +
        "set it with: pulumi config set canaryModelVersion 2",
    ],
    [
      "a canary of the stable model's version 7",
      canaryDev,
      { "mlscore:modelVersion": "7", "mlscore:canaryModelVersion": "7" },
      'mlscore:canaryModelVersion must differ from the stable model\'s version ("7") while both ' +
        'answer as "iris": clients, metrics and the smoke test tell them apart by it; ' +
        "set it with: pulumi config set canaryModelVersion 8",
    ],
    [
      "a canary URI the service cannot load",
      canaryDev,
      { "mlscore:canaryModelUri": "s4://bucket/m.onnx" },
      "mlscore:canaryModelUri must be empty (no canary), identity, an absolute path inside the " +
        "image, an https:// URL, a gs://bucket/object, an s3://bucket/key, or a registered model " +
        'models:/<name>@<alias> or models:/<name>/<version> (got "s4://bucket/m.onnx"); ' +
        "set it with: pulumi config set canaryModelUri gs://my-bucket/model.onnx",
    ],
    [
      "a registered model as the canary",
      canaryDev,
      { "mlscore:canaryModelUri": "models:/iris@challenger" },
      "mlscore:canaryModelUri cannot be used with a registered model (models:/...) on either " +
        "side: a canary is promoted by config, a registered model by its alias; give both sides " +
        "artifact URIs; set it with: pulumi config set canaryModelUri s3://my-bucket/model-v2.onnx",
    ],
    [
      "an s3:// canary without the store's keys",
      canaryDev,
      { "mlscore:canaryModelUri": "s3://models/iris-v2.onnx" },
      "mlscore:s3AccessKeyId is required for an s3:// model: the pods read it with this key and " +
        "s3SecretAccessKey, kept in a Kubernetes Secret; " +
        "set it with: pulumi config set s3AccessKeyId AKIA... && pulumi config set --secret s3SecretAccessKey ...",
    ],
    [
      "a gs:// canary on Kind",
      canaryDev,
      { "mlscore:canaryModelUri": "gs://models/iris-v2.onnx" },
      "mlscore:canaryModelUri is a gs:// object, which a Kind cluster has no Google credentials " +
        "to read; use an https:// URL (a signed URL, stored with --secret) or target gke; set it " +
        "with: pulumi config set canaryModelUri --secret https://storage.googleapis.com/my-bucket/model.onnx?X-Goog-Signature=...",
    ],
    [
      "a canary on a private address the egress policy blocks",
      canaryDev,
      { "mlscore:canaryModelUri": "https://10.1.2.3/iris-v2.onnx" },
      "mlscore:canaryModelUri cannot be reached by the pods: its host 10.1.2.3 is in the private " +
        "range 10.0.0.0/8, and their egress policy opens public addresses and cluster Services " +
        "(<service>.<namespace>.svc) only; serve the model from a public https:// host or a " +
        "bucket; set it with: pulumi config set canaryModelUri gs://my-bucket/model.onnx",
    ],
    [
      "a canary digest that is not SHA-256",
      canaryDev,
      { "mlscore:canaryModelSha256": "abc" },
      "mlscore:canaryModelSha256 must be empty or the model file's SHA-256 as 64 hexadecimal " +
        'characters (got "abc"); set it with: pulumi config set canaryModelSha256 ' +
        "$(sha256sum model.onnx | cut -c1-64)",
    ],
    [
      "a canary weight over 100",
      canaryDev,
      { "mlscore:canaryWeight": "110" },
      'mlscore:canaryWeight must be a whole number from 0 to 100 (got "110"); ' +
        "set it with: pulumi config set canaryWeight 10",
    ],
    [
      "a gs:// canary in another bucket than the stable model",
      gke,
      {
        "mlscore:modelUri": "gs://models-a/iris.onnx",
        "mlscore:canaryModelUri": "gs://models-b/iris.onnx",
        "mlscore:canaryModelVersion": "2",
        "mlscore:canaryGoldenRequests": "service/models/iris.golden.json",
      },
      'mlscore:canaryModelUri is in bucket "models-b" and the stable model in "models-a": the ' +
        "pods' Google identity may read one bucket; put the canary beside the stable model; " +
        "set it with: pulumi config set canaryModelUri gs://models-a/model-v2.onnx",
    ],
    [
      "the cluster's own Istio on Kind",
      dev,
      { "mlscore:istioInstall": "false" },
      "mlscore:istioInstall false applies only when mlscore:target is cluster: kind makes a " +
        "cluster that runs no Istio of its own; remove it with: pulumi config rm istioInstall",
    ],
    [
      "the cluster's own Istio with Istio off",
      existing,
      { "mlscore:istioInstall": "false", "mlscore:istioEnabled": "false" },
      "mlscore:istioInstall false says which Istio to use and needs mlscore:istioEnabled true; " +
        "remove it with: pulumi config rm istioInstall",
    ],
    [
      "source ranges for a load balancer the cluster's own Istio owns",
      existing,
      { "mlscore:istioInstall": "false", "mlscore:loadBalancerSourceRanges": "203.0.113.0/24" },
      "mlscore:loadBalancerSourceRanges has no load balancer to apply to: the cluster's own " +
        "Istio gateway and its Service are not the stack's; " +
        "remove it with: pulumi config rm loadBalancerSourceRanges",
    ],
    [
      "a gateway namespace for the gateway the stack installs",
      existing,
      { "mlscore:istioGatewayNamespace": "istio-system" },
      "mlscore:istioGatewayNamespace applies only to the cluster's own Istio " +
        "(mlscore:istioInstall false); the stack installs its gateway in istio-ingress; " +
        "remove it with: pulumi config rm istioGatewayNamespace",
    ],
    [
      "the app in the namespace of the cluster's own gateway",
      existing,
      {
        "mlscore:istioInstall": "false",
        "mlscore:istioGatewayNamespace": "gateways",
        "mlscore:namespace": "gateways",
      },
      'mlscore:namespace must not be "gateways", the Istio ingress gateway\'s namespace; ' +
        "set it with: pulumi config set namespace mlscore",
    ],
    [
      "a key missing entirely (Pulumi.yaml not merged)",
      dev,
      { "mlscore:replicas": undefined },
      "mlscore:replicas is not set (Pulumi.yaml declares its default); " +
        "set it with: pulumi config set replicas 2",
    ],
  ];

  it.each(cases)("%s", (_name, base, change, message) => {
    const error = configError({ ...base, ...change });
    expect(error.message).toBe(message);
    expect(error.problems).toEqual([message]);
  });

  it("lists every problem at once, one per line, in key order", () => {
    const error = configError({ ...dev, "mlscore:replicas": "0", "mlscore:cpuLimit": "x" });
    expect(error.problems).toEqual([
      'mlscore:replicas must be a whole number from 1 to 50 (got "0"); ' +
        "set it with: pulumi config set replicas 2",
      'mlscore:cpuLimit must be a CPU quantity such as 250m or 1 (got "x"); ' +
        "set it with: pulumi config set cpuLimit 1",
    ]);
    expect(error.message).toBe(error.problems.join("\n"));
  });

  it("compares no value it has already rejected (its stand-in would show in the message)", () => {
    // Found by the engine test: with minReplicas 3, replicas 0 also produced "minReplicas (3)
    // must not exceed replicas (2)", a value nobody had set.
    const error = configError({ ...dev, "mlscore:minReplicas": "3", "mlscore:replicas": "0" });
    expect(error.problems).toEqual([
      'mlscore:replicas must be a whole number from 1 to 50 (got "0"); ' +
        "set it with: pulumi config set replicas 2",
    ]);
    expect(
      configError({
        ...gke,
        "mlscore:nodeCount": "x",
        "mlscore:maxNodes": "2",
        "mlscore:replicas": "2",
        "mlscore:minReplicas": "2",
      }).problems,
    ).toEqual([
      'mlscore:nodeCount must be a whole number from 1 to 100 (got "x"); ' +
        "set it with: pulumi config set nodeCount 3",
    ]);
  });

  it("is a RunError, so the CLI prints it without a stack trace", () => {
    expect(pulumi.RunError.isInstance(configError({ ...dev, "mlscore:target": "" }))).toBe(true);
  });
});

describe("a canary", () => {
  it("answers as the stable model's name at its own version, with its weight and golden requests", () => {
    expect(parseConfig(canaryDev).app.canary).toEqual({
      modelUri: "/app/models/iris.onnx",
      modelUriSecret: false,
      modelSha256: undefined,
      servedModel: { name: "iris", version: "2" },
      weight: 10,
      goldenFile: GOLDEN,
      golden: readFileSync(path.join(REPO_ROOT, GOLDEN), "utf8"),
    });
  });

  it("takes the stable model's name as the service derives it from the stable URI", () => {
    const config = parseConfig({
      ...canaryDev,
      "mlscore:modelUri": "https://models.example.com/churn.onnx?X-Goog-Signature=1",
      "mlscore:canaryModelUri": "https://models.example.com/churn-v2.onnx",
    });
    expect(config.app.servedModel).toEqual({ name: "churn", version: "1" });
    expect(config.app.canary?.servedModel).toEqual({ name: "churn", version: "2" });
  });

  it("may keep the stable version under a name of its own", () => {
    const config = parseConfig({
      ...canaryDev,
      "mlscore:canaryModelName": "iris-next",
      "mlscore:canaryModelVersion": "",
      "mlscore:canaryWeight": "0",
    });
    expect(config.app.canary).toMatchObject({
      servedModel: { name: "iris-next", version: "1" },
      weight: 0,
    });
  });

  it("pins its bytes and keeps a URI with a credential secret, as the stable model does", () => {
    const sha = "AB".repeat(32);
    const uri = "https://models.example.com/iris-v2.onnx?X-Goog-Signature=abc";
    const config = parseConfig({
      ...canaryDev,
      "mlscore:canaryModelUri": uri,
      "mlscore:canaryModelSha256": sha,
    });
    expect(config.app.canary).toMatchObject({
      modelUriSecret: true,
      modelSha256: sha.toLowerCase(),
    });
    expect(config.app.modelUriSecret).toBe(false);
    const secret = parseConfig(
      { ...canaryDev, "mlscore:canaryModelUri": "https://models.example.com/iris-v2.onnx" },
      new Set(["mlscore:canaryModelUri"]),
    );
    expect(secret.app.canary?.modelUriSecret).toBe(true);
  });

  it("is gone when canaryModelUri is cleared, whatever the other canary keys still say", () => {
    const config = parseConfig({ ...canaryDev, "mlscore:canaryModelUri": "" });
    expect(config.app.canary).toBeUndefined();
  });

  it("still has its other keys checked while canaryModelUri is empty", () => {
    expect(configError({ ...dev, "mlscore:canaryModelVersion": "two words" }).problems).toEqual([
      'mlscore:canaryModelVersion must be empty or 1-64 letters, digits, "_", "." or "-", ' +
        'starting with a letter or digit (got "two words"); ' +
        "set it with: pulumi config set canaryModelVersion 2",
    ]);
  });

  it("reads its golden requests with the gate's own parser, naming the file", () => {
    expect(configError(canaryDev, () => '{"requests": []}').problems).toEqual([
      "mlscore:canaryGoldenRequests (service/models/iris.golden.json) requests: Too small: " +
        "expected array to have >=1 items; set it with: " +
        "pulumi config set canaryGoldenRequests service/models/iris.golden.json",
    ]);
  });
});

describe("the cluster's own Istio", () => {
  it("is used instead of the charts on an existing cluster, its gateway where it runs", () => {
    const config = parseConfig({
      ...existing,
      "mlscore:istioInstall": "false",
      "mlscore:istioGatewayNamespace": "istio-system",
    });
    expect(config.istio).toMatchObject({
      enabled: true,
      install: false,
      gatewayNamespace: "istio-system",
    });
  });
});

describe("a model URI that may hold a credential", () => {
  it.each([
    ["https://models.example.com/iris.onnx?X-Goog-Signature=abc", true],
    ["https://user:pass@models.example.com/iris.onnx", true],
    ["https://models.example.com/iris.onnx", false],
    ["gs://models-bucket/iris.onnx", false],
  ])("%s is secret: %s", (uri, secret) => {
    expect(parseConfig({ ...gke, "mlscore:modelUri": uri }).app.modelUriSecret).toBe(secret);
  });

  it("is secret when the engine holds it as one, whatever it looks like", () => {
    const uri = "https://models.example.com/iris.onnx";
    const config = parseConfig({ ...dev, "mlscore:modelUri": uri }, new Set(["mlscore:modelUri"]));
    expect(config.app.modelUriSecret).toBe(true);
  });
});

describe("loadConfig", () => {
  afterEach(() => pulumi.runtime.setAllConfig({}));

  it("reads the engine's config for the project and the gcp provider", () => {
    pulumi.runtime.setAllConfig({ ...gke, "mlscore:replicas": "4" });
    const config = loadConfig();
    expect(config.app.replicas).toBe(4);
    expect(config.cluster).toMatchObject({ target: "gke", project: "mlscore-test-project" });
  });

  it("learns from the engine which keys were set with --secret", () => {
    const uri = "https://models.example.com/iris.onnx";
    pulumi.runtime.setAllConfig({ ...dev, "mlscore:modelUri": uri }, ["mlscore:modelUri"]);
    expect(loadConfig().app.modelUriSecret).toBe(true);
    pulumi.runtime.setAllConfig({ ...dev, "mlscore:modelUri": uri });
    expect(loadConfig().app.modelUriSecret).toBe(false);
  });

  it("fails on the engine's config with the parse error", () => {
    pulumi.runtime.setAllConfig({ ...dev, "mlscore:maxNodes": "0" });
    expect(() => loadConfig()).toThrow(
      'mlscore:maxNodes must be a whole number from 1 to 100 (got "0"); ' +
        "set it with: pulumi config set maxNodes 5",
    );
  });
});
