import { readFileSync } from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as runtimeConfig from "@pulumi/pulumi/runtime/config";
import { BUILTIN_MODEL_URI, DEFAULT_MODEL_VERSION, defaultModelName } from "../service/src/config";
import { parseGoldenRequests } from "../service/src/gate/golden";
import { mebibytes, MIB, MODEL_LOAD_MEMORY_FACTOR, modelLoadPeakBytes } from "./app/model-budget";
import { blockedHostReason, carriesCredentials, redactUri } from "./app/model-store";
import { gcsBucket } from "./cluster/model-reader";
import { ipv4, ipv4Cidr } from "./ipv4";
import { ISTIO_GATEWAY_NAMESPACE } from "./platform/istio";
import { isPinnedImage } from "./policy/workloads";

/** The project name from Pulumi.yaml; project config keys are namespaced with it. */
export const PROJECT = "mlscore";

/**
 * Every project config key. Each is declared in Pulumi.yaml's `config:` block with its type and
 * default (only `target` has no default, so the CLI makes every stack set it).
 */
export const CONFIG_KEYS = [
  "target",
  "namespace",
  "replicas",
  "minReplicas",
  "maxReplicas",
  "targetCpuUtilization",
  "cpuRequest",
  "cpuLimit",
  "memoryRequest",
  "memoryLimit",
  "modelUri",
  "modelName",
  "modelVersion",
  "modelSha256",
  "modelMaxSize",
  "canaryModelUri",
  "canaryModelName",
  "canaryModelVersion",
  "canaryModelSha256",
  "canaryWeight",
  "canaryGoldenRequests",
  "istioEnabled",
  "istioVersion",
  "istioInstall",
  "istioGatewayNamespace",
  "metallbVersion",
  "metallbAddressRange",
  "metricsServerVersion",
  "loadBalancerSourceRanges",
  "tlsSecretName",
  "monitoringNamespace",
  "kindClusterName",
  "gcpProject",
  "gcpRegion",
  "gcpZone",
  "nodeCount",
  "minNodes",
  "maxNodes",
  "machineType",
  "kubeContext",
  "image",
] as const;

/** A project config key, without its `mlscore:` namespace. */
export type ConfigKey = (typeof CONFIG_KEYS)[number];

/** Raw config as the engine hands it over: namespaced keys (`mlscore:replicas`, `gcp:project`). */
export type RawConfig = Readonly<Record<string, string | undefined>>;

/** The application's settings, the same on every target. */
export interface AppSettings {
  readonly namespace: string;
  readonly replicas: number;
  readonly minReplicas: number;
  readonly maxReplicas: number;
  /** Average CPU utilisation, in percent of the request, the autoscaler aims for. */
  readonly targetCpuUtilization: number;
  readonly cpuRequest: string;
  readonly cpuLimit: string;
  readonly memoryRequest: string;
  readonly memoryLimit: string;
  /** Undefined: the image's built-in iris model. */
  readonly modelUri?: string;
  /** Undefined: the service names the model after its file. */
  readonly modelName?: string;
  /** Undefined: the service reports version 1. */
  readonly modelVersion?: string;
  /** Lowercase hex SHA-256 the model's bytes must have; undefined: not verified. */
  readonly modelSha256?: string;
  /** Largest model the pods accept (the service's MODEL_MAX_BYTES). */
  readonly modelMaxBytes: number;
  /**
   * Whether modelUri must stay secret: it was set with `--secret`, or it carries a query string
   * or user info (a presigned URL's signature, a password).
   */
  readonly modelUriSecret: boolean;
  /** IPv4 CIDRs the load balancer admits; empty: any source. */
  readonly loadBalancerSourceRanges: readonly string[];
  /** Namespace of the Prometheus that scrapes the pods; undefined: none is admitted. */
  readonly monitoringNamespace?: string;
  /** The name and version the stable model answers as. */
  readonly servedModel: ServedModel;
  /** A new model beside the stable one, taking a share of traffic once it passed its gate. */
  readonly canary?: CanarySettings;
}

/** The name and version a model answers as (v2 metadata, `model_info`, logs). */
export interface ServedModel {
  readonly name: string;
  readonly version: string;
}

/** The canary: its model, pinned as the stable one is, its share of traffic and its gate. */
export interface CanarySettings {
  readonly modelUri: string;
  /** Whether canaryModelUri must stay secret, by the rule modelUriSecret follows. */
  readonly modelUriSecret: boolean;
  /** Lowercase hex SHA-256 the canary's bytes must have; undefined: not verified. */
  readonly modelSha256?: string;
  /**
   * The name and version it answers as: canaryModelName or the stable model's name (clients
   * name the model in v2 and KServe paths), and a version that tells it from the stable one.
   */
  readonly servedModel: ServedModel;
  /** Percent of the requests without a variant header that it gets. */
  readonly weight: number;
  /** The golden requests file, relative to the project folder. */
  readonly goldenFile: string;
  /** Its text, checked by the gate's own parser. */
  readonly golden: string;
}

