import type * as pulumi from "@pulumi/pulumi";
import program from "../../../infra/index";
import { type MockOverrides } from "../harness/mocks";
import { recordResources } from "../harness/recording";
import { readStackConfig } from "../harness/stack-config";
import { GCS_MODEL_URI, PROJECT_ID } from "./expected";

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
