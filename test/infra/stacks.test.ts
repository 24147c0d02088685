import { execFileSync } from "node:child_process";
import type * as pulumi from "@pulumi/pulumi";
import { parse as parseYaml } from "yaml";
import program from "../../infra/index";
import * as image from "../../infra/image";
import {
  FAKE_GCP_ACCESS_TOKEN,
  fakeLoadBalancerIp,
  KIND_NODE_ARCHITECTURE,
  cloudAutoname,
  type MockOverrides,
} from "./harness/mocks";
import { type RecordedResource, type RecordedRun, unwrapSecrets } from "./harness/recorded-run";
import { recordResources } from "./harness/recording";
import { readStackConfig, REPO_ROOT } from "./harness/stack-config";
import { validateKubernetesObject } from "./schemas/kubernetes";

const PROJECT_ID = "mlscore-test-project";
/** GKE autonames clusters; the mock does the same so names flow on as they would for real. */
const GKE_CLUSTER_NAME = cloudAutoname("gke-cluster");

/** One line per resource: type, name, parent name and the provider it will really use. */
type Row = readonly [type: string, name: string, parent: string, provider: string];

function rows(run: RecordedRun): Row[] {
  return run.resources
    .map((r): Row => {
      const parent = r.parent ? run.byUrn(r.parent).name : "";
      const provider = r.custom ? (run.effectiveProvider(r)?.name ?? "") : "";
      return [r.type, r.name, parent, provider];
    })
    .sort(byRow);
}

function byRow(a: Row, b: Row): number {
  return a.join(" ").localeCompare(b.join(" "));
}