/** Istio, installed from its Helm charts when enabled, or the cluster's own. */
export interface IstioSettings {
  readonly enabled: boolean;
  readonly version: string;
  /** False: the cluster already runs Istio; the stack installs none and owns no gateway. */
  readonly install: boolean;
  /** Namespace of the ingress gateway pods the Gateway selects. */
  readonly gatewayNamespace: string;
  /** kubernetes.io/tls Secret in the gateway's namespace for HTTPS; undefined: HTTP only. */
  readonly tlsSecretName?: string;
}

/** A local Kind cluster made by `npm run kind:up`, with MetalLB for LoadBalancer Services. */
export interface KindSettings {
  readonly target: "kind";
  readonly clusterName: string;
  readonly metallbVersion: string;
  /** Undefined: derived from the `kind` Docker network's subnet. */
  readonly metallbAddressRange?: string;
  /** Version of the metrics-server chart, which Kind lacks and the autoscalers need. */
  readonly metricsServerVersion: string;
}

/** A GKE cluster the stack creates. */
export interface GkeSettings {
  readonly target: "gke";
  readonly project: string;
  readonly region: string;
  readonly zone: string;
  readonly nodeCount: number;
  readonly minNodes: number;
  readonly maxNodes: number;
  readonly machineType: string;
}

/** Any existing cluster, reached through a kubeconfig context, running an image built elsewhere. */
export interface ExistingClusterSettings {
  readonly target: "cluster";
  /** Undefined: the kubeconfig's current context. */
  readonly kubeContext?: string;
  /** The service's image, pinned by digest. */
  readonly image: string;
}

/** The targets, by the value of `target`. */
export type ClusterSettings = KindSettings | GkeSettings | ExistingClusterSettings;

/** The whole, validated configuration of one stack. */
export interface StackConfig {
  readonly cluster: ClusterSettings;
  readonly app: AppSettings;
  readonly istio: IstioSettings;
}

/**
 * Config the program cannot run with. One line per problem, each naming the key and the command
 * that fixes it. A RunError, so the CLI shows the message without a stack trace.
 */
export class ConfigError extends pulumi.RunError {
  constructor(readonly problems: readonly string[]) {
    super(problems.join("\n"));
    this.name = "ConfigError";
  }
}

/** How the config errors show a pinned image. */
const IMAGE_EXAMPLE = "registry.example.com/mlscore@sha256:<64 hex digits>";

/** Namespaces and prefixes the cluster or the add-ons own. */
const RESERVED_NAMESPACES = [
  "default",
  "kube-system",
  "kube-public",
  "kube-node-lease",
  "istio-system",
  "istio-ingress",
  "metallb-system",
];
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN =
  /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SHA256 = /^[0-9a-fA-F]{64}$/;
const VERSION = /^\d+\.\d+\.\d+$/;
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** A kubeconfig context name: anything without whitespace (kind-x, gke_p_z_c, arn:aws:eks:...). */
const KUBE_CONTEXT = /^\S{1,253}$/;
const GCP_PROJECT = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
const GCP_REGION = /^[a-z]+-[a-z]+[0-9]+$/;
const MACHINE_TYPE = /^[a-z][a-z0-9]*-[a-z0-9-]*[a-z0-9]$/;
const CPU = /^(\d+m|\d+(\.\d{1,3})?)$/;
const MEMORY = /^(\d+)(Ki|Mi|Gi|Ti)?$/;
const MEMORY_UNITS: Record<string, number> = {
  "": 1,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
};

/** Reads project keys, collecting every problem instead of stopping at the first. */
class ConfigReader {
  readonly problems: string[] = [];
  /** Keys already reported: a check that compares them would compare a stand-in value. */
  private readonly failed = new Set<ConfigKey>();

  constructor(private readonly raw: RawConfig) {}

  /** The raw value, or undefined (with a problem recorded) when the key is not set at all. */
  value(key: ConfigKey, example: string): string | undefined {
    const value = this.raw[`${PROJECT}:${key}`];
    if (value === undefined) {
      this.fail(key, "is not set (Pulumi.yaml declares its default)", example);
    }
    return value;
  }

  /** Whether `key` is already reported: its value is then only a stand-in. */
  reported(key: ConfigKey): boolean {
    return this.failed.has(key);
  }

  fail(key: ConfigKey, problem: string, example: string): void {
    this.failed.add(key);
    this.problems.push(
      `${PROJECT}:${key} ${problem}; set it with: pulumi config set ${key} ${example}`,
    );
  }

