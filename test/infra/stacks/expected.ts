/**
 * What the stack tests expect of every stack: the resources each declares (type, name, parent,
 * provider), and the lookups they share.
 */
import { execFileSync } from "node:child_process";
import { specialSecretSig, specialSigKey } from "@pulumi/pulumi/runtime/rpc";
import { cloudAutoname } from "../harness/mocks";
import type { RecordedResource, RecordedRun } from "../harness/recorded-run";
import { REPO_ROOT } from "../harness/stack-config";

export const PROJECT_ID = "mlscore-test-project";
/** GKE autonames clusters; the mock does the same so names flow on as they would for real. */
export const GKE_CLUSTER_NAME = cloudAutoname("gke-cluster");

/** One line per resource: type, name, parent name and the provider it will really use. */
export type Row = readonly [type: string, name: string, parent: string, provider: string];

export function rows(run: RecordedRun): Row[] {
  return run.resources
    .map((r): Row => {
      const parent = r.parent ? run.byUrn(r.parent).name : "";
      const provider = r.custom ? (run.effectiveProvider(r)?.name ?? "") : "";
      return [r.type, r.name, parent, provider];
    })
    .sort(byRow);
}

export function byRow(a: Row, b: Row): number {
  return a.join(" ").localeCompare(b.join(" "));
}

/** Istio, its route and the app: the same on both targets but for the provider. */
export function meshAndApp(stack: string, provider: string): Row[] {
  return [
    ["mlscore:index:Istio", "istio", stack, ""],
    ["kubernetes:core/v1:Namespace", "istio-system-namespace", "istio", provider],
    ["kubernetes:core/v1:Namespace", "istio-gateway-namespace", "istio", provider],
    ["kubernetes:helm.sh/v3:Release", "istio-base", "istio", provider],
    ["kubernetes:helm.sh/v3:Release", "istio-istiod", "istio", provider],
    ["kubernetes:helm.sh/v3:Release", "istio-gateway", "istio", provider],
    ["kubernetes:core/v1:Service", "istio-gateway-service", "istio", provider],
    ["mlscore:index:IngressRoute", "ingress", stack, ""],
    ["kubernetes:networking.istio.io/v1:Gateway", "ingress-gateway", "ingress", provider],
    [
      "kubernetes:networking.istio.io/v1:DestinationRule",
      "ingress-destination-rule",
      "ingress",
      provider,
    ],
    [
      "kubernetes:networking.istio.io/v1:VirtualService",
      "ingress-virtual-service",
      "ingress",
      provider,
    ],
    ...app(stack, provider),
  ];
}

export function app(stack: string, provider: string): Row[] {
  return [
    ["mlscore:index:ScoringApp", "scoring", stack, ""],
    ["kubernetes:core/v1:Namespace", "scoring-namespace", "scoring", provider],
    ["kubernetes:core/v1:ServiceAccount", "scoring-service-account", "scoring", provider],
    ["kubernetes:apps/v1:Deployment", "scoring-deployment", "scoring", provider],
    ["kubernetes:core/v1:Service", "scoring-service", "scoring", provider],
    [
      "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
      "scoring-autoscaler",
      "scoring",
      provider,
    ],
    ["kubernetes:policy/v1:PodDisruptionBudget", "scoring-disruption-budget", "scoring", provider],
    ["kubernetes:networking.k8s.io/v1:NetworkPolicy", "scoring-deny-all", "scoring", provider],
    ["kubernetes:networking.k8s.io/v1:NetworkPolicy", "scoring-allow-ingress", "scoring", provider],
    ["kubernetes:networking.k8s.io/v1:NetworkPolicy", "scoring-allow-dns", "scoring", provider],
    [
      "kubernetes:networking.k8s.io/v1:NetworkPolicy",
      "scoring-allow-model-store",
      "scoring",
      provider,
    ],
  ];
}

/** The Kind target: provider, image, MetalLB, metrics-server. */
export const KIND_BASE: Row[] = [
  ["pulumi:pulumi:Stack", "mlscore-dev", "", ""],
  ["mlscore:index:KindCluster", "kind", "mlscore-dev", ""],
  ["pulumi:providers:kubernetes", "kind-provider", "kind", ""],
  ["kubernetes:core/v1:Node", "kind-control-plane", "kind", "kind-provider"],
  ["mlscore:index:MetricsServer", "metrics-server", "mlscore-dev", ""],
  ["kubernetes:helm.sh/v3:Release", "metrics-server-release", "metrics-server", "kind-provider"],
  ["mlscore:index:ServiceImage", "service", "mlscore-dev", ""],
  ["docker:index/image:Image", "service-image", "service", ""],
  ["mlscore:index:MetalLb", "metallb", "mlscore-dev", ""],
  ["kubernetes:core/v1:Namespace", "metallb-namespace", "metallb", "kind-provider"],
  ["kubernetes:helm.sh/v3:Release", "metallb-release", "metallb", "kind-provider"],
  ["kubernetes:metallb.io/v1beta1:IPAddressPool", "metallb-pool", "metallb", "kind-provider"],
  [
    "kubernetes:metallb.io/v1beta1:L2Advertisement",
    "metallb-l2-advertisement",
    "metallb",
    "kind-provider",
  ],
];

