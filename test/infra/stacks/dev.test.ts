import program from "../../../infra/index";
import * as image from "../../../infra/image";
import { fakeLoadBalancerIp, KIND_NODE_ARCHITECTURE, type MockOverrides } from "../harness/mocks";
import { type RecordedResource, type RecordedRun, unwrapSecrets } from "../harness/recorded-run";
import { recordResources } from "../harness/recording";
import { readStackConfig } from "../harness/stack-config";
import {
  byRow,
  containerImage,
  DEV_RESOURCES,
  DEV_WITHOUT_ISTIO_RESOURCES,
  finished,
  HEAD,
  podSpec,
  rows,
  waitsFor,
} from "./expected";

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
