import program from "../../../infra/index";
import { fakeLoadBalancerIp } from "../harness/mocks";
import { type RecordedRun } from "../harness/recorded-run";
import { recordResources } from "../harness/recording";
import { readStackConfig } from "../harness/stack-config";
import { byRow, containerImage, existingCluster, HEAD, rows } from "./expected";

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
