import type {
  PolicyResource,
  ReportViolation,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationPolicy,
} from "@pulumi/policy";
import {
  operabilityViolations,
  podSpecOf,
  restrictedViolations,
  unpinnedImageViolations,
  valueAt,
  writableRootViolations,
  type PodSpec,
} from "./workloads";
import { weightedRoutesGated } from "./routes";
import { GATEWAY_SERVICE_RESOURCE_NAME } from "../platform/istio-names";

/** Config of {@link loadBalancersWhereAllowed}, from the stack's policy config file. */
export interface LoadBalancerConfig {
  /** Pulumi resource names that may expose a LoadBalancer. */
  readonly allowedResources?: readonly string[];
}

/**
 * Without a policy config file only the Istio ingress gateway's Service may be a load balancer:
 * the safest reading of "where allowed".
 */
export const DEFAULT_ALLOWED_LOAD_BALANCERS: readonly string[] = [GATEWAY_SERVICE_RESOURCE_NAME];

const SERVICE = "kubernetes:core/v1:Service";
const HELM_RELEASE = "kubernetes:helm.sh/v3:Release";
const GKE_CLUSTER = "gcp:container/cluster:Cluster";
const GKE_NODE_POOL = "gcp:container/nodePool:NodePool";
const KUBERNETES_PROVIDER = "pulumi:providers:kubernetes";

type Props = Readonly<Record<string, unknown>>;

/** A resource policy over every type that runs pods; other types are not applicable. */
function podPolicy(
  name: string,
  description: string,
  enforcementLevel: "mandatory" | "advisory",
  violations: (pod: PodSpec) => string[],
): ResourceValidationPolicy {
  return {
    name,
    description,
    enforcementLevel,
    validateResource: (args: ResourceValidationArgs, report: ReportViolation) => {
      const pod = podSpecOf(args.type, args.props);
      if (!pod) {
        args.notApplicable(`${args.type} runs no pods`);
      }
      for (const problem of violations(pod)) {
        report(`${args.name}: ${problem}`);
      }
    },
  };
}

/**
 * Whether a resource asks for a cloud load balancer: a Service of type LoadBalancer, or a Helm
 * release whose chart values make its Service one (the Istio gateway chart's `service.type`).
 */
export function exposesLoadBalancer(type: string, props: Props): boolean {
  if (type === SERVICE) {
    return valueAt(props, "spec.type") === "LoadBalancer";
  }
  if (type === HELM_RELEASE) {
    return valueAt(props, "values.service.type") === "LoadBalancer";
  }
  return false;
}

/**
 * Mandatory: the cluster enforces the namespace's "restricted" label at admission, so a pod
 * that breaks it would pass preview and then never start; failing here says why before `up`.
 */
export const podSecurityRestricted = podPolicy(
  "pod-security-restricted",
  "Every pod meets the Pod Security Standard restricted profile: non-root, no privilege " +
    "escalation, all capabilities dropped, seccomp RuntimeDefault, no host namespaces, ports or paths.",
  "mandatory",
  restrictedViolations,
);

/**
 * Mandatory: the service image is built to run from a read-only root (scratch space is an
 * emptyDir); a writable root lets a compromised process replace what the container runs.
 */
export const podReadOnlyRootFilesystem = podPolicy(
  "pod-read-only-root-filesystem",
  "Every container runs with a read-only root filesystem (readOnlyRootFilesystem: true).",
  "mandatory",
  writableRootViolations,
);

/**
 * Mandatory: without probes a rolling update sends traffic to pods that are not ready and
 * never restarts hung ones; without requests and limits the autoscaler (which scales on the
 * CPU request) and the scheduler cannot work. Both break the zero-downtime promise. A pod that
 * runs to completion (a Job's, such as the canary gate) needs no probes, only resources.
 */
export const podProbesAndResources = podPolicy(
  "pod-probes-and-resources",
  "Every container declares CPU and memory requests and limits, and, in pods that serve until " +
    "stopped (restartPolicy Always), readiness and liveness probes.",
  "mandatory",
  operabilityViolations,
);

/**
 * Mandatory: a tag can move under a running Deployment, so nodes could run something other
 * than what was built and reviewed, and a changed image would not roll out. During preview the
 * digest of an image still to be built is unknown; the engine then reports this policy as
 * advisory ("can't run during preview") and enforces it at `up`.
 */
