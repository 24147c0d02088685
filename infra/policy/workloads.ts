/**
 * What the pod policies read from a Kubernetes object's inputs, and every way a pod spec breaks
 * them. Plain functions over plain JSON, so the policy pack, its tests and the infra tests that
 * check the program's objects share one definition of the workload policy.
 */

/** The parts of a security context the policies read. */
export interface SecurityContext {
  readonly privileged?: boolean;
  readonly runAsNonRoot?: boolean;
  readonly runAsUser?: number;
  readonly allowPrivilegeEscalation?: boolean;
  readonly readOnlyRootFilesystem?: boolean;
  readonly capabilities?: { readonly add?: readonly string[]; readonly drop?: readonly string[] };
  readonly seccompProfile?: { readonly type?: string };
}

/** The parts of a container the policies read. */
export interface Container {
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

/** The parts of a pod spec the policies read. */
export interface PodSpec {
  /** Always (the default) for pods that serve until stopped; Never or OnFailure run to completion. */
  readonly restartPolicy?: string;
  readonly hostNetwork?: boolean;
  readonly hostPID?: boolean;
  readonly hostIPC?: boolean;
  readonly securityContext?: SecurityContext;
  readonly containers?: readonly Container[];
  readonly initContainers?: readonly Container[];
  readonly volumes?: ReadonlyArray<{ readonly name?: string; readonly hostPath?: unknown }>;
}

/** Workload types whose pod template sits at `spec.template.spec`. */
const TEMPLATED_TYPES = new Set([
  "kubernetes:apps/v1:Deployment",
  "kubernetes:apps/v1:StatefulSet",
  "kubernetes:apps/v1:DaemonSet",
  "kubernetes:apps/v1:ReplicaSet",
  "kubernetes:batch/v1:Job",
]);

/** Every resource type that runs pods. */
export const POD_TYPES: ReadonlySet<string> = new Set([
  ...TEMPLATED_TYPES,
  "kubernetes:core/v1:Pod",
  "kubernetes:batch/v1:CronJob",
]);

type Props = Readonly<Record<string, unknown>>;

/** The value at a dotted path of a resource's props (`spec.template.spec`), or undefined. */
export function valueAt(value: unknown, path: string): unknown {
  return path
    .split(".")
    .reduce<unknown>(
      (current, key) =>
        typeof current === "object" && current !== null
          ? (current as Record<string, unknown>)[key]
          : undefined,
      value,
    );
}

/** The pod spec a resource runs, or undefined when its type runs no pods. */
export function podSpecOf(type: string, props: Props): PodSpec | undefined {
  const spec = props.spec;
  if (type === "kubernetes:core/v1:Pod") {
    return spec ?? {};
  }
  if (type === "kubernetes:batch/v1:CronJob") {
    return valueAt(spec, "jobTemplate.spec.template.spec") ?? {};
  }
  if (TEMPLATED_TYPES.has(type)) {
    return valueAt(spec, "template.spec") ?? {};
  }
  return undefined;
}

function allContainers(pod: PodSpec): Container[] {
  return [...(pod.initContainers ?? []), ...(pod.containers ?? [])];
}

const where = (container: Container) => `container "${container.name ?? "?"}"`;

/**
 * Ways a pod breaks the Pod Security Standard "restricted" profile (plus the baseline rules it
 * includes: no host namespaces, hostPath volumes, host ports or privileged containers).
 */
export function restrictedViolations(pod: PodSpec): string[] {
  const problems: string[] = [];
  const podContext = pod.securityContext ?? {};
  for (const key of ["hostNetwork", "hostPID", "hostIPC"] as const) {
    if (pod[key]) {
      problems.push(`pod: ${key} shares the node's namespace; remove it`);
    }
  }
  for (const volume of pod.volumes ?? []) {
    if (volume.hostPath !== undefined) {
      problems.push(`pod: volume "${volume.name}" is a hostPath; use an emptyDir or a PVC`);
    }
  }
  // The profile forbids uid 0 at the pod level even when every container overrides it, since a
  // container added later would inherit it.
  if (podContext.runAsUser === 0) {
    problems.push("pod: runAsUser 0 is root; use a non-zero uid such as 65532");
  }
  for (const container of allContainers(pod)) {
    const own = container.securityContext ?? {};
    const at = where(container);
    if (own.privileged) {
      problems.push(`${at}: privileged must not be true`);
    }
    if ((own.runAsNonRoot ?? podContext.runAsNonRoot) !== true) {
      problems.push(`${at}: runAsNonRoot must be true (pod or container securityContext)`);
    }
    if ((own.runAsUser ?? podContext.runAsUser) === 0) {
      problems.push(`${at}: runAsUser 0 is root; use a non-zero uid such as 65532`);
    }
    if (own.allowPrivilegeEscalation !== false) {
      problems.push(`${at}: allowPrivilegeEscalation must be false`);
    }
    if (!(own.capabilities?.drop ?? []).includes("ALL")) {
      problems.push(`${at}: capabilities.drop must include ALL`);
    }
    const added = (own.capabilities?.add ?? []).filter((c) => c !== "NET_BIND_SERVICE");
    if (added.length > 0) {
      problems.push(
        `${at}: capabilities.add may hold only NET_BIND_SERVICE, not ${added.join(", ")}`,
      );
    }
    const seccomp = own.seccompProfile?.type ?? podContext.seccompProfile?.type;
    if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost") {
      problems.push(`${at}: seccompProfile.type must be RuntimeDefault (or Localhost)`);
    }
    for (const port of container.ports ?? []) {
      if (port.hostPort !== undefined && port.hostPort !== 0) {
        problems.push(`${at}: hostPort ${port.hostPort} binds the node's port; remove it`);
      }
    }
  }
  return problems;
}