  /** A string that must match `pattern`; empty is allowed only when `optional`. */
  text(key: ConfigKey, what: string, pattern: RegExp, example: string, optional = false): string {
    const value = this.value(key, example);
    if (value === undefined || (optional && value === "")) {
      return "";
    }
    if (!pattern.test(value)) {
      this.fail(key, `must be ${what} (got "${value}")`, example);
    }
    return value;
  }

  integer(key: ConfigKey, min: number, max: number, example: number): number {
    const value = this.value(key, String(example));
    if (value === undefined) {
      return example;
    }
    const parsed = Number(value);
    if (!/^\d+$/.test(value) || parsed < min || parsed > max) {
      this.fail(
        key,
        `must be a whole number from ${min} to ${max} (got "${value}")`,
        String(example),
      );
      return example;
    }
    return parsed;
  }

  boolean(key: ConfigKey, example: boolean): boolean {
    const value = this.value(key, String(example));
    if (value === "true" || value === "false") {
      return value === "true";
    }
    if (value !== undefined) {
      this.fail(key, `must be true or false (got "${value}")`, String(example));
    }
    return example;
  }

  /**
   * `small` must not exceed `large`; the fix raises or lowers `fixKey` to the other's value.
   * Skipped when either key is already reported, whose value here is only a stand-in.
   */
  ordered(
    small: { key: ConfigKey; value: number; shown?: string },
    large: { key: ConfigKey; value: number; shown?: string },
    fixKey: ConfigKey,
  ): void {
    if (this.failed.has(small.key) || this.failed.has(large.key)) {
      return;
    }
    if (small.value > large.value) {
      const smallShown = small.shown ?? String(small.value);
      const largeShown = large.shown ?? String(large.value);
      this.problems.push(
        `${PROJECT}:${small.key} (${smallShown}) must not exceed ${PROJECT}:${large.key} (${largeShown}); ` +
          `set it with: pulumi config set ${fixKey} ${fixKey === small.key ? largeShown : smallShown}`,
      );
    }
  }
}

/** Millicores of a Kubernetes CPU quantity already matched by {@link CPU}. */
function millicores(quantity: string): number {
  return quantity.endsWith("m")
    ? Number(quantity.slice(0, -1))
    : Math.round(Number(quantity) * 1000);
}

/** Bytes of a Kubernetes memory quantity already matched by {@link MEMORY}. */
function bytes(quantity: string): number {
  const match = MEMORY.exec(quantity);
  return match ? Number(match[1]) * MEMORY_UNITS[match[2] ?? ""] : NaN;
}

/** Whether `text` is a MetalLB address range: `first-last` (first <= last) or an IPv4 CIDR. */
export function isAddressRange(text: string): boolean {
  const cidr = /^([^/]+)\/(\d{1,2})$/.exec(text);
  if (cidr) {
    return ipv4(cidr[1]) !== undefined && Number(cidr[2]) <= 32;
  }
  const [first, last, ...rest] = text.split("-");
  const from = ipv4(first ?? "");
  const to = ipv4(last ?? "");
  return rest.length === 0 && from !== undefined && to !== undefined && from <= to;
}

/** Whether the service can load a model from this URI (empty means the built-in model). */
function isModelUri(uri: string): boolean {
  return (
    uri === "identity" ||
    /^https:\/\/[^/\s]+\/\S*$/.test(uri) ||
    /^gs:\/\/[a-z0-9][a-z0-9._-]{1,221}\/\S+$/.test(uri) ||
    /^\/\S+$/.test(uri)
  );
}

/** The config keys of one model the pods serve, and what an empty URI means for it. */
interface ModelKeys {
  readonly uri: ConfigKey;
  readonly name: ConfigKey;
  readonly version: ConfigKey;
  readonly sha256: ConfigKey;
  readonly empty: string;
}

const STABLE_MODEL: ModelKeys = {
  uri: "modelUri",
  name: "modelName",
  version: "modelVersion",
  sha256: "modelSha256",
  empty: "the built-in iris model",
};
const CANARY_MODEL: ModelKeys = {
  uri: "canaryModelUri",
  name: "canaryModelName",
  version: "canaryModelVersion",
  sha256: "canaryModelSha256",
  empty: "no canary",
};

/**
 * One model's URI, name, version and digest as given, checked by the same rules for the stable
 * model and the canary: a URI the service loads and the pods can reach, names the service takes.
 */