export const imagesPinnedByDigest = podPolicy(
  "images-pinned-by-digest",
  "Every container image is pinned by digest (repository@sha256:...), never latest or a tag alone.",
  "mandatory",
  unpinnedImageViolations,
);

/**
 * Mandatory: every LoadBalancer is a public address that costs money and bypasses the mesh
 * when it is not the gateway. Which resources may have one is per stack, in the stack's policy
 * config file (infra/policy/config/<stack>.json), so widening it is a reviewed change.
 */
export const loadBalancersWhereAllowed: ResourceValidationPolicy = {
  name: "load-balancers-where-allowed",
  description:
    "LoadBalancer Services (and charts that create one) only for the resources the stack's " +
    "policy config allows.",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      allowedResources: {
        type: "array",
        items: { type: "string" },
        default: [...DEFAULT_ALLOWED_LOAD_BALANCERS],
      },
    },
  },
  validateResource: (args, report) => {
    if (args.type !== SERVICE && args.type !== HELM_RELEASE) {
      args.notApplicable("only Services and Helm releases create load balancers");
    }
    if (!exposesLoadBalancer(args.type, args.props)) {
      return;
    }
    const allowed =
      args.getConfig<LoadBalancerConfig>().allowedResources ?? DEFAULT_ALLOWED_LOAD_BALANCERS;
    if (!allowed.includes(args.name)) {
      report(
        `${args.name} asks for a LoadBalancer, which this stack allows only for ` +
          `[${allowed.join(", ")}]; use ClusterIP behind the gateway, or allow it in ` +
          "infra/policy/config/<stack>.json",
      );
    }
  },
};

/**
 * Mandatory: two public entry points means one of them skips the gateway's routing; the program
 * exposes either the Istio gateway or, with Istio off, the scoring Service, never both.
 */
export const singlePublicEntryPoint: StackValidationPolicy = {
  name: "single-public-entry-point",
  description: "At most one resource in the stack asks for a load balancer.",
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    const entryPoints = args.resources.filter((r: PolicyResource) =>
      exposesLoadBalancer(r.type, r.props),
    );
    if (entryPoints.length > 1) {
      report(
        `${entryPoints.length} resources ask for a load balancer (${entryPoints
          .map((r) => r.name)
          .join(", ")}); expose one entry point`,
      );
    }
  },
};

/**
 * Mandatory: Workload Identity is how pods reach Google APIs (the gs:// model store) without
 * node credentials, and legacy ABAC, basic auth and client certificates are long-lived
 * credentials that bypass IAM. None of them can be fixed on a running cluster without risk.
 */
export const gkeClusterHardened: ResourceValidationPolicy = {
  name: "gke-cluster-hardened",
  description:
    "GKE clusters have Workload Identity and no legacy ABAC, basic auth or client certificate.",
  enforcementLevel: "mandatory",
  validateResource: (args, report) => {
    if (args.type !== GKE_CLUSTER) {
      args.notApplicable(`only ${GKE_CLUSTER}`);
    }
    const props = args.props;
    if (typeof valueAt(props, "workloadIdentityConfig.workloadPool") !== "string") {
      report(
        `${args.name}: workloadIdentityConfig.workloadPool must be set (<project>.svc.id.goog)`,
      );
    }
    if (valueAt(props, "enableLegacyAbac") === true) {
      report(`${args.name}: enableLegacyAbac must be off; RBAC is the only authorizer`);
    }
    if (valueAt(props, "masterAuth.username") || valueAt(props, "masterAuth.password")) {
      report(`${args.name}: masterAuth basic auth (username/password) must not be set`);
    }
    if (valueAt(props, "masterAuth.clientCertificateConfig.issueClientCertificate") === true) {
      report(`${args.name}: masterAuth must not issue a client certificate`);
    }
  },
};

/** Node service accounts that are the project's Compute Engine default one, or none at all. */
const DEFAULT_NODE_ACCOUNT = /^(default|\d+-compute@developer\.gserviceaccount\.com)?$/;