/**
 * Ways a pod lacks readiness/liveness probes or CPU and memory requests and limits. Probes are
 * for pods that serve until stopped: a pod that runs to completion (a Job's, restartPolicy Never
 * or OnFailure) takes no traffic and ends by itself, so it needs resources only. (A Deployment's
 * pods cannot escape this way: the API server accepts only Always there.)
 */
export function operabilityViolations(pod: PodSpec): string[] {
  const problems: string[] = [];
  if ((pod.containers ?? []).length === 0) {
    problems.push("pod: declares no containers");
  }
  const serves = (pod.restartPolicy ?? "Always") === "Always";
  for (const container of serves ? (pod.containers ?? []) : []) {
    const at = where(container);
    if (!container.readinessProbe) {
      problems.push(`${at}: no readinessProbe; traffic would reach it before it is ready`);
    }
    if (!container.livenessProbe) {
      problems.push(`${at}: no livenessProbe; a hung process would never be restarted`);
    }
  }
  // Init containers run to completion, so probes do not apply, but they still need resources.
  for (const container of allContainers(pod)) {
    for (const kind of ["requests", "limits"] as const) {
      for (const resource of ["cpu", "memory"]) {
        if (container.resources?.[kind]?.[resource] === undefined) {
          problems.push(`${where(container)}: no ${resource} ${kind.slice(0, -1)}`);
        }
      }
    }
  }
  return problems;
}

/** `repository@sha256:<64 hex>`: the only image reference that cannot move. */
const PINNED_IMAGE = /^[^\s@]+@sha256:[0-9a-f]{64}$/;

/** Whether an image reference is pinned by digest: the one definition the program also uses. */
export function isPinnedImage(image: string): boolean {
  return PINNED_IMAGE.test(image);
}

/** Containers whose image is not pinned by digest (`latest`, a bare tag, or no tag at all). */
export function unpinnedImageViolations(pod: PodSpec): string[] {
  return allContainers(pod)
    .filter((container) => !isPinnedImage(container.image ?? ""))
    .map(
      (container) =>
        `${where(container)}: image "${container.image ?? ""}" is not pinned by digest; ` +
        "use repository@sha256:<digest> (never latest or a tag alone)",
    );
}

/**
 * Containers whose root filesystem is writable. Not part of the restricted profile, but the
 * image is built to run read-only, so a writable root only widens what an exploit can change.
 */
export function writableRootViolations(pod: PodSpec): string[] {
  return allContainers(pod)
    .filter((container) => container.securityContext?.readOnlyRootFilesystem !== true)
    .map(
      (container) =>
        `${where(container)}: readOnlyRootFilesystem must be true; mount an emptyDir where it writes`,
    );
}

/**
 * Every way a pod breaks the workload policy, i.e. everything the pack's pod policies check:
 * the restricted profile, a read-only root filesystem, probes, requests and limits, and images
 * pinned by digest. Empty when it complies.
 */
export function podPolicyViolations(pod: PodSpec): string[] {
  return [
    ...restrictedViolations(pod),
    ...writableRootViolations(pod),
    ...operabilityViolations(pod),
    ...unpinnedImageViolations(pod),
  ];
}