/** Istio, its route and the app: the same on both targets but for the provider. */
function meshAndApp(stack: string, provider: string): Row[] {
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

function app(stack: string, provider: string): Row[] {
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
const KIND_BASE: Row[] = [
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

const DEV_RESOURCES: Row[] = [...KIND_BASE, ...meshAndApp("mlscore-dev", "kind-provider")];
const DEV_WITHOUT_ISTIO_RESOURCES: Row[] = [...KIND_BASE, ...app("mlscore-dev", "kind-provider")];

const GKE_RESOURCES: Row[] = [
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
function existingCluster(mesh: boolean): Row[] {
  const stack = "mlscore-cluster";
  return [
    ["pulumi:pulumi:Stack", stack, "", ""],
    ["pulumi:providers:kubernetes", "cluster-provider", stack, ""],
    ...(mesh ? meshAndApp(stack, "cluster-provider") : app(stack, "cluster-provider")),
  ];
}

const GCS_MODEL_URI = "gs://models-bucket/iris/v1/model.onnx";

/** The gke stack serving a gs:// model: everything above plus the pods' Google identity. */
const GKE_GCS_MODEL_RESOURCES: Row[] = [
  ...GKE_RESOURCES,
  ["mlscore:index:ModelReader", "model-reader", "mlscore-gke", ""],
  ["gcp:serviceaccount/account:Account", "model-reader-account", "model-reader", ""],
  ["gcp:storage/bucketIAMMember:BucketIAMMember", "model-reader-bucket-viewer", "model-reader", ""],
  ["gcp:serviceaccount/iAMMember:IAMMember", "model-reader-workload-identity", "model-reader", ""],
];

/** Whether `dependent`, or a component it sits in, waits for `dependency`. */
function waitsFor(run: RecordedRun, dependent: RecordedResource, dependency: RecordedResource) {
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
function finished(run: RecordedRun, resource: RecordedResource): number {
  return run.resources.indexOf(resource);
}

interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  topologySpreadConstraints: Record<string, unknown>[];
  containers: { image: string; env: { name: string; value?: string; valueFrom?: unknown }[] }[];
}

function podSpec(deployment: RecordedResource): PodSpec {
  return (deployment.inputs.spec as { template: { spec: PodSpec } }).template.spec;
}

function containerImage(deployment: RecordedResource): unknown {
  const spec = deployment.inputs.spec as {
    template: { spec: { containers: { image: string }[] } };
  };
  return spec.template.spec.containers[0].image;
}

/** The checked-out commit, as git itself says: what the stacks export as gitRevision. */
const HEAD = execFileSync("git", ["rev-parse", "HEAD"], {
  cwd: REPO_ROOT,
  encoding: "utf8",
}).trim();

/** Pulumi's wire marker for a secret value (`sig` key and the secret signature). */
const SECRET_SIG = ["4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"];

/** The value inside a secret input as the engine received it; fails when it is not secret. */
function secretInput(value: unknown): unknown {
  const wrapped = value as Record<string, unknown> | undefined;
  expect(wrapped?.[SECRET_SIG[0]]).toBe(SECRET_SIG[1]);
  return wrapped?.value;
}

describe("dev stack (Kind), from Pulumi.yaml + Pulumi.dev.yaml", () => {
  let run: RecordedRun;
  beforeAll(async () => {
    run = await recordResources(program, { stack: "dev", config: readStackConfig("dev") });
  });

  it("declares exactly the Kind target, MetalLB, Istio, the route and the app", () => {
    expect(rows(run)).toEqual([...DEV_RESOURCES].sort(byRow));
  });

  it("talks to the kind-mlscore context of the default kubeconfig", () => {
    expect(run.one("pulumi:providers:kubernetes", "kind-provider").inputs).toMatchObject({
      context: "kind-mlscore",
    });
    expect(run.one("pulumi:providers:kubernetes", "kind-provider").inputs).not.toHaveProperty(
      "kubeconfig",
    );
  });

  it("derives the MetalLB pool from the kind Docker network", () => {
    expect(run.invokes.map((i) => [i.token, i.inputs])).toEqual([
      ["docker:index/getNetwork:getNetwork", { name: "kind" }],
    ]);
    const pool = run.one("kubernetes:metallb.io/v1beta1:IPAddressPool", "metallb-pool");
    expect((pool.inputs.spec as { addresses: string[] }).addresses).toEqual([
      "172.18.255.200-172.18.255.250",
    ]);
    expect(run.one("kubernetes:helm.sh/v3:Release", "metallb-release").inputs.version).toBe(
      "0.14.9",
    );
  });

  it("builds the service for the Kind nodes' platform and pushes it with a content tag", () => {
    const image = run.one("docker:index/image:Image", "service-image");
    const imageName = String(image.inputs.imageName);
    expect(imageName).toMatch(/^localhost:5001\/mlscore-scoring:src-[0-9a-f]{20}$/);
    // No build arguments: the commit is not an input, so an unchanged service keeps its digest.
    expect(image.inputs.build).toEqual({
      context: ".",
      dockerfile: "service/Dockerfile",
      platform: `linux/${KIND_NODE_ARCHITECTURE}`,
    });
    const node = run.one("kubernetes:core/v1:Node", "kind-control-plane");
    expect([node.read, node.importId]).toEqual([true, "mlscore-control-plane"]);
    expect(image.inputs.registry).toBeUndefined();
    expect(image.inputs.skipPush).toBe(false);
  });

  it("runs the pushed image by digest", () => {
    const digest = run.one("docker:index/image:Image", "service-image").state.repoDigest;
    expect(digest).toMatch(/^localhost:5001\/mlscore-scoring@sha256:[0-9a-f]{64}$/);
    const deployment = run.one("kubernetes:apps/v1:Deployment", "scoring-deployment");
    expect(containerImage(deployment)).toBe(digest);
    expect(run.outputs.image).toBe(digest);
  });

  it("creates the LoadBalancer (Istio's gateway) only after MetalLB's pool and advertisement", () => {
    const gateway = run.one("kubernetes:core/v1:Service", "istio-gateway-service");
    expect(gateway.inputs.spec).toMatchObject({ type: "LoadBalancer" });
    for (const name of ["metallb-pool", "metallb-l2-advertisement"]) {
      const ready = run.resources.find((r) => r.name === name) as RecordedResource;
      expect([name, waitsFor(run, gateway, ready)]).toEqual([name, true]);
      expect(finished(run, ready)).toBeLessThan(finished(run, gateway));
    }
  });

  it("keeps the app's Service internal behind the gateway and admits the gateway namespace", () => {
    const service = run.one("kubernetes:core/v1:Service", "scoring-service");
    expect((service.inputs.spec as { type: string }).type).toBe("ClusterIP");
    const policy = run.one(
      "kubernetes:networking.k8s.io/v1:NetworkPolicy",
      "scoring-allow-ingress",
    );
    expect(JSON.stringify(policy.inputs.spec)).toContain(
      '"kubernetes.io/metadata.name":"istio-ingress"',
    );
    const app = run.one("mlscore:index:ScoringApp", "scoring");
    expect(waitsFor(run, app, run.one("mlscore:index:Istio", "istio"))).toBe(true);
  });

  it("routes the gateway to the app's Service by its cluster DNS name", () => {
    const route = run.one(
      "kubernetes:networking.istio.io/v1:VirtualService",
      "ingress-virtual-service",
    );
    const service = run.one("kubernetes:core/v1:Service", "scoring-service");
    const serviceName = (service.state.metadata as { name: string }).name;
    expect(JSON.stringify(route.inputs.spec)).toContain(
      `"host":"${serviceName}.mlscore.svc.cluster.local"`,
    );
    expect(waitsFor(run, route, run.one("kubernetes:helm.sh/v3:Release", "istio-base"))).toBe(true);
  });

  it("passes the stack's replicas, resources and versions on", () => {
    const deployment = run.one("kubernetes:apps/v1:Deployment", "scoring-deployment");
    expect((deployment.inputs.spec as { replicas: number }).replicas).toBe(2);
    const hpa = run.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "scoring-autoscaler");
    expect(hpa.inputs.spec).toMatchObject({ minReplicas: 2, maxReplicas: 4 });
    // Pulumi.yaml alone declares the chart versions; no component has one of its own.
    const config = readStackConfig("dev");
    const release = (name: string) => run.one("kubernetes:helm.sh/v3:Release", name).inputs;
    for (const name of ["istio-base", "istio-istiod", "istio-gateway"]) {
      expect(release(name).version).toBe(config["mlscore:istioVersion"]);
    }
    expect(release("metallb-release").version).toBe(config["mlscore:metallbVersion"]);
    expect(release("metrics-server-release").version).toBe(config["mlscore:metricsServerVersion"]);
  });

  it("spreads the pods only as a preference over Kind's fixed nodes, and declares no PodMonitoring", () => {
    const pod = podSpec(run.one("kubernetes:apps/v1:Deployment", "scoring-deployment"));
    expect(pod.topologySpreadConstraints).toEqual([
      expect.objectContaining({ whenUnsatisfiable: "ScheduleAnyway" }),
    ]);
    expect(pod.topologySpreadConstraints[0]).not.toHaveProperty("minDomains");
    expect(run.ofType("kubernetes:monitoring.googleapis.com/v1:PodMonitoring")).toEqual([]);
  });

  it("declares no Google Cloud resource and asks GCP for nothing", () => {
    expect(run.resources.filter((r) => r.type.startsWith("gcp:"))).toEqual([]);
    expect(run.invokes.filter((i) => i.token.startsWith("gcp:"))).toEqual([]);
  });

  it("exports the endpoint through the gateway, the image, namespace, context, model and revision", () => {
    expect(run.outputs).toEqual({
      endpoint: `http://${fakeLoadBalancerIp("istio-gateway-service")}`,
      image: run.one("docker:index/image:Image", "service-image").state.repoDigest,
      namespace: "mlscore",
      kubeContext: "kind-mlscore",
      modelUri: "/app/models/iris.onnx",
      servedModels: { stable: { name: "iris", version: "1" } },
      gitRevision: HEAD,
    });
    expect(run.secretOutputs.size).toBe(0);
  });
});

describe("dev stack with Istio off", () => {
  let run: RecordedRun;
  beforeAll(async () => {
    run = await recordResources(program, {
      stack: "dev",
      config: { ...readStackConfig("dev"), istioEnabled: false },
    });
  });

  it("declares no Istio resource", () => {
    expect(rows(run)).toEqual([...DEV_WITHOUT_ISTIO_RESOURCES].sort(byRow));
  });

  it("exposes the app's own Service as a LoadBalancer, created after MetalLB's pool", () => {
    const service = run.one("kubernetes:core/v1:Service", "scoring-service");
    expect((service.inputs.spec as { type: string }).type).toBe("LoadBalancer");
    for (const name of ["metallb-release", "metallb-pool", "metallb-l2-advertisement"]) {
      const ready = run.resources.find((r) => r.name === name) as RecordedResource;
      expect([name, waitsFor(run, service, ready)]).toEqual([name, true]);
      expect(finished(run, ready)).toBeLessThan(finished(run, service));
    }
    expect(run.outputs.endpoint).toBe(`http://${fakeLoadBalancerIp("scoring-service")}`);
  });
});

describe("cluster stack: an existing cluster and an image built elsewhere", () => {
  const image = `registry.example.com/mlscore@sha256:${"0123456789abcdef".repeat(4)}`;
  const config = {
    ...readStackConfig("cluster"),
    target: "cluster",
    kubeContext: "k3d-mlscore",
    image,
    istioEnabled: false,
  };
  let run: RecordedRun;
  beforeAll(async () => {
    run = await recordResources(program, { stack: "cluster", config });
  });

  it("declares exactly a provider and the app: no image build, no MetalLB, no Istio", () => {
    expect(rows(run)).toEqual([...existingCluster(false)].sort(byRow));
    expect(run.invokes).toEqual([]);
  });

  it("talks to the configured context of the default kubeconfig", () => {
    expect(run.one("pulumi:providers:kubernetes", "cluster-provider").inputs).toEqual({
      context: "k3d-mlscore",
    });
  });

  it("runs the configured image as given and exposes the app's Service itself", () => {
    const deployment = run.one("kubernetes:apps/v1:Deployment", "scoring-deployment");
    expect(containerImage(deployment)).toBe(image);
    const service = run.one("kubernetes:core/v1:Service", "scoring-service");
    expect((service.inputs.spec as { type: string }).type).toBe("LoadBalancer");
  });

  it("exports the endpoint, the image, namespace, context, model and revision", () => {
    expect(run.outputs).toEqual({
      endpoint: `http://${fakeLoadBalancerIp("scoring-service")}`,
      image,
      namespace: "mlscore",
      kubeContext: "k3d-mlscore",
      modelUri: "/app/models/iris.onnx",
      servedModels: { stable: { name: "iris", version: "1" } },
      gitRevision: HEAD,
    });
  });

  it("follows the current context when none is named, and then exports none", async () => {
    const current = await recordResources(program, {
      stack: "cluster",
      config: { ...config, kubeContext: "" },
    });
    expect(current.one("pulumi:providers:kubernetes", "cluster-provider").inputs).toEqual({});
    expect(current.outputs).not.toHaveProperty("kubeContext");
  });

  it("with Istio on, installs Istio and the route beside the app, still without MetalLB", async () => {
    const meshed = await recordResources(program, {
      stack: "cluster",
      config: { ...config, istioEnabled: true },
    });
    expect(rows(meshed)).toEqual([...existingCluster(true)].sort(byRow));
  });

  it("refuses an image that is not pinned before declaring anything", async () => {
    await expect(
      recordResources(program, {
        stack: "cluster",
        config: { ...config, image: "registry.example.com/mlscore:1.0" },
      }),
    ).rejects.toThrow(
      'mlscore:image must be pinned by digest (got "registry.example.com/mlscore:1.0")',
    );
  });
});

describe("gke stack, from Pulumi.yaml + Pulumi.gke.yaml + the user's gcp:project", () => {
  let run: RecordedRun;
  beforeAll(async () => {
    run = await recordResources(program, {
      stack: "gke",
      config: { ...readStackConfig("gke"), "gcp:project": PROJECT_ID },
    });
  });

  it("declares exactly the network, cluster, node pool, registry, image, Istio, route and app", () => {
    expect(rows(run)).toEqual([...GKE_RESOURCES].sort(byRow));
  });

  it("installs no MetalLB and asks Docker for no network: Google's load balancer does that job", () => {
    expect(run.resources.filter((r) => /metallb/i.test(r.type))).toEqual([]);
    expect(run.invokes.map((i) => i.token)).toEqual([
      "gcp:organizations/getClientConfig:getClientConfig",
    ]);
  });

  it("enables the APIs it needs and leaves them on at destroy", () => {
    const apis = run.ofType("gcp:projects/service:Service").map((r) => r.inputs);
    expect(apis).toEqual(
      expect.arrayContaining(
        [
          "compute.googleapis.com",
          "container.googleapis.com",
          "iam.googleapis.com",
          "artifactregistry.googleapis.com",
        ].map((service) => ({ project: PROJECT_ID, service, disableOnDestroy: false })),
      ),
    );
    expect(apis).toHaveLength(4);
  });

  it("runs the nodes as their own account with the node role, able to pull from the repository", () => {
    const email = `mlscore-nodes@${PROJECT_ID}.iam.gserviceaccount.com`;
    const account = run.one("gcp:serviceaccount/account:Account", "gke-node-account");
    expect(account.inputs).toMatchObject({ project: PROJECT_ID, accountId: "mlscore-nodes" });
    expect(run.waitsFor(account, run.one("gcp:projects/service:Service", "gke-iam-api"))).toBe(
      true,
    );
    const role = run.one("gcp:projects/iAMMember:IAMMember", "gke-node-role");
    expect(role.inputs).toEqual({
      project: PROJECT_ID,
      role: "roles/container.defaultNodeServiceAccount",
      member: `serviceAccount:${email}`,
    });
    const reader = run.one(
      "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember",
      "registry-reader",
    );
    expect(reader.inputs).toEqual({
      project: PROJECT_ID,
      location: "us-central1",
      repository: "mlscore",
      role: "roles/artifactregistry.reader",
      member: `serviceAccount:${email}`,
    });
    // The temporary default pool and the managed pool both run as it, once it holds its role.
    const cluster = run.one("gcp:container/cluster:Cluster", "gke-cluster");
    const pool = run.one("gcp:container/nodePool:NodePool", "gke-nodes");
    for (const nodes of [cluster, pool]) {
      expect(nodes.inputs).toMatchObject({ nodeConfig: { serviceAccount: email } });
      expect([nodes.name, run.waitsFor(nodes, role)]).toEqual([nodes.name, true]);
    }
    expect(cluster.ignoreChanges).toEqual(["nodeConfig"]);
    // The pods pull the image only once the nodes may read it.
    const deployment = run.one("kubernetes:apps/v1:Deployment", "scoring-deployment");
    expect(waitsFor(run, deployment, reader)).toBe(true);
  });

  it("turns managed Prometheus on and scrapes the pods from gmp-system", () => {
    expect(run.one("gcp:container/cluster:Cluster", "gke-cluster").inputs).toMatchObject({
      monitoringConfig: {
        enableComponents: ["SYSTEM_COMPONENTS"],
        managedPrometheus: { enabled: true },
      },
    });
    const monitoring = run.one(
      "kubernetes:monitoring.googleapis.com/v1:PodMonitoring",
      "scoring-pod-monitoring",
    );
    expect(monitoring.inputs.spec).toMatchObject({
      endpoints: [{ port: "http", path: "/metrics", interval: "30s" }],
    });
    const ingress = run.one(
      "kubernetes:networking.k8s.io/v1:NetworkPolicy",
      "scoring-allow-ingress",
    );
    expect(JSON.stringify(ingress.inputs.spec)).toContain(
      '"kubernetes.io/metadata.name":"gmp-system"',
    );
  });

  it("spreads the pods one per node as a rule until minReplicas nodes exist", () => {
    const pod = podSpec(run.one("kubernetes:apps/v1:Deployment", "scoring-deployment"));
    expect(pod.topologySpreadConstraints).toEqual([
      expect.objectContaining({
        topologyKey: "kubernetes.io/hostname",
        whenUnsatisfiable: "DoNotSchedule",
        minDomains: 3,
      }),
    ]);
  });

  it("makes a custom-mode network with a subnet carrying the pod and service ranges", () => {
    expect(run.one("gcp:compute/network:Network", "gke-network").inputs).toMatchObject({
      project: PROJECT_ID,
      autoCreateSubnetworks: false,
    });
    expect(run.one("gcp:compute/subnetwork:Subnetwork", "gke-subnet").inputs).toMatchObject({
      project: PROJECT_ID,
      region: "us-central1",
      ipCidrRange: "10.10.0.0/20",
      privateIpGoogleAccess: true,
      secondaryIpRanges: [
        { rangeName: "pods", ipCidrRange: "10.20.0.0/14" },
        { rangeName: "services", ipCidrRange: "10.24.0.0/20" },
      ],
    });
  });

  it("makes a VPC-native zonal cluster without its default pool, deletable, with Workload Identity", () => {
    const cluster = run.one("gcp:container/cluster:Cluster", "gke-cluster");
    expect(cluster.inputs).toMatchObject({
      project: PROJECT_ID,
      location: "us-central1-a",
      networkingMode: "VPC_NATIVE",
      ipAllocationPolicy: {
        clusterSecondaryRangeName: "pods",
        servicesSecondaryRangeName: "services",
      },
      removeDefaultNodePool: true,
      initialNodeCount: 1,
      deletionProtection: false,
      releaseChannel: { channel: "REGULAR" },
      workloadIdentityConfig: { workloadPool: `${PROJECT_ID}.svc.id.goog` },
      datapathProvider: "ADVANCED_DATAPATH",
    });
    expect(cluster.protect).toBe(false);
    for (const api of ["gke-container-api", "gke-compute-api"]) {
      expect(run.waitsFor(cluster, run.one("gcp:projects/service:Service", api))).toBe(true);
    }
    expect(run.waitsFor(cluster, run.one("gcp:compute/subnetwork:Subnetwork", "gke-subnet"))).toBe(
      true,
    );
  });

  it("gives the cluster a pool of 3 e2-standard-2 nodes, autoscaled 1-5, on the GKE metadata server", () => {
    const pool = run.one("gcp:container/nodePool:NodePool", "gke-nodes");
    expect(pool.inputs).toMatchObject({
      project: PROJECT_ID,
      location: "us-central1-a",
      cluster: GKE_CLUSTER_NAME,
      initialNodeCount: 3,
      autoscaling: { minNodeCount: 1, maxNodeCount: 5 },
      nodeConfig: {
        machineType: "e2-standard-2",
        workloadMetadataConfig: { mode: "GKE_METADATA" },
      },
    });
    expect(pool.inputs).not.toHaveProperty("nodeCount");
    expect(run.waitsFor(pool, run.one("gcp:container/cluster:Cluster", "gke-cluster"))).toBe(true);
  });

  it("exports a secret kubeconfig that authenticates with gke-gcloud-auth-plugin", () => {
    expect(run.secretOutputs).toEqual(new Set(["kubeconfig"]));
    const kubeconfig = parseYaml(String(run.outputs.kubeconfig)) as {
      "current-context": string;
      clusters: { cluster: Record<string, string> }[];
      users: { user: Record<string, unknown> }[];
    };
    const context = `gke_${PROJECT_ID}_us-central1-a_${GKE_CLUSTER_NAME}`;
    expect(kubeconfig["current-context"]).toBe(context);
    expect(kubeconfig.clusters[0].cluster).toEqual({
      server: "https://203.0.113.10",
      "certificate-authority-data": Buffer.from("fake-cluster-ca").toString("base64"),
    });
    expect(Object.keys(kubeconfig.users[0].user)).toEqual(["exec"]);
    expect(kubeconfig.users[0].user.exec).toMatchObject({
      apiVersion: "client.authentication.k8s.io/v1beta1",
      command: "gke-gcloud-auth-plugin",
      provideClusterInfo: true,
    });
    expect(run.outputs.kubeContext).toBe(context);
  });

  it("builds its Kubernetes provider from that kubeconfig, once the node pool exists", () => {
    const provider = run.one("pulumi:providers:kubernetes", "gke-provider");
    expect(secretInput(provider.inputs.kubeconfig)).toBe(run.outputs.kubeconfig);
    expect(run.waitsFor(provider, run.one("gcp:container/nodePool:NodePool", "gke-nodes"))).toBe(
      true,
    );
  });

  it("keeps images in a Docker repository of Artifact Registry in the stack's region", () => {
    expect(
      run.one("gcp:artifactregistry/repository:Repository", "registry-repository").inputs,
    ).toMatchObject({
      project: PROJECT_ID,
      location: "us-central1",
      repositoryId: "mlscore",
      format: "DOCKER",
    });
  });

  it("pushes the content-tagged image to Artifact Registry with the caller's access token", () => {
    const image = run.one("docker:index/image:Image", "service-image");
    expect(image.inputs.imageName).toMatch(
      new RegExp(`^us-central1-docker\\.pkg\\.dev/${PROJECT_ID}/mlscore/scoring:src-[0-9a-f]{20}$`),
    );
    expect(secretInput(image.inputs.registry)).toEqual({
      server: "us-central1-docker.pkg.dev",
      username: "oauth2accesstoken",
      password: FAKE_GCP_ACCESS_TOKEN,
    });
    expect(image.inputs.build).toMatchObject({ platform: "linux/amd64" });
    expect(
      run.waitsFor(
        image,
        run.one("gcp:artifactregistry/repository:Repository", "registry-repository"),
      ),
    ).toBe(true);
  });

  it("runs the pushed image by digest", () => {
    const digest = run.one("docker:index/image:Image", "service-image").state.repoDigest;
    expect(digest).toMatch(
      new RegExp(
        `^us-central1-docker\\.pkg\\.dev/${PROJECT_ID}/mlscore/scoring@sha256:[0-9a-f]{64}$`,
      ),
    );
    expect(containerImage(run.one("kubernetes:apps/v1:Deployment", "scoring-deployment"))).toBe(
      digest,
    );
  });

  it("passes the gke stack's replica bounds on", () => {
    const deployment = run.one("kubernetes:apps/v1:Deployment", "scoring-deployment");
    expect((deployment.inputs.spec as { replicas: number }).replicas).toBe(3);
    const hpa = run.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "scoring-autoscaler");
    expect(hpa.inputs.spec).toMatchObject({ minReplicas: 3, maxReplicas: 5 });
  });

  it("exports the endpoint, image, namespace, model and revision", () => {
    expect(run.outputs).toMatchObject({
      endpoint: `http://${fakeLoadBalancerIp("istio-gateway-service")}`,
      image: run.one("docker:index/image:Image", "service-image").state.repoDigest,
      namespace: "mlscore",
      modelUri: "/app/models/iris.onnx",
      gitRevision: HEAD,
    });
    expect(Object.keys(run.outputs).sort()).toEqual(
      [
        "endpoint",
        "image",
        "namespace",
        "kubeContext",
        "kubeconfig",
        "network",
        "modelUri",
        "servedModels",
        "gitRevision",
      ].sort(),
    );
    const network = run.one("gcp:compute/network:Network", "gke-network");
    expect(run.outputs.network).toBe(network.state.name);
    expect(run.outputs.network).toMatch(/^gke-network-[0-9a-f]{7}$/);
  });
});

describe("gke stack serving a gs:// model", () => {
  const email = `mlscore-scoring@${PROJECT_ID}.iam.gserviceaccount.com`;
  let run: RecordedRun;
  beforeAll(async () => {
    run = await recordResources(program, {
      stack: "gke",
      config: { ...readStackConfig("gke"), "gcp:project": PROJECT_ID, modelUri: GCS_MODEL_URI },
    });
  });

  it("declares the gke stack's resources plus a service account, its grant and its binding", () => {
    expect(rows(run)).toEqual([...GKE_GCS_MODEL_RESOURCES].sort(byRow));
  });

  it("makes a Google service account for the pods, once the IAM API is on", () => {
    const account = run.one("gcp:serviceaccount/account:Account", "model-reader-account");
    expect(account.inputs).toMatchObject({ project: PROJECT_ID, accountId: "mlscore-scoring" });
    const api = run.one("gcp:projects/service:Service", "gke-iam-api");
    expect(api.inputs).toEqual({
      project: PROJECT_ID,
      service: "iam.googleapis.com",
      disableOnDestroy: false,
    });
    expect(waitsFor(run, account, api)).toBe(true);
  });

  it("lets it read objects of the model's bucket only, with no project-wide role", () => {
    const grants = run.ofType("gcp:storage/bucketIAMMember:BucketIAMMember");
    expect(grants.map((g) => g.inputs)).toEqual([
      {
        bucket: "models-bucket",
        role: "roles/storage.objectViewer",
        member: `serviceAccount:${email}`,
      },
    ]);
    // The only project-wide grant is the nodes' own role, not the pods'.
    expect(
      run.resources
        .filter((r) => /^gcp:(projects|organizations)\/iam/i.test(r.type))
        .map((r) => r.name),
    ).toEqual(["gke-node-role"]);
  });

  it("lets only the pods' Kubernetes ServiceAccount act as it, once the cluster's pool exists", () => {
    const binding = run.one(
      "gcp:serviceaccount/iAMMember:IAMMember",
      "model-reader-workload-identity",
    );
    expect(binding.inputs).toEqual({
      serviceAccountId: `projects/${PROJECT_ID}/serviceAccounts/${email}`,
      role: "roles/iam.workloadIdentityUser",
      member: `serviceAccount:${PROJECT_ID}.svc.id.goog[mlscore/mlscore-scoring]`,
    });
    expect(run.waitsFor(binding, run.one("gcp:container/cluster:Cluster", "gke-cluster"))).toBe(
      true,
    );
  });

  it("annotates that ServiceAccount with the Google account and runs the pods under it", () => {
    const account = run.one("kubernetes:core/v1:ServiceAccount", "scoring-service-account");
    expect(account.inputs.metadata).toMatchObject({
      name: "mlscore-scoring",
      namespace: "mlscore",
      annotations: { "iam.gke.io/gcp-service-account": email },
    });
    expect(account.inputs.automountServiceAccountToken).toBe(false);
    const pod = podSpec(run.one("kubernetes:apps/v1:Deployment", "scoring-deployment"));
    expect(pod.serviceAccountName).toBe("mlscore-scoring");
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.containers[0].env).toContainEqual({ name: "MODEL_URI", value: GCS_MODEL_URI });
  });

  it("starts the pods only after the bucket grant and the binding exist", () => {
    const deployment = run.one("kubernetes:apps/v1:Deployment", "scoring-deployment");
    for (const [type, name] of [
      ["gcp:storage/bucketIAMMember:BucketIAMMember", "model-reader-bucket-viewer"],
      ["gcp:serviceaccount/iAMMember:IAMMember", "model-reader-workload-identity"],
    ]) {
      expect([name, waitsFor(run, deployment, run.one(type, name))]).toEqual([name, true]);
    }
  });

  it("declares only Kubernetes objects valid against the upstream schemas", () => {
    for (const { object } of run.kubernetesObjects()) {
      expect(() => validateKubernetesObject(object)).not.toThrow();
    }
    expect(run.outputs.modelUri).toBe(GCS_MODEL_URI);
  });
});

describe("stacks that need no Google identity for their model", () => {
  it("gke with the built-in model gives the pods a ServiceAccount without one", async () => {
    const run = await recordResources(program, {
      stack: "gke",
      config: { ...readStackConfig("gke"), "gcp:project": PROJECT_ID },
    });
    const account = run.one("kubernetes:core/v1:ServiceAccount", "scoring-service-account");
    expect(account.inputs.metadata).not.toHaveProperty("annotations");
    expect(
      podSpec(run.one("kubernetes:apps/v1:Deployment", "scoring-deployment")).serviceAccountName,
    ).toBe("mlscore-scoring");
  });

  it("gke with an https:// model declares no service account or grant", async () => {
    const run = await recordResources(program, {
      stack: "gke",
      config: {
        ...readStackConfig("gke"),
        "gcp:project": PROJECT_ID,
        modelUri: "https://models.example.com/iris.onnx",
      },
    });
    expect(rows(run)).toEqual([...GKE_RESOURCES].sort(byRow));
  });

  it("dev (Kind) refuses a gs:// model, which it has no credentials to read", async () => {
    await expect(
      recordResources(program, {
        stack: "dev",
        config: { ...readStackConfig("dev"), modelUri: GCS_MODEL_URI },
      }),
    ).rejects.toThrow("mlscore:modelUri is a gs:// object, which a Kind cluster has no Google");
  });
});

describe("every component of every stack", () => {
  /** A canary, so the stacks hold every component the program has. */
  const canary = {
    canaryModelUri: "https://models.example.com/iris/v2.onnx",
    canaryModelVersion: "2",
    canaryGoldenRequests: "service/models/iris.golden.json",
  };

  /** A component's public fields: what it exposes, less the SDK's own and those left unset. */
  function publicFields(component: object): string[] {
    return Object.entries(component)
      .filter(([key, value]) => !key.startsWith("__") && key !== "urn" && value !== undefined)
      .map(([key]) => key)
      .sort();
  }

  it.each([
    ["dev with a canary", "dev", canary],
    ["dev with Istio off", "dev", { istioEnabled: false }],
    ["gke with a gs:// model and a canary", "gke", { modelUri: GCS_MODEL_URI, ...canary }],
  ] as const)(
    "registers each of its public fields as an output (%s)",
    async (_name, stack, config) => {
      const run = await recordResources(program, {
        stack,
        config: { ...readStackConfig(stack), "gcp:project": PROJECT_ID, ...config },
      });
      const components = run.resources.filter((r) => r.type.startsWith("mlscore:index:"));
      expect(components.length).toBeGreaterThan(4);
      for (const component of components) {
        const fields = publicFields(run.instanceOf(component));
        const missing = fields.filter((field) => !run.registeredOutputs(component).includes(field));
        expect([component.type, missing]).toEqual([component.type, []]);
      }
    },
  );
});

describe("two commits that leave service/ unchanged", () => {
  afterEach(() => jest.restoreAllMocks());

  async function deployAt(revision: string): Promise<RecordedRun> {
    jest.spyOn(image, "gitRevision").mockReturnValue(revision);
    return recordResources(program, { stack: "dev", config: readStackConfig("dev") });
  }

  it("give the same build inputs and pod template; only the Deployment's annotation moves", async () => {
    const first = await deployAt("1".repeat(40));
    const second = await deployAt("2".repeat(40));
    const imageOf = (run: RecordedRun) => run.one("docker:index/image:Image", "service-image");
    expect(imageOf(second).inputs).toEqual(imageOf(first).inputs);
    const deploymentOf = (run: RecordedRun) =>
      run.one("kubernetes:apps/v1:Deployment", "scoring-deployment");
    const template = (run: RecordedRun) =>
      (deploymentOf(run).inputs.spec as { template: unknown }).template;
    expect(template(second)).toEqual(template(first));
    expect(deploymentOf(first).inputs.metadata).toMatchObject({
      annotations: { "mlscore.dev/git-revision": "1".repeat(40) },
    });
    expect(deploymentOf(second).inputs.metadata).toMatchObject({
      annotations: { "mlscore.dev/git-revision": "2".repeat(40) },
    });
    expect([first.outputs.gitRevision, second.outputs.gitRevision]).toEqual([
      "1".repeat(40),
      "2".repeat(40),
    ]);
  });
});

describe("dev stack on an arm64 host (Apple silicon)", () => {
  const nodeArchitecture = (architecture: string): MockOverrides => ({
    newResource: (args) =>
      args.type === "kubernetes:core/v1:Node"
        ? { id: args.id, state: { status: { nodeInfo: { architecture } } } }
        : undefined,
  });

  it("builds the image for linux/arm64, the Kind nodes' own architecture", async () => {
    const run = await recordResources(program, {
      stack: "dev",
      config: readStackConfig("dev"),
      mocks: nodeArchitecture("arm64"),
    });
    expect(run.one("docker:index/image:Image", "service-image").inputs.build).toMatchObject({
      platform: "linux/arm64",
    });
  });
});

describe("a model URI holding a credential", () => {
  const presigned = "https://models.example.com/iris.onnx?X-Goog-Signature=0123abcd";

  it.each([
    ["set with --secret", ["modelUri"]],
    ["set in plain text but carrying a signature", []],
  ])(
    "%s stays secret in the outputs and reaches the pods only through a Secret",
    async (_n, keys) => {
      const run = await recordResources(program, {
        stack: "dev",
        config: { ...readStackConfig("dev"), modelUri: presigned },
        secretKeys: keys,
      });
      expect(run.secretOutputs).toEqual(new Set(["modelUri"]));
      expect(run.outputs.modelUri).toBe(presigned);
      const source = run.one("kubernetes:core/v1:Secret", "scoring-model-source");
      expect(unwrapSecrets(source.inputs.stringData)).toEqual({ MODEL_URI: presigned });
      const leaks = run.resources
        .filter((r) => r !== source && JSON.stringify(r.inputs).includes("X-Goog-Signature"))
        .map((r) => r.name);
      expect(leaks).toEqual([]);
    },
  );

  it("is a plain output when it holds none", async () => {
    const plain = "https://models.example.com/iris.onnx";
    const run = await recordResources(program, {
      stack: "dev",
      config: { ...readStackConfig("dev"), modelUri: plain },
    });
    expect(run.secretOutputs.has("modelUri")).toBe(false);
    expect(run.outputs.modelUri).toBe(plain);
  });
});

describe("a bad config value", () => {
  it("fails the real program before any resource is registered or any provider is asked", async () => {
    const registered: string[] = [];
    const called: string[] = [];
    const watch: MockOverrides = {
      newResource: (args: pulumi.runtime.MockResourceArgs) => {
        registered.push(args.type);
        return undefined;
      },
      call: (args: pulumi.runtime.MockCallArgs) => {
        called.push(args.token);
        return undefined;
      },
    };
    await expect(
      recordResources(program, {
        stack: "dev",
        config: { ...readStackConfig("dev"), replicas: 0 },
        mocks: watch,
      }),
    ).rejects.toThrow(
      'mlscore:replicas must be a whole number from 1 to 50 (got "0"); ' +
        "set it with: pulumi config set replicas 2",
    );
    expect(registered.filter((type) => type !== "pulumi:pulumi:Stack")).toEqual([]);
    expect(called).toEqual([]);
  });

  it("fails the gke stack as committed, before the user sets gcp:project", async () => {
    await expect(
      recordResources(program, { stack: "gke", config: readStackConfig("gke") }),
    ).rejects.toThrow("mlscore:gcpProject (or gcp:project) is required when mlscore:target is gke");
  });
});
