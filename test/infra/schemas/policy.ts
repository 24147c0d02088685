import { describeObject, type KubernetesObject } from "./kubernetes";

/** The parts of a container the policy reads. */
interface Container {
  readonly name?: string;
  readonly image?: string;
  readonly ports?: ReadonlyArray<{ readonly hostPort?: number }>;
  readonly readinessProbe?: unknown;
  readonly livenessProbe?: unknown;
  readonly resources?: {
    readonly requests?: Readonly<Record<string, unknown>>;
    readonly limits?: Readonly<Record<string, unknown>>;
  };
  readonly securityContext?: SecurityContext;
}

interface SecurityContext {
  readonly privileged?: boolean;
  readonly runAsNonRoot?: boolean;
  readonly runAsUser?: number;
  readonly allowPrivilegeEscalation?: boolean;
  readonly readOnlyRootFilesystem?: boolean;
  readonly capabilities?: { readonly add?: readonly string[]; readonly drop?: readonly string[] };
  readonly seccompProfile?: { readonly type?: string };
}

/** The parts of a pod spec the policy reads. */
export interface PodSpec {
  readonly hostNetwork?: boolean;
  readonly hostPID?: boolean;
  readonly hostIPC?: boolean;
  readonly securityContext?: SecurityContext;
  readonly containers?: readonly Container[];
  readonly initContainers?: readonly Container[];
  readonly volumes?: ReadonlyArray<{ readonly name?: string; readonly hostPath?: unknown }>;
}

/** Kinds that carry a pod template at `spec.template.spec`. */
const TEMPLATED_KINDS = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"]);

/**
 * The pod spec an object runs, or undefined for objects that run no pods. Covers Pod, CronJob
 * and every kind with `spec.template`.
 */
export function podSpecOf(object: KubernetesObject): PodSpec | undefined {
  const spec = object.spec as Record<string, unknown> | undefined;
  if (object.kind === "Pod") {
    return spec as PodSpec | undefined;
  }
  if (object.kind === "CronJob") {
    const job = spec?.jobTemplate as { spec?: { template?: { spec?: PodSpec } } } | undefined;
    return job?.spec?.template?.spec;
  }
  if (TEMPLATED_KINDS.has(object.kind)) {
    return (spec?.template as { spec?: PodSpec } | undefined)?.spec;
  }
  return undefined;
}

/** `repo@sha256:<64 hex>`: the only image reference that cannot move. */
const PINNED_IMAGE = /^[^\s@]+@sha256:[0-9a-f]{64}$/;

/**
 * Every way a pod spec breaks the project's workload policy, as messages naming the container
 * and the fix. Empty when it complies. The policy is the Pod Security Standard "restricted"
 * profile plus: a read-only root filesystem, readiness and liveness probes, CPU and memory
 * requests and limits, and images pinned by digest.
 */
export function podPolicyViolations(pod: PodSpec): string[] {
  const problems: string[] = [];
  const podContext = pod.securityContext ?? {};
  if (pod.hostNetwork || pod.hostPID || pod.hostIPC) {
    problems.push("pod: host namespaces (hostNetwork, hostPID, hostIPC) are not allowed");
  }
  for (const volume of pod.volumes ?? []) {
    if (volume.hostPath !== undefined) {
      problems.push(`pod: volume "${volume.name}" is a hostPath; use emptyDir or a PVC`);
    }
  }
  if (podContext.runAsUser === 0) {
    problems.push("pod: runAsUser 0 runs as root; use a non-zero uid such as 65532");
  }
  const containers = [...(pod.initContainers ?? []), ...(pod.containers ?? [])];
  if (containers.length === 0) {
    problems.push("pod: declares no containers");
  }
  for (const container of containers) {
    problems.push(...containerViolations(container, podContext));
  }
  for (const container of pod.containers ?? []) {
    const where = `container "${container.name}"`;
    if (!container.readinessProbe) {
      problems.push(`${where}: no readinessProbe; traffic would reach it before it is ready`);
    }
    if (!container.livenessProbe) {
      problems.push(`${where}: no livenessProbe; a hung process would never be restarted`);
    }
  }
  return problems;
}

function containerViolations(container: Container, pod: SecurityContext): string[] {
  const where = `container "${container.name}"`;
  const own = container.securityContext ?? {};
  const problems: string[] = [];
  const image = container.image ?? "";
  if (!PINNED_IMAGE.test(image)) {
    problems.push(`${where}: image "${image}" is not pinned by digest; use repo@sha256:<digest>`);
  }
  if (own.privileged) {
    problems.push(`${where}: privileged is not allowed`);
  }
  if ((own.runAsNonRoot ?? pod.runAsNonRoot) !== true) {
    problems.push(`${where}: runAsNonRoot must be true (pod or container securityContext)`);
  }
  if ((own.runAsUser ?? pod.runAsUser) === 0) {
    problems.push(`${where}: runAsUser 0 runs as root; use a non-zero uid such as 65532`);
  }
  if (own.allowPrivilegeEscalation !== false) {
    problems.push(`${where}: allowPrivilegeEscalation must be false`);
  }
  if (!(own.capabilities?.drop ?? []).includes("ALL")) {
    problems.push(`${where}: capabilities must drop ALL`);
  }
  const added = (own.capabilities?.add ?? []).filter((c) => c !== "NET_BIND_SERVICE");
  if (added.length > 0) {
    problems.push(`${where}: capabilities may add only NET_BIND_SERVICE, not ${added.join(", ")}`);
  }
  const seccomp = own.seccompProfile?.type ?? pod.seccompProfile?.type;
  if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost") {
    problems.push(`${where}: seccompProfile must be RuntimeDefault or Localhost`);
  }
  if (own.readOnlyRootFilesystem !== true) {
    problems.push(
      `${where}: readOnlyRootFilesystem must be true; mount an emptyDir where it writes`,
    );
  }
  for (const port of container.ports ?? []) {
    if (port.hostPort !== undefined && port.hostPort !== 0) {
      problems.push(`${where}: hostPort ${port.hostPort} is not allowed`);
    }
  }
  for (const kind of ["requests", "limits"] as const) {
    for (const resource of ["cpu", "memory"]) {
      if (container.resources?.[kind]?.[resource] === undefined) {
        problems.push(`${where}: no ${resource} ${kind.slice(0, -1)}`);
      }
    }
  }
  return problems;
}

/**
 * Throws an Error listing every policy violation of the pods an object runs; objects that run no
 * pods pass.
 */
export function assertPodPolicy(object: KubernetesObject): void {
  const pod = podSpecOf(object);
  if (!pod) {
    return;
  }
  const problems = podPolicyViolations(pod);
  if (problems.length > 0) {
    throw new Error(
      `${describeObject(object)} breaks the workload policy:\n- ${problems.join("\n- ")}`,
    );
  }
}
