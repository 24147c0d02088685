import { parse as parseYaml } from "yaml";
import program from "../../../infra/index";
import { FAKE_GCP_ACCESS_TOKEN, fakeLoadBalancerIp } from "../harness/mocks";
import { type RecordedRun } from "../harness/recorded-run";
import { recordResources } from "../harness/recording";
import { readStackConfig } from "../harness/stack-config";
import { validateKubernetesObject } from "../schemas/kubernetes";
import {
  byRow,
  containerImage,
  GCS_MODEL_URI,
  GKE_CLUSTER_NAME,
  GKE_GCS_MODEL_RESOURCES,
  GKE_RESOURCES,
  HEAD,
  podSpec,
  PROJECT_ID,
  rows,
  secretInput,
  waitsFor,
} from "./expected";

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
