import * as pulumi from "@pulumi/pulumi";
import * as runtimeConfig from "@pulumi/pulumi/runtime/config";
import { mebibytes, MIB, MODEL_LOAD_MEMORY_FACTOR, modelLoadPeakBytes } from "./app/model-budget";
import { CONFIG_KEYS, ConfigReader, PROJECT, type RawConfig } from "./config-reader";
import { ipv4, ipv4Cidr } from "./ipv4";
import { CANARY_MODEL, readModelKeys, readModelSettings, type ModelSettings } from "./model-config";
import { BUILTIN_MODEL_URI, DEFAULT_MODEL_VERSION, defaultModelName } from "../service/src/config";
import {
  readCanary,
  readFromProject,
  type CanarySettings,
  type ProjectFileReader,
  type ServedModel,
} from "./canary-config";
import { ISTIO_GATEWAY_NAMESPACE } from "./platform/istio";
import { isPinnedImage } from "./policy/workloads";

export { CONFIG_KEYS, PROJECT, type ConfigKey, type RawConfig } from "./config-reader";
export type { ModelSettings, RegistrySettings, S3StoreSettings } from "./model-config";
export type { CanarySettings, ProjectFileReader, ServedModel } from "./canary-config";

/** The application's settings, the same on every target. */
export interface AppSettings extends ModelSettings {
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
  /** Largest model the pods accept (the service's MODEL_MAX_BYTES). */
  readonly modelMaxBytes: number;
  /** IPv4 CIDRs the load balancer admits; empty: any source. */
  readonly loadBalancerSourceRanges: readonly string[];
  /** Namespace of the Prometheus that scrapes the pods; undefined: none is admitted. */
  readonly monitoringNamespace?: string;
  /** The name and version the stable model answers as (a registered model's come at `up`). */
  readonly servedModel: ServedModel;
  /** A new model beside the stable one, taking a share of traffic once it passed its gate. */
  readonly canary?: CanarySettings;
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
const VERSION = /^\d+\.\d+\.\d+$/;
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

  const canaryModel = readModelKeys(read, CANARY_MODEL);
  const model = readModelSettings(read, target, secretKeys, canaryModel.uri);
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
    name: model.modelName ?? defaultModelName(model.modelUri ?? BUILTIN_MODEL_URI),
    version: model.modelVersion ?? DEFAULT_MODEL_VERSION,
  };
  const canary = readCanary(read, canaryModel, {
    target,
    stableUri: model.modelUri ?? "",
    stableServed: servedModel,
    istioEnabled,
    secretKeys,
    s3: model.s3,
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

  checkMesh(read, {
    target,
    namespace,
    istioEnabled,
    istioInstall,
    istioGatewayNamespace,
    loadBalancerSourceRanges,
  });

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
      ...model,
      modelMaxBytes,
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