function readModel(
  read: ConfigReader,
  keys: ModelKeys,
  target: ClusterSettings["target"],
): { uri: string; name: string; version: string; sha256: string } {
  const uri = read.value(keys.uri, "gs://my-bucket/model.onnx") ?? "";
  if (uri !== "" && !isModelUri(uri)) {
    read.fail(
      keys.uri,
      `must be empty (${keys.empty}), identity, an absolute path inside the image, ` +
        `an https:// URL or a gs://bucket/object (got "${redactUri(uri)}")`,
      "gs://my-bucket/model.onnx",
    );
  }
  const blockedHost = uri.startsWith("https://") ? blockedHostReason(uri) : undefined;
  if (blockedHost !== undefined) {
    read.fail(
      keys.uri,
      `cannot be fetched by the pods: ${blockedHost}, and their egress policy opens HTTPS to ` +
        "public addresses only; serve the model from a public https:// host or a gs:// bucket",
      "gs://my-bucket/model.onnx",
    );
  }
  if (target === "kind" && uri.startsWith("gs://")) {
    read.fail(
      keys.uri,
      "is a gs:// object, which a Kind cluster has no Google credentials to read; use an " +
        "https:// URL (a signed URL, stored with --secret) or target gke",
      "--secret https://storage.googleapis.com/my-bucket/model.onnx?X-Goog-Signature=...",
    );
  }
  const name = read.text(
    keys.name,
    'empty or 1-64 letters, digits, "_", "." or "-", starting with a letter or digit',
    MODEL_NAME,
    "iris",
    true,
  );
  const version = read.text(
    keys.version,
    'empty or 1-64 letters, digits, "_", "." or "-", starting with a letter or digit',
    MODEL_NAME,
    "2",
    true,
  );
  const sha256 = read.text(
    keys.sha256,
    "empty or the model file's SHA-256 as 64 hexadecimal characters",
    SHA256,
    "$(sha256sum model.onnx | cut -c1-64)",
    true,
  );
  return { uri, name, version, sha256: sha256.toLowerCase() };
}

/**
 * The cluster target's keys: an optional kubeconfig context and a required image pinned by
 * digest. kind and gke build the image and choose the context themselves, so there both must
 * stay empty.
 */
function readExistingCluster(
  read: ConfigReader,
  target: ClusterSettings["target"],
): { kubeContext: string; image: string } {
  const kubeContext = read.text(
    "kubeContext",
    "a kubeconfig context name (no spaces)",
    KUBE_CONTEXT,
    "my-context",
    true,
  );
  const image = read.value("image", IMAGE_EXAMPLE) ?? "";
  if (target === "cluster" && !isPinnedImage(image)) {
    const problem =
      image === ""
        ? `is required when ${PROJECT}:target is cluster`
        : `must be pinned by digest (got "${image}")`;
    read.fail(
      "image",
      `${problem}: the cluster target builds no image, so give one built elsewhere as ` +
        "repository@sha256:<64 hex digits>",
      IMAGE_EXAMPLE,
    );
  }
  if (target !== "cluster") {
    for (const [key, value] of [
      ["kubeContext", kubeContext],
      ["image", image],
    ] as const) {
      if (value !== "") {
        read.problems.push(
          `${PROJECT}:${key} applies only when ${PROJECT}:target is cluster (${target} builds ` +
            `the image from service/ and chooses its own context); remove it with: ` +
            `pulumi config rm ${key}`,
        );
      }
    }
  }
  return { kubeContext, image };
}

/** Reads a file of the project by its path relative to the project folder; throws when it cannot. */
export type ProjectFileReader = (relativePath: string) => string;

/** The project folder, where Pulumi.yaml is: config paths are relative to it. */
const PROJECT_DIR = path.resolve(__dirname, "..");

function readFromProject(relativePath: string): string {
  return readFileSync(path.join(PROJECT_DIR, relativePath), "utf8");
}

/** A path inside the project folder: relative, without `..` segments. */
const PROJECT_PATH = /^(?!\/)(?!(.*\/)?\.\.(\/|$))[\w./-]{1,200}$/;
const GOLDEN_EXAMPLE = "service/models/iris.golden.json";

/** What {@link readCanary} checks the canary against. */
interface CanaryContext {
  readonly target: ClusterSettings["target"];
  readonly stableUri: string;
  readonly stableServed: ServedModel;
  readonly istioEnabled: boolean;
  readonly secretKeys: ReadonlySet<string>;
  readonly readProjectFile: ProjectFileReader;
}

/**
 * The canary, when canaryModelUri is set: its model, checked by the stable model's rules, its
 * share of traffic and its golden requests. The other canary keys wait for the next canary while
 * canaryModelUri is empty, so clearing it alone rolls back.
 */