/**
 * Mandatory: nodes left on the Compute Engine default service account either hold Editor on the
 * whole project (older organisations) or cannot pull images and write logs at all (organisations
 * created after 3 May 2024, which no longer grant it). Either way the cluster is wrong; a
 * dedicated account with roles/container.defaultNodeServiceAccount is right everywhere.
 */
export const gkeNodesDedicatedServiceAccount: ResourceValidationPolicy = {
  name: "gke-nodes-dedicated-service-account",
  description:
    "GKE node pools (and a cluster's default pool) run as a dedicated service account, not the " +
    "Compute Engine default one.",
  enforcementLevel: "mandatory",
  validateResource: (args, report) => {
    if (args.type !== GKE_CLUSTER && args.type !== GKE_NODE_POOL) {
      args.notApplicable(`only ${GKE_CLUSTER} and ${GKE_NODE_POOL}`);
    }
    const account = valueAt(args.props, "nodeConfig.serviceAccount");
    if (typeof account !== "string" || DEFAULT_NODE_ACCOUNT.test(account)) {
      report(
        `${args.name}: nodeConfig.serviceAccount is the Compute Engine default; run the nodes ` +
          "as their own account with roles/container.defaultNodeServiceAccount",
      );
    }
  },
};

/**
 * Advisory: on stacks meant to be torn down (dev, the demo gke stack) deletion protection
 * makes `pulumi destroy` fail half way; a production stack may want it on, so this warns
 * rather than blocks, and a production stack's config can disable it.
 */
export const gkeDeletionProtectionOff: ResourceValidationPolicy = {
  name: "gke-deletion-protection-off",
  description: "GKE clusters of disposable stacks have deletionProtection off so destroy works.",
  enforcementLevel: "advisory",
  validateResource: (args, report) => {
    if (args.type !== GKE_CLUSTER) {
      args.notApplicable(`only ${GKE_CLUSTER}`);
    }
    // The provider defaults deletionProtection to true when it is not given.
    if (args.props.deletionProtection !== false) {
      report(`${args.name}: deletionProtection is on; pulumi destroy will fail on this cluster`);
    }
  },
};

/** Fields of a kubeconfig that hold a long-lived credential. */
const STATIC_CREDENTIALS = /^\s*(token|password|client-key-data|client-key|tokenFile):/m;

/**
 * Mandatory. The policy SDK hands policies every value already unwrapped (it deserializes
 * properties without keeping the secret marker), so no policy can see whether the kubeconfig
 * or the registry password is stored as a secret; the repository's tests assert that on the
 * program's outputs instead. What a policy can see is what would leak: this one requires
 * that a kubeconfig carries no static credential at all, only an exec plugin that fetches a
 * short-lived token, so even a copy of it grants nothing.
 */
export const kubeconfigWithoutStaticCredentials: ResourceValidationPolicy = {
  name: "kubeconfig-without-static-credentials",
  description:
    "Kubernetes providers authenticate through an exec plugin, never a token, password or key " +
    "written into the kubeconfig.",
  enforcementLevel: "mandatory",
  validateResource: (args, report) => {
    if (args.type !== KUBERNETES_PROVIDER) {
      args.notApplicable(`only ${KUBERNETES_PROVIDER}`);
    }
    const kubeconfig: unknown = args.props.kubeconfig;
    if (typeof kubeconfig !== "string" || kubeconfig === "") {
      return;
    }
    const found = STATIC_CREDENTIALS.exec(kubeconfig);
    if (found) {
      report(
        `${args.name}: kubeconfig holds a static credential (${found[1]}); ` +
          "authenticate with an exec plugin such as gke-gcloud-auth-plugin",
      );
    }
  },
};

export { weightedRoutesGated } from "./routes";

/** Every policy of the pack, in the order the engine runs them. */
export const policies: Array<ResourceValidationPolicy | StackValidationPolicy> = [
  podSecurityRestricted,
  podReadOnlyRootFilesystem,
  podProbesAndResources,
  imagesPinnedByDigest,
  loadBalancersWhereAllowed,
  singlePublicEntryPoint,
  weightedRoutesGated,
  gkeClusterHardened,
  gkeNodesDedicatedServiceAccount,
  gkeDeletionProtectionOff,
  kubeconfigWithoutStaticCredentials,
];
