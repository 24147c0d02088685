import type { Stack } from "@pulumi/pulumi/automation";
import { waitFor } from "./control-plane";
import { inlineStack, log } from "./engine-run";
import { type Engine, startEngine, stopEngine } from "./engine-setup";
import { istioCrds } from "./istio-crds";
import { findObject, getObject, KubeApi, listObjects } from "./kube-api";
import { REJECTED_CANARY_VERSION, REJECTED_GATE_MESSAGE } from "./kwok-stages";

/**
 * The canary rollout under the real engine: a `cluster` stack on a cluster that runs Istio
 * already (`istioInstall false`; the test gives the API server hand-written Istio CRDs, and kwok
 * ends the gate's pod, since no container runs). The steps depend on each other and run in order.
 */

const STACK = "engine-canary";
const NS = "mlscore-engine-canary";
const GOLDEN = "service/models/iris.golden.json";
const onOutput = (text: string) => log(text.replace(/\n$/, ""));

/** The stack without a canary: the app (13, as in engine.test.ts) and the route's 4. */
const STABLE_RESOURCES = 17;
/** What a canary adds: its pods' 7, the gate's component and 3, its DestinationRule. */
const CANARY_RESOURCES = 12;

interface Named {
  metadata: { name: string; creationTimestamp: string; labels?: Record<string, string> };
}
interface Deployment extends Named {
  spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } };
  status: { readyReplicas?: number; conditions?: { type: string; status: string }[] };
}
interface Job extends Named {
  status: { completionTime?: string; conditions?: { type: string; status: string }[] };
}
interface Route {
  destination: { host: string };
  weight?: number;
}
interface VirtualService extends Named {
  spec: { http: { name: string; route: Route[] }[] };
}

let engine: Engine | undefined;
let stack: Stack;
let api: KubeApi;

const path = (group: string, plural: string) =>
  group === "" ? `/api/v1/namespaces/${NS}/${plural}` : `/apis/${group}/namespaces/${NS}/${plural}`;
const deployments = () => listObjects<Deployment>(api, path("apps/v1", "deployments"));
const jobs = () => listObjects<Job>(api, path("batch/v1", "jobs"));
const services = () => listObjects<Named>(api, path("", "services"));
const rules = () => listObjects<Named>(api, path("networking.istio.io/v1", "destinationrules"));
const policies = () => listObjects<Named>(api, path("networking.k8s.io/v1", "networkpolicies"));
async function route(): Promise<VirtualService> {
  const [only, ...others] = await listObjects<VirtualService>(
    api,
    path("networking.istio.io/v1", "virtualservices"),
  );
  expect(others).toEqual([]);
  return only;
}

/** Each route's destinations as `host weight`, hosts cut to their Service names. */
function routing(service: VirtualService): Record<string, string[]> {
  return Object.fromEntries(
    service.spec.http.map((http) => [
      http.name,
      http.route.map((r) => `${r.destination.host.split(".")[0]} ${r.weight ?? "-"}`),
    ]),
  );
}

/** The canary Deployment's name, waited for until it has its two pods ready. */
async function readyCanary(): Promise<Deployment> {
  return waitFor("the canary's 2 ready pods", 120, async () => {
    const canary = (await deployments()).find((d) => d.metadata.name.startsWith("scoring-canary-"));
    return canary?.status.readyReplicas === 2 ? canary : undefined;
  });
}

async function outputs(): Promise<Record<string, unknown>> {
  return Object.fromEntries(
    Object.entries(await stack.outputs()).map(([key, output]) => [key, output.value]),
  );
}

const external = process.env.MLSCORE_ENGINE_KUBECONTEXT !== undefined;

