/** The app section: where the pods run, how many, their resources and who may reach them. */
import { mebibytes, MIB, MODEL_LOAD_MEMORY_FACTOR, modelLoadPeakBytes } from "../app/model-budget";
import { ipv4Cidr } from "../ipv4";
import { ISTIO_GATEWAY_NAMESPACE, ISTIO_SYSTEM_NAMESPACE } from "../platform/istio";
import { METALLB_NAMESPACE } from "../platform/metallb";
import { DNS_LABEL, PROJECT, type ConfigKey, type ConfigReader } from "./reader";

/** The app's own keys; the model and the canary are read apart ({@link readModelSettings}). */
export interface AppSection {
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
}

/** Namespaces the cluster or the add-ons own (and every kube- one). */
const RESERVED_NAMESPACES = [
  "default",
  "kube-system",
  "kube-public",
  "kube-node-lease",
  ISTIO_SYSTEM_NAMESPACE,
  ISTIO_GATEWAY_NAMESPACE,
  METALLB_NAMESPACE,
];
const CPU = /^(\d+m|\d+(\.\d{1,3})?)$/;
const CPU_WHAT = "a CPU quantity such as 250m or 1";
const MEMORY = /^(\d+)(Ki|Mi|Gi|Ti)?$/;
const MEMORY_WHAT = "a memory quantity such as 256Mi or 1Gi";
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

/** How a kind of Kubernetes quantity is written, read and shown in config errors. */
interface Quantity {
  readonly what: string;
  readonly pattern: RegExp;
  /** The amount of a quantity `pattern` matched, in one unit for comparing. */
  readonly amount: (quantity: string) => number;
  readonly examples: readonly [request: string, limit: string];
}

const CPU_QUANTITY: Quantity = {
  what: CPU_WHAT,
  pattern: CPU,
  amount: millicores,
  examples: ["1", "1"],
};
const MEMORY_QUANTITY: Quantity = {
  what: MEMORY_WHAT,
  pattern: MEMORY,
  amount: bytes,
  examples: ["256Mi", "512Mi"],
};

/** A request and its limit, the request no larger than the limit. */
function readRequestAndLimit(
  read: ConfigReader,
  requestKey: ConfigKey,
  limitKey: ConfigKey,
  { what, pattern, amount, examples }: Quantity,
): [request: string, limit: string] {
  const request = read.text(requestKey, what, pattern, examples[0]);
  const limit = read.text(limitKey, what, pattern, examples[1]);
  if (pattern.test(request) && pattern.test(limit)) {
    read.ordered(
      { key: requestKey, value: amount(request), shown: request },
      { key: limitKey, value: amount(limit), shown: limit },
      limitKey,
    );
  }
  return [request, limit];
}

function readNamespace(read: ConfigReader): string {
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
  return namespace;
}

/** The pod counts, each request no larger than its limit, and a model the limit can hold. */
function readPods(read: ConfigReader) {
  const replicas = read.integer("replicas", 1, 50, 2);
  const minReplicas = read.integer("minReplicas", 1, 50, 2);
  const maxReplicas = read.integer("maxReplicas", 1, 100, 6);
  const targetCpuUtilization = read.integer("targetCpuUtilization", 10, 95, 70);
  read.between(
    { key: "minReplicas", value: minReplicas },
    { key: "replicas", value: replicas },
    { key: "maxReplicas", value: maxReplicas },
  );
  const [cpuRequest, cpuLimit] = readRequestAndLimit(read, "cpuRequest", "cpuLimit", CPU_QUANTITY);
  const [memoryRequest, memoryLimit] = readRequestAndLimit(
    read,
    "memoryRequest",
    "memoryLimit",
    MEMORY_QUANTITY,
  );

  const modelMaxSize = read.text("modelMaxSize", MEMORY_WHAT, MEMORY, "100Mi");
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
  return {
    replicas,
    minReplicas,
    maxReplicas,
    targetCpuUtilization,
    cpuRequest,
    cpuLimit,
    memoryRequest,
    memoryLimit,
    modelMaxBytes,
  };
}

/** Who may reach the pods: the load balancer's sources and the Prometheus that scrapes them. */
function readAccess(read: ConfigReader) {
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
  const monitoringNamespace = read.text(
    "monitoringNamespace",
    "empty or a lowercase DNS label",
    DNS_LABEL,
    "gmp-system",
    true,
  );
  return { loadBalancerSourceRanges, monitoringNamespace: monitoringNamespace || undefined };
}

/** Reads the app section; problems go to `read`. */
export function readApp(read: ConfigReader): AppSection {
  return { namespace: readNamespace(read), ...readPods(read), ...readAccess(read) };
}