export const DEV_RESOURCES: Row[] = [...KIND_BASE, ...meshAndApp("mlscore-dev", "kind-provider")];
export const DEV_WITHOUT_ISTIO_RESOURCES: Row[] = [
  ...KIND_BASE,
  ...app("mlscore-dev", "kind-provider"),
];

export const GKE_RESOURCES: Row[] = [
  ["pulumi:pulumi:Stack", "mlscore-gke", "", ""],
  ["mlscore:index:GkeCluster", "gke", "mlscore-gke", ""],
  ["gcp:projects/service:Service", "gke-compute-api", "gke", ""],
  ["gcp:projects/service:Service", "gke-container-api", "gke", ""],
  ["gcp:projects/service:Service", "gke-iam-api", "gke", ""],
  ["gcp:serviceaccount/account:Account", "gke-node-account", "gke", ""],
  ["gcp:projects/iAMMember:IAMMember", "gke-node-role", "gke", ""],
  ["gcp:compute/network:Network", "gke-network", "gke", ""],
  ["gcp:compute/subnetwork:Subnetwork", "gke-subnet", "gke", ""],
  ["gcp:container/cluster:Cluster", "gke-cluster", "gke", ""],
  ["gcp:container/nodePool:NodePool", "gke-nodes", "gke", ""],
  ["pulumi:providers:kubernetes", "gke-provider", "gke", ""],
  ["mlscore:index:ArtifactRegistry", "registry", "mlscore-gke", ""],
  ["gcp:projects/service:Service", "registry-api", "registry", ""],
  ["gcp:artifactregistry/repository:Repository", "registry-repository", "registry", ""],
  [
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember",
    "registry-reader",
    "registry",
    "",
  ],
  ["mlscore:index:ServiceImage", "service", "mlscore-gke", ""],
  ["docker:index/image:Image", "service-image", "service", ""],
  ...meshAndApp("mlscore-gke", "gke-provider"),
  [
    "kubernetes:monitoring.googleapis.com/v1:PodMonitoring",
    "scoring-pod-monitoring",
    "scoring",
    "gke-provider",
  ],
];

/** An existing cluster: its provider and the app, nothing built and no MetalLB. */
export function existingCluster(mesh: boolean): Row[] {
  const stack = "mlscore-cluster";
  return [
    ["pulumi:pulumi:Stack", stack, "", ""],
    ["pulumi:providers:kubernetes", "cluster-provider", stack, ""],
    ...(mesh ? meshAndApp(stack, "cluster-provider") : app(stack, "cluster-provider")),
  ];
}

export const GCS_MODEL_URI = "gs://models-bucket/iris/v1/model.onnx";

/** The gke stack serving a gs:// model: everything above plus the pods' Google identity. */
export const GKE_GCS_MODEL_RESOURCES: Row[] = [
  ...GKE_RESOURCES,
  ["mlscore:index:ModelReader", "model-reader", "mlscore-gke", ""],
  ["gcp:serviceaccount/account:Account", "model-reader-account", "model-reader", ""],
  ["gcp:storage/bucketIAMMember:BucketIAMMember", "model-reader-bucket-viewer", "model-reader", ""],
  ["gcp:serviceaccount/iAMMember:IAMMember", "model-reader-workload-identity", "model-reader", ""],
];

/** Whether `dependent`, or a component it sits in, waits for `dependency`. */
export function waitsFor(
  run: RecordedRun,
  dependent: RecordedResource,
  dependency: RecordedResource,
) {
  for (
    let r: RecordedResource | undefined = dependent;
    r;
    r = r.parent ? run.byUrn(r.parent) : undefined
  ) {
    if (run.waitsFor(r, dependency)) {
      return true;
    }
  }
  return false;
}

/** Position in the order the engine finished registrations. */
export function finished(run: RecordedRun, resource: RecordedResource): number {
  return run.resources.indexOf(resource);
}

interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  topologySpreadConstraints: Record<string, unknown>[];
  containers: { image: string; env: { name: string; value?: string; valueFrom?: unknown }[] }[];
}

export function podSpec(deployment: RecordedResource): PodSpec {
  return (deployment.inputs.spec as { template: { spec: PodSpec } }).template.spec;
}

export function containerImage(deployment: RecordedResource): unknown {
  const spec = deployment.inputs.spec as {
    template: { spec: { containers: { image: string }[] } };
  };
  return spec.template.spec.containers[0].image;
}

/** The checked-out commit, as git itself says: what the stacks export as gitRevision. */
export const HEAD = execFileSync("git", ["rev-parse", "HEAD"], {
  cwd: REPO_ROOT,
  encoding: "utf8",
}).trim();

/** The value inside a secret input as the engine received it; fails when it is not secret. */
export function secretInput(value: unknown): unknown {
  const wrapped = value as Record<string, unknown> | undefined;
  expect(wrapped?.[specialSigKey]).toBe(specialSecretSig);
  return wrapped?.value;
}