function readCanary(read: ConfigReader, context: CanaryContext): CanarySettings | undefined {
  const model = readModel(read, CANARY_MODEL, context.target);
  const weight = read.integer("canaryWeight", 0, 100, 10);
  const goldenFile = read.text(
    "canaryGoldenRequests",
    "empty or a path inside the project folder, such as service/models/iris.golden.json",
    PROJECT_PATH,
    GOLDEN_EXAMPLE,
    true,
  );
  if (model.uri === "") {
    return undefined;
  }
  if (!context.istioEnabled) {
    read.problems.push(
      `${PROJECT}:canaryModelUri needs ${PROJECT}:istioEnabled true: Istio's route splits the ` +
        "traffic between the stable model and the canary, and without it no request could " +
        "reach the canary; set it with: pulumi config set istioEnabled true",
    );
  }
  let golden = "";
  if (goldenFile === "") {
    read.fail(
      "canaryGoldenRequests",
      "is required with a canary: the gate checks the canary's answers to these requests " +
        "before it gets any traffic",
      GOLDEN_EXAMPLE,
    );
  } else if (PROJECT_PATH.test(goldenFile)) {
    try {
      golden = context.readProjectFile(goldenFile);
      parseGoldenRequests(golden);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const problem = code ? `cannot be read (${code})` : (error as Error).message;
      read.fail("canaryGoldenRequests", `(${goldenFile}) ${problem}`, GOLDEN_EXAMPLE);
    }
  }
  const servedModel: ServedModel = {
    name: model.name || context.stableServed.name,
    version: model.version || DEFAULT_MODEL_VERSION,
  };
  if (
    servedModel.name === context.stableServed.name &&
    servedModel.version === context.stableServed.version
  ) {
    const next = /^\d+$/.test(servedModel.version) ? String(Number(servedModel.version) + 1) : "2";
    read.fail(
      "canaryModelVersion",
      `must differ from the stable model's version ("${servedModel.version}") while both ` +
        `answer as "${servedModel.name}": clients, metrics and the smoke test tell them apart by it`,
      next,
    );
  }
  const buckets = [gcsBucket(context.stableUri), gcsBucket(model.uri)];
  if (buckets[0] !== undefined && buckets[1] !== undefined && buckets[0] !== buckets[1]) {
    read.fail(
      "canaryModelUri",
      `is in bucket "${buckets[1]}" and the stable model in "${buckets[0]}": the pods' Google ` +
        "identity may read one bucket; put the canary beside the stable model",
      `gs://${buckets[0]}/model-v2.onnx`,
    );
  }
  return {
    modelUri: model.uri,
    modelUriSecret:
      context.secretKeys.has(`${PROJECT}:canaryModelUri`) || carriesCredentials(model.uri),
    modelSha256: model.sha256 || undefined,
    servedModel,
    weight,
    goldenFile,
    golden,
  };
}

/** What {@link checkMesh} checks. */
interface MeshContext {
  readonly target: ClusterSettings["target"];
  readonly namespace: string;
  readonly istioEnabled: boolean;
  readonly istioInstall: boolean;
  readonly istioGatewayNamespace: string;
  readonly loadBalancerSourceRanges: readonly string[];
}

/**
 * The cluster's own Istio (istioInstall false) exists only on a cluster made elsewhere, and then
 * its gateway and its load balancer are not the stack's: only its namespace may be named.
 */
function checkMesh(read: ConfigReader, mesh: MeshContext): void {
  if (!mesh.istioInstall && !mesh.istioEnabled) {
    read.problems.push(
      `${PROJECT}:istioInstall false says which Istio to use and needs ${PROJECT}:istioEnabled ` +
        "true; remove it with: pulumi config rm istioInstall",
    );
  } else if (!mesh.istioInstall && mesh.target !== "cluster") {
    read.problems.push(
      `${PROJECT}:istioInstall false applies only when ${PROJECT}:target is cluster: ` +
        `${mesh.target} makes a cluster that runs no Istio of its own; ` +
        "remove it with: pulumi config rm istioInstall",
    );
  } else if (!mesh.istioInstall && mesh.loadBalancerSourceRanges.length > 0) {
    read.problems.push(
      `${PROJECT}:loadBalancerSourceRanges has no load balancer to apply to: the cluster's own ` +
        "Istio gateway and its Service are not the stack's; " +
        "remove it with: pulumi config rm loadBalancerSourceRanges",
    );
  }
  if (mesh.istioGatewayNamespace !== ISTIO_GATEWAY_NAMESPACE && mesh.istioInstall) {
    read.problems.push(
      `${PROJECT}:istioGatewayNamespace applies only to the cluster's own Istio ` +
        `(${PROJECT}:istioInstall false); the stack installs its gateway in ` +
        `${ISTIO_GATEWAY_NAMESPACE}; remove it with: pulumi config rm istioGatewayNamespace`,
    );
  }
  if (mesh.namespace === mesh.istioGatewayNamespace && !read.reported("namespace")) {
    read.fail(
      "namespace",
      `must not be "${mesh.namespace}", the Istio ingress gateway's namespace`,
      "mlscore",
    );
  }
}