beforeAll(async () => {
  if (external) {
    return;
  }
  engine = await startEngine();
  api = engine.plane?.api as KubeApi;
  for (const crd of istioCrds()) {
    await api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd);
  }
  for (const crd of istioCrds()) {
    const name = (crd.metadata as { name: string }).name;
    await waitFor(`CRD ${name} to be established`, 60, async () => {
      const live = await getObject<{
        status?: { conditions?: { type: string; status: string }[] };
      }>(api, `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
      return live.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")
        ? true
        : undefined;
    });
  }
  stack = await inlineStack(STACK, engine.binDir, engine.work, engine.env);
  await stack.setAllConfig({
    target: { value: "cluster" },
    kubeContext: { value: engine.context },
    image: { value: engine.image },
    namespace: { value: NS },
    istioInstall: { value: "false" },
    canaryModelUri: { value: "/app/models/iris.onnx" },
    canaryModelVersion: { value: "2" },
    canaryGoldenRequests: { value: GOLDEN },
  });
}, 100 * 60_000);

afterAll(() => stopEngine(engine), 60_000);

// The kwok stages that end the gate's pod and the CRDs exist only on the test's own control plane.
(external ? describe.skip : describe)("a canary rollout under the real engine", () => {
  let firstCanary: string;

  it("deploys the canary with the policy pack: its pods, the gate, then the route", async () => {
    const up = await stack.up({ ...engine?.policy, onOutput });
    expect(up.summary.resourceChanges).toEqual({ create: STABLE_RESOURCES + CANARY_RESOURCES });
    const canary = await readyCanary();
    firstCanary = canary.metadata.name;
    expect(canary.spec.template.spec.containers[0].env).toEqual(
      expect.arrayContaining([
        { name: "MODEL_URI", value: "/app/models/iris.onnx" },
        { name: "MODEL_NAME", value: "iris" },
        { name: "MODEL_VERSION", value: "2" },
      ]),
    );
    const names = (await deployments()).map((d) => d.metadata.name);
    expect(names).toHaveLength(2);
    expect(names).toEqual(
      expect.arrayContaining([firstCanary, expect.stringMatching(/^scoring-deployment-/)]),
    );
    expect((await services()).map((s) => s.metadata.name)).toContain(firstCanary);
    expect((await policies()).length).toBe(4 + 3 + 1);
    expect((await rules()).length).toBe(2);
  });

  it("ran the gate to completion before the route was written, which splits 90 / 10", async () => {
    const [job] = await jobs();
    expect(job.status.conditions).toContainEqual(
      expect.objectContaining({ type: "Complete", status: "True" }),
    );
    expect(job.metadata.labels?.["app.kubernetes.io/name"]).toBe("mlscore-canary-gate");
    const service = await route();
    // The API server stamps both: the route exists only since the gate completed.
    expect(Date.parse(service.metadata.creationTimestamp)).toBeGreaterThanOrEqual(
      Date.parse(job.status.completionTime as string),
    );
    const stable = (await services()).find((s) => s.metadata.name.startsWith("scoring-service-"));
    expect(routing(service)).toEqual({
      canary: [`${firstCanary} -`],
      stable: [`${stable?.metadata.name} -`],
      scoring: [`${stable?.metadata.name} 90`, `${firstCanary} 10`],
    });
    expect(await outputs()).toMatchObject({
      servedModels: {
        stable: { name: "iris", version: "1" },
        canary: { name: "iris", version: "2" },
      },
      canaryModelUri: "/app/models/iris.onnx",
      trafficWeights: { stable: 90, canary: 10 },
      canaryGate: { job: `${NS}/${job.metadata.name}`, result: "passed", goldenRequests: 1 },
    });
    expect(await outputs()).not.toHaveProperty("endpoint");
  });

  it("fails `up` on a canary whose gate fails, and the route keeps the canary that passed", async () => {
    const before = await route();
    await stack.setConfig("canaryModelVersion", { value: REJECTED_CANARY_VERSION });
    const failed = await stack.up({ ...engine?.policy, onOutput }).catch((error: Error) => error);
    expect(failed).toBeInstanceOf(Error);
    const message = (failed as Error).message;
    expect(message).toContain(REJECTED_GATE_MESSAGE);
    expect(message).toMatch(/canary-gate-job/);
    // The new canary's pods exist, but no request reaches them: the route did not move.
    const names = (await deployments()).map((d) => d.metadata.name);
    expect(names).toHaveLength(3);
    expect(names).toContain(firstCanary);
    const after = await route();
    expect(after.metadata).toMatchObject({ creationTimestamp: before.metadata.creationTimestamp });
    expect(routing(after)).toEqual(routing(before));
  });

  it("asks the gate again at the next `up` (a new Job), which fails again", async () => {
    const failed = async () =>
      (await jobs())
        .filter((j) => j.status.conditions?.some((c) => c.type === "Failed" && c.status === "True"))
        .map((j) => j.metadata.name);
    const before = await failed();
    expect(before).toHaveLength(1);
    const again = await stack.up({ ...engine?.policy, onOutput }).catch((error: Error) => error);
    expect((again as Error).message).toContain(REJECTED_GATE_MESSAGE);
    const after = await failed();
    expect(after).toHaveLength(2);
    expect(after).toEqual(expect.arrayContaining(before));
  });

  it("rolls back with canaryModelUri cleared: every canary object goes, the route sends all to stable", async () => {
    await stack.setConfig("canaryModelUri", { value: "" });
    log(`--- rollback preview:\n${(await stack.preview(engine?.policy)).stdout}`);
    const preview = await stack.preview({ ...engine?.policy, diff: true, onOutput });
    expect(preview.changeSummary).toMatchObject({ update: 1 });
    expect(preview.stdout).not.toMatch(/\breplace\b/);
    const up = await stack.up({ ...engine?.policy, onOutput });
    expect(up.summary.resourceChanges).toMatchObject({ update: 1 });
    const stable = (await deployments()).map((d) => d.metadata.name);
    expect(stable).toEqual([expect.stringMatching(/^scoring-deployment-/)]);
    expect(await jobs()).toEqual([]);
    expect((await rules()).length).toBe(1);
    expect(Object.keys(routing(await route()))).toEqual(["scoring"]);
    expect(await findObject(api, path("", `services/${firstCanary}`))).toBeUndefined();
    const state = (await stack.exportStack()).deployment as { resources: unknown[] };
    expect(state.resources).toHaveLength(STABLE_RESOURCES);
  });

  it("promotes a canary that passed: the stable pods roll in place to its model, the canary goes", async () => {
    await stack.setAllConfig({
      canaryModelUri: { value: "/app/models/iris.onnx" },
      canaryModelVersion: { value: "2" },
    });
    const up = await stack.up({ ...engine?.policy, onOutput });
    expect(up.summary.resourceChanges).toMatchObject({ create: CANARY_RESOURCES, update: 1 });
    await readyCanary();
    const [stableBefore] = (await deployments()).filter((d) =>
      d.metadata.name.startsWith("scoring-deployment-"),
    );

    await stack.setAllConfig({
      modelUri: { value: "/app/models/iris.onnx" },
      modelVersion: { value: "2" },
      canaryModelUri: { value: "" },
    });
    log(`--- promotion preview:\n${(await stack.preview(engine?.policy)).stdout}`);
    const preview = await stack.preview({ ...engine?.policy, diff: true, onOutput });
    expect(preview.changeSummary).toEqual({
      same: STABLE_RESOURCES - 2,
      update: 2,
      delete: CANARY_RESOURCES,
    });
    expect(preview.stdout).not.toMatch(/\breplace\b/);
    const promoted = await stack.up({ ...engine?.policy, onOutput });
    expect(promoted.summary.resourceChanges).toEqual(preview.changeSummary);
    const [stable, ...others] = await deployments();
    expect(others).toEqual([]);
    expect(stable.metadata.name).toBe(stableBefore.metadata.name);
    expect(stable.spec.template.spec.containers[0].env).toEqual(
      expect.arrayContaining([
        { name: "MODEL_URI", value: "/app/models/iris.onnx" },
        { name: "MODEL_VERSION", value: "2" },
      ]),
    );
    expect(await outputs()).toMatchObject({
      servedModels: { stable: { name: "iris", version: "2" } },
    });
  });

  it("destroys everything it made", async () => {
    const destroy = await stack.destroy({ onOutput });
    expect(destroy.summary.resourceChanges).toEqual({ delete: STABLE_RESOURCES });
    await waitFor("the namespace to be deleted", 120, async () =>
      (await findObject(api, `/api/v1/namespaces/${NS}`)) === undefined ? true : undefined,
    );
    await stack.workspace.removeStack(STACK);
  });
});