/**
 * Validates raw config (namespaced keys, values as the CLI passes them: strings) into a
 * {@link StackConfig}. Throws one {@link ConfigError} listing every problem. Files the config
 * names (the canary's golden requests) are read with `readProjectFile`.
 */
export function parseConfig(
  raw: RawConfig,
  secretKeys: ReadonlySet<string> = new Set(),
  readProjectFile: ProjectFileReader = readFromProject,
): StackConfig {
  const read = new ConfigReader(raw);

  const targetValue = raw[`${PROJECT}:target`];
  let target: ClusterSettings["target"] = "kind";
  if (targetValue === undefined || targetValue === "") {
    read.fail(
      "target",
      "is required: kind (a local Kind cluster), gke (Google Cloud) or cluster (an existing cluster)",
      "kind",
    );
  } else if (targetValue === "kind" || targetValue === "gke" || targetValue === "cluster") {
    target = targetValue;
  } else {
    read.fail("target", `must be kind, gke or cluster (got "${targetValue}")`, "kind");
  }

  const namespace = read.text(
    "namespace",
    "a lowercase DNS label of at most 63 characters",
    DNS_LABEL,
    "mlscore",
  );
  if (namespace.length > 63) {
    read.fail("namespace", `must be at most 63 characters (got ${namespace.length})`, "mlscore");
  } else if (RESERVED_NAMESPACES.includes(namespace) || namespace.startsWith("kube-")) {
    read.fail(
      "namespace",
      `must not be "${namespace}", which the cluster or an add-on owns`,
      "mlscore",
    );
  }

  const replicas = read.integer("replicas", 1, 50, 2);
  const minReplicas = read.integer("minReplicas", 1, 50, 2);
  const maxReplicas = read.integer("maxReplicas", 1, 100, 6);
  const targetCpuUtilization = read.integer("targetCpuUtilization", 10, 95, 70);
  read.ordered(
    { key: "minReplicas", value: minReplicas },
    { key: "replicas", value: replicas },
    "minReplicas",
  );
  read.ordered(
    { key: "replicas", value: replicas },
    { key: "maxReplicas", value: maxReplicas },
    "maxReplicas",
  );

  const cpuWhat = "a CPU quantity such as 250m or 1";
  const cpuRequest = read.text("cpuRequest", cpuWhat, CPU, "1");
  const cpuLimit = read.text("cpuLimit", cpuWhat, CPU, "1");
  if (CPU.test(cpuRequest) && CPU.test(cpuLimit)) {
    read.ordered(
      { key: "cpuRequest", value: millicores(cpuRequest), shown: cpuRequest },
      { key: "cpuLimit", value: millicores(cpuLimit), shown: cpuLimit },
      "cpuLimit",
    );
  }
  const memoryWhat = "a memory quantity such as 256Mi or 1Gi";
  const memoryRequest = read.text("memoryRequest", memoryWhat, MEMORY, "256Mi");
  const memoryLimit = read.text("memoryLimit", memoryWhat, MEMORY, "512Mi");
  if (MEMORY.test(memoryRequest) && MEMORY.test(memoryLimit)) {
    read.ordered(
      { key: "memoryRequest", value: bytes(memoryRequest), shown: memoryRequest },
      { key: "memoryLimit", value: bytes(memoryLimit), shown: memoryLimit },
      "memoryLimit",
    );
  }

  const {
    uri: modelUri,
    name: modelName,
    version: modelVersion,
    sha256: modelSha256,
  } = readModel(read, STABLE_MODEL, target);
  const modelMaxSize = read.text("modelMaxSize", memoryWhat, MEMORY, "100Mi");
  const modelMaxBytes = bytes(modelMaxSize);
  if (MEMORY.test(modelMaxSize) && modelMaxBytes < MIB) {
    read.fail("modelMaxSize", `must be at least 1Mi (got "${modelMaxSize}")`, "100Mi");
  }
  if (MEMORY.test(modelMaxSize) && MEMORY.test(memoryLimit)) {
    const peak = mebibytes(modelLoadPeakBytes(modelMaxBytes));
    if (bytes(memoryLimit) < modelLoadPeakBytes(modelMaxBytes)) {
      read.fail(
        "memoryLimit",
        `(${memoryLimit}) cannot hold a model of ${PROJECT}:modelMaxSize (${modelMaxSize}): ` +
          `loading one peaks at about ${peak} (${mebibytes(modelLoadPeakBytes(0))} at rest ` +
          `plus ${MODEL_LOAD_MEMORY_FACTOR} × the model); lower modelMaxSize or raise the limit`,
        peak,
      );
    }
  }

  const istioEnabled = read.boolean("istioEnabled", true);
  const servedModel: ServedModel = {
    name: modelName || defaultModelName(modelUri || BUILTIN_MODEL_URI),
    version: modelVersion || DEFAULT_MODEL_VERSION,
  };
  const canary = readCanary(read, {
    target,
    stableUri: modelUri,
    stableServed: servedModel,
    istioEnabled,
    secretKeys,
    readProjectFile,
  });
  const istioVersion = read.text(
    "istioVersion",
    "a release version such as 1.31.1",
    VERSION,
    "1.31.1",
  );
  const istioInstall = read.boolean("istioInstall", true);
  const istioGatewayNamespace = read.text(
    "istioGatewayNamespace",
    "a lowercase DNS label",
    DNS_LABEL,
    ISTIO_GATEWAY_NAMESPACE,
  );
  const metallbVersion = read.text(
    "metallbVersion",
    "a release version such as 0.14.9",
    VERSION,
    "0.14.9",
  );
  const metallbAddressRange =
    read.value("metallbAddressRange", "172.18.255.200-172.18.255.250") ?? "";
  if (metallbAddressRange !== "" && !isAddressRange(metallbAddressRange)) {
    read.fail(
      "metallbAddressRange",
      "must be empty (derived from the kind Docker network), an IPv4 range first-last " +
        `or an IPv4 CIDR (got "${metallbAddressRange}")`,
      "172.18.255.200-172.18.255.250",
    );
  }
  const metricsServerVersion = read.text(
    "metricsServerVersion",
    "a release version such as 3.13.1",
    VERSION,
    "3.13.1",
  );
  const rangesText = read.value("loadBalancerSourceRanges", "203.0.113.0/24") ?? "";
  const loadBalancerSourceRanges = rangesText === "" ? [] : rangesText.split(",");
  const badRange = loadBalancerSourceRanges.find((range) => ipv4Cidr(range) === undefined);
  if (badRange !== undefined) {
    read.fail(
      "loadBalancerSourceRanges",
      "must be empty (any source) or IPv4 CIDRs separated by commas, such as " +
        `203.0.113.0/24,198.51.100.7/32 (got "${badRange}")`,
      "203.0.113.0/24",
    );
  }
  const tlsSecretName = read.text(
    "tlsSecretName",
    "empty or the name of a kubernetes.io/tls Secret (a lowercase DNS subdomain)",
    DNS_SUBDOMAIN,
    "mlscore-tls",
    true,
  );
  const monitoringNamespace = read.text(
    "monitoringNamespace",
    "empty or a lowercase DNS label",
    DNS_LABEL,
    "gmp-system",
    true,
  );
  const kindClusterName = read.text(
    "kindClusterName",
    "a lowercase DNS label",
    DNS_LABEL,
    "mlscore",
  );

  const ownProject = read.value("gcpProject", "my-project-id") ?? "";
  const providerProject = raw["gcp:project"] ?? "";
  const projectWhat = "a Google Cloud project ID: 6-30 lowercase letters, digits or hyphens";
  if (ownProject !== "" && !GCP_PROJECT.test(ownProject)) {
    read.fail("gcpProject", `must be ${projectWhat} (got "${ownProject}")`, "my-project-id");
  }
  if (ownProject !== "" && providerProject !== "" && ownProject !== providerProject) {
    read.problems.push(
      `${PROJECT}:gcpProject ("${ownProject}") and gcp:project ("${providerProject}") name ` +
        `different projects; remove one with: pulumi config rm gcpProject`,
    );
  }
  const project = ownProject || providerProject;
  const region = read.text(
    "gcpRegion",
    "a Google Cloud region such as us-central1",
    GCP_REGION,
    "us-central1",
  );
  const providerRegion = raw["gcp:region"] ?? "";
  if (providerRegion !== "" && providerRegion !== region) {
    read.problems.push(
      `gcp:region ("${providerRegion}") differs from ${PROJECT}:gcpRegion ("${region}"), which ` +
        `this program uses; set it with: pulumi config set gcpRegion ${providerRegion}`,
    );
  }
  const zone = read.value("gcpZone", `${region}-a`) ?? "";
  // A zone is its region plus a letter; checked only once the region itself is valid.
  if (GCP_REGION.test(region) && !new RegExp(`^${region}-[a-z]$`).test(zone)) {
    read.fail(
      "gcpZone",
      `must be a zone of ${PROJECT}:gcpRegion ${region}, such as ${region}-a (got "${zone}")`,
      `${region}-a`,
    );
  }
  const nodeCount = read.integer("nodeCount", 1, 100, 3);
  const minNodes = read.integer("minNodes", 0, 100, 1);
  const maxNodes = read.integer("maxNodes", 1, 100, 5);
  read.ordered(
    { key: "minNodes", value: minNodes },
    { key: "nodeCount", value: nodeCount },
    "minNodes",
  );
  read.ordered(
    { key: "nodeCount", value: nodeCount },
    { key: "maxNodes", value: maxNodes },
    "maxNodes",
  );
  const machineType = read.text(
    "machineType",
    "a Compute Engine machine type such as e2-standard-2",
    MACHINE_TYPE,
    "e2-standard-2",
  );

  const { kubeContext, image } = readExistingCluster(read, target);

  if (target === "gke" && project === "") {
    read.problems.push(
      `${PROJECT}:gcpProject (or gcp:project) is required when ${PROJECT}:target is gke; ` +
        `set it with: pulumi config set gcp:project my-project-id`,
    );
  }
  if (target !== "kind" && metallbAddressRange !== "") {
    read.problems.push(
      `${PROJECT}:metallbAddressRange applies only when ${PROJECT}:target is kind (MetalLB is ` +
        `installed nowhere else); remove it with: pulumi config rm metallbAddressRange`,
    );
  }
  checkMesh(read, {
    target,
    namespace,
    istioEnabled,
    istioInstall,
    istioGatewayNamespace,
    loadBalancerSourceRanges,
  });
  if (tlsSecretName !== "" && !istioEnabled) {
    read.problems.push(
      `${PROJECT}:tlsSecretName needs ${PROJECT}:istioEnabled true: the gateway terminates TLS; ` +
        `remove it with: pulumi config rm tlsSecretName`,
    );
  }
  if (target === "gke") {
    // The pods spread one per node until minReplicas nodes exist, and the autoscaler adds no more
    // than maxNodes: more replicas than that would wait for a node forever.
    read.ordered(
      { key: "minReplicas", value: minReplicas },
      { key: "maxNodes", value: maxNodes },
      "maxNodes",
    );
  }
  if (target !== "gke" && ownProject !== "") {
    read.problems.push(
      `${PROJECT}:gcpProject applies only when ${PROJECT}:target is gke; ` +
        `remove it with: pulumi config rm gcpProject`,
    );
  }

  if (read.problems.length > 0) {
    throw new ConfigError(read.problems);
  }

  const clusters: { [T in ClusterSettings["target"]]: () => ClusterSettings } = {
    kind: () => ({
      target: "kind",
      clusterName: kindClusterName,
      metallbVersion,
      metallbAddressRange: metallbAddressRange || undefined,
      metricsServerVersion,
    }),
    gke: () => ({
      target: "gke",
      project,
      region,
      zone,
      nodeCount,
      minNodes,
      maxNodes,
      machineType,
    }),
    cluster: () => ({ target: "cluster", kubeContext: kubeContext || undefined, image }),
  };
  const cluster = clusters[target]();
  return {
    cluster,
    app: {
      namespace,
      replicas,
      minReplicas,
      maxReplicas,
      targetCpuUtilization,
      cpuRequest,
      cpuLimit,
      memoryRequest,
      memoryLimit,
      modelUri: modelUri || undefined,
      modelName: modelName || undefined,
      modelVersion: modelVersion || undefined,
      modelSha256: modelSha256 || undefined,
      modelMaxBytes,
      modelUriSecret: secretKeys.has(`${PROJECT}:modelUri`) || carriesCredentials(modelUri),
      loadBalancerSourceRanges,
      monitoringNamespace: monitoringNamespace || undefined,
      servedModel,
      canary,
    },
    istio: {
      enabled: istioEnabled,
      version: istioVersion,
      install: istioInstall,
      gatewayNamespace: istioGatewayNamespace,
      tlsSecretName: tlsSecretName || undefined,
    },
  };
}

/**
 * Whether the engine holds a config key as a secret (`pulumi config set --secret`). The SDK marks
 * this function internal and declares no type for it; the version is pinned and the infra tests
 * prove it answers for a secret modelUri.
 */
function isConfigSecret(key: string): boolean {
  const sdk = runtimeConfig as unknown as { isConfigSecret?: (key: string) => boolean };
  if (typeof sdk.isConfigSecret !== "function") {
    throw new Error("@pulumi/pulumi no longer has runtime isConfigSecret; update infra/config.ts");
  }
  return sdk.isConfigSecret(key);
}

/**
 * Reads the stack's config from the engine once and validates it. Call it at program run, never
 * at import time.
 */
export function loadConfig(): StackConfig {
  const project = new pulumi.Config(PROJECT);
  const gcp = new pulumi.Config("gcp");
  const raw: Record<string, string | undefined> = {
    "gcp:project": gcp.get("project"),
    "gcp:region": gcp.get("region"),
  };
  for (const key of CONFIG_KEYS) {
    raw[`${PROJECT}:${key}`] = project.get(key);
  }
  return parseConfig(raw, new Set(Object.keys(raw).filter(isConfigSecret)));
}
