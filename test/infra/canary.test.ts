import { readFileSync } from "node:fs";
import * as path from "node:path";
import program from "../../infra/index";
import {
  GATE_TIMEOUT_SECONDS,
  GATE_WAIT_SECONDS,
  GOLDEN_HASH_ANNOTATION,
} from "../../infra/app/canary-gate";
import { DNS_EGRESS } from "../../infra/app/network-policies";
import { CONTAINER_PORT } from "../../infra/app/pod-spec";
import { canaryIdentity, canaryMinReplicas } from "../../infra/app/scoring-app";
import { PUBLIC_ROUTES } from "../../infra/platform/ingress-route";
import { VARIANT_HEADER } from "../../infra/platform/variant-header";
import { FAKE_JOB_COMPLETION } from "./harness/mocks";
import { type RecordedResource, type RecordedRun, unwrapSecrets } from "./harness/recorded-run";
import { recordResources } from "./harness/recording";
import { readStackConfig, REPO_ROOT } from "./harness/stack-config";
import { validateKubernetesObject } from "./schemas/kubernetes";
import { assertPodPolicy } from "./schemas/policy";

const GOLDEN = "service/models/iris.golden.json";
const V2_URI = "https://models.example.com/iris/v2.onnx";
const V2_SHA = "2".repeat(64);
const V3_URI = "https://models.example.com/iris/v3.onnx";
const PROJECT_ID = "mlscore-canary-test";

/** A canary of iris version 2 at the default weight. */
const CANARY = {
  canaryModelUri: V2_URI,
  canaryModelVersion: "2",
  canaryModelSha256: V2_SHA,
  canaryGoldenRequests: GOLDEN,
};
const IDENTITY = canaryIdentity({ uri: V2_URI, sha256: V2_SHA, name: "iris", version: "2" });

const T = {
  deployment: "kubernetes:apps/v1:Deployment",
  service: "kubernetes:core/v1:Service",
  hpa: "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
  pdb: "kubernetes:policy/v1:PodDisruptionBudget",
  policy: "kubernetes:networking.k8s.io/v1:NetworkPolicy",
  configMap: "kubernetes:core/v1:ConfigMap",
  secret: "kubernetes:core/v1:Secret",
  job: "kubernetes:batch/v1:Job",
  virtualService: "kubernetes:networking.istio.io/v1:VirtualService",
  destinationRule: "kubernetes:networking.istio.io/v1:DestinationRule",
  podMonitoring: "kubernetes:monitoring.googleapis.com/v1:PodMonitoring",
} as const;

/** What a canary adds to a stack: its pods and what guards them, its gate, its route's rule. */
const CANARY_RESOURCES = [
  `${T.deployment} scoring-canary-deployment`,
  `${T.service} scoring-canary-service`,
  `${T.hpa} scoring-canary-autoscaler`,
  `${T.pdb} scoring-canary-disruption-budget`,
  `${T.policy} scoring-canary-allow-ingress`,
  `${T.policy} scoring-canary-allow-dns`,
  `${T.policy} scoring-canary-allow-model-store`,
  "mlscore:index:CanaryGate canary-gate",
  `${T.configMap} canary-gate-golden`,
  `${T.policy} canary-gate-egress`,
  `${T.job} canary-gate-job`,
  `${T.destinationRule} ingress-canary-destination-rule`,
];

function names(run: RecordedRun): string[] {
  return run.resources.map((r) => `${r.type} ${r.name}`);
}

function dev(config: Record<string, unknown> = {}): Promise<RecordedRun> {
  return recordResources(program, {
    stack: "dev",
    config: { ...readStackConfig("dev"), ...config },
  });
}

function gke(config: Record<string, unknown> = {}): Promise<RecordedRun> {
  return recordResources(program, {
    stack: "gke",
    config: { ...readStackConfig("gke"), "gcp:project": PROJECT_ID, ...config },
  });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

function spec(resource: RecordedResource): Json {
  return unwrapSecrets(resource.inputs.spec);
}

function env(deployment: RecordedResource): Record<string, unknown> {
  const container = spec(deployment).template.spec.containers[0];
  return Object.fromEntries(
    (container.env as { name: string; value?: string; valueFrom?: unknown }[]).map((e) => [
      e.name,
      e.value ?? e.valueFrom,
    ]),
  );
}

function objectName(resource: RecordedResource): string {
  return (resource.state.metadata as { name: string }).name;
}

/** Whether `dependent` names `dependency` among its own (direct) dependencies. */
function dependsDirectly(dependent: RecordedResource, dependency: RecordedResource): boolean {
  return dependent.dependencies.includes(dependency.urn);
}

describe("dev stack with a canary", () => {
  let run: RecordedRun;
  let stable: RecordedRun;
  beforeAll(async () => {
    run = await dev(CANARY);
    stable = await dev();
  });

  it("declares the stack without a canary plus exactly the canary's resources", () => {
    expect(names(run).sort()).toEqual([...names(stable), ...CANARY_RESOURCES].sort());
  });

  it("declares only objects valid against the upstream schemas and pods the policy allows", () => {
    for (const { object } of run.kubernetesObjects()) {
      expect(() => validateKubernetesObject(object)).not.toThrow();
      expect(() => assertPodPolicy(object)).not.toThrow();
    }
  });

  it("runs the canary from the same image, its model, named after the model's identity", () => {
    const deployment = run.one(T.deployment, "scoring-canary-deployment");
    const stableDeployment = run.one(T.deployment, "scoring-deployment");
    expect(spec(deployment).template.spec.containers[0].image).toBe(
      spec(stableDeployment).template.spec.containers[0].image,
    );
    expect(objectName(deployment)).toBe(`scoring-canary-${IDENTITY}`);
    expect(IDENTITY).toMatch(/^[0-9a-f]{10}$/);
    expect(env(deployment)).toMatchObject({
      MODEL_URI: V2_URI,
      MODEL_NAME: "iris",
      MODEL_VERSION: "2",
      MODEL_SHA256: V2_SHA,
    });
    expect(env(stableDeployment)).not.toHaveProperty("MODEL_URI");
    expect(env(stableDeployment)).not.toHaveProperty("MODEL_SHA256");
  });

  it("gives the canary none of the stable model's settings: a pinned stable digest stays its own", async () => {
    const pinned = await dev({ ...CANARY, modelSha256: "1".repeat(64), canaryModelSha256: "" });
    expect(env(pinned.one(T.deployment, "scoring-deployment"))).toMatchObject({
      MODEL_SHA256: "1".repeat(64),
    });
    expect(env(pinned.one(T.deployment, "scoring-canary-deployment"))).not.toHaveProperty(
      "MODEL_SHA256",
    );
  });

  it("selects only the canary's pods of this identity, and the stable pods only their own", () => {
    const deployment = spec(run.one(T.deployment, "scoring-canary-deployment"));
    const podLabels = {
      "app.kubernetes.io/name": "mlscore-scoring",
      "app.kubernetes.io/instance": "scoring-canary",
      "mlscore.dev/canary": IDENTITY,
    };
    expect(deployment.selector.matchLabels).toEqual(podLabels);
    expect(deployment.template.metadata.labels).toMatchObject(podLabels);
    const service = run.one(T.service, "scoring-canary-service");
    expect(objectName(service)).toBe(`scoring-canary-${IDENTITY}`);
    expect(spec(service)).toMatchObject({ type: "ClusterIP", selector: podLabels });
    expect(spec(run.one(T.service, "scoring-service")).selector).toEqual({
      "app.kubernetes.io/name": "mlscore-scoring",
      "app.kubernetes.io/instance": "scoring",
    });
  });

  it("scales the canary between two pods and the stable ceiling, guarded by its own budget", () => {
    const deployment = run.one(T.deployment, "scoring-canary-deployment");
    expect(spec(deployment).replicas).toBe(2);
    expect(deployment.ignoreChanges).toEqual(["spec.replicas"]);
    const hpa = spec(run.one(T.hpa, "scoring-canary-autoscaler"));
    expect(hpa).toMatchObject({ minReplicas: 2, maxReplicas: 4 });
    expect(hpa.scaleTargetRef.name).toBe(objectName(deployment));
    // Across identities: an old canary's pods stay guarded while a new one starts.
    expect(spec(run.one(T.pdb, "scoring-canary-disruption-budget"))).toEqual({
      maxUnavailable: 1,
      selector: {
        matchLabels: {
          "app.kubernetes.io/name": "mlscore-scoring",
          "app.kubernetes.io/instance": "scoring-canary",
        },
      },
    });
    expect([1, 2, 3, 5].map(canaryMinReplicas)).toEqual([1, 2, 2, 2]);
  });

  it("extends the network policies to the canary: the gateway in, DNS and its model store out", () => {
    const ingress = spec(run.one(T.policy, "scoring-canary-allow-ingress"));
    expect(ingress.podSelector.matchLabels["app.kubernetes.io/instance"]).toBe("scoring-canary");
    expect(JSON.stringify(ingress.ingress)).toContain(
      '"kubernetes.io/metadata.name":"istio-ingress"',
    );
    expect(spec(run.one(T.policy, "scoring-canary-allow-model-store")).egress).toEqual([
      expect.objectContaining({ ports: [{ protocol: "TCP", port: 443 }] }),
    ]);
    // The stable model is built in: its pods still reach no model store.
    expect(spec(run.one(T.policy, "scoring-allow-model-store")).egress).toEqual([]);
  });

  it("runs the gate as a Job of the same image with the golden requests, after the canary is ready", () => {
    const job = run.one(T.job, "canary-gate-job");
    const pod = spec(job).template.spec;
    const container = pod.containers[0];
    expect(spec(job)).toMatchObject({
      backoffLimit: 0,
      activeDeadlineSeconds: GATE_WAIT_SECONDS + GATE_TIMEOUT_SECONDS + 60,
    });
    expect(pod.restartPolicy).toBe("Never");
    expect(container.image).toBe(
      spec(run.one(T.deployment, "scoring-deployment")).template.spec.containers[0].image,
    );
    expect(container.args).toEqual(["dist/gate.js"]);
    const service = objectName(run.one(T.service, "scoring-canary-service"));
    expect(Object.fromEntries(container.env.map((e: Json) => [e.name, e.value]))).toEqual({
      GATE_URL: `http://${service}.mlscore.svc.cluster.local:80`,
      GATE_MODEL_NAME: "iris",
      GATE_MODEL_VERSION: "2",
      GATE_GOLDEN_FILE: "/etc/mlscore/golden/golden.json",
      GATE_WAIT_SECONDS: String(GATE_WAIT_SECONDS),
      GATE_TIMEOUT_SECONDS: String(GATE_TIMEOUT_SECONDS),
    });
    expect(container).not.toHaveProperty("readinessProbe");
    expect(container.terminationMessagePolicy).toBe("FallbackToLogsOnError");
    const golden = run.one(T.configMap, "canary-gate-golden");
    expect(golden.inputs.data).toEqual({
      "golden.json": readFileSync(path.join(REPO_ROOT, GOLDEN), "utf8"),
    });
    expect(pod.volumes).toEqual([{ name: "golden", configMap: { name: objectName(golden) } }]);
    for (const name of ["scoring-canary-deployment", "scoring-canary-service"]) {
      const ready = run.resources.find((r) => r.name === name) as RecordedResource;
      expect([name, run.waitsFor(job, ready)]).toEqual([name, true]);
    }
    expect(run.waitsFor(job, run.one(T.policy, "canary-gate-egress"))).toBe(true);
  });

  it("lets the gate reach the canary's pods and DNS, nothing else", () => {
    const egress = spec(run.one(T.policy, "canary-gate-egress"));
    expect(egress.podSelector.matchLabels["app.kubernetes.io/name"]).toBe("mlscore-canary-gate");
    expect(egress.policyTypes).toEqual(["Egress"]);
    expect(egress.egress).toEqual([
      {
        to: [
          {
            podSelector: {
              matchLabels: {
                "app.kubernetes.io/name": "mlscore-scoring",
                "app.kubernetes.io/instance": "scoring-canary",
                "mlscore.dev/canary": IDENTITY,
              },
            },
          },
        ],
        ports: [{ protocol: "TCP", port: CONTAINER_PORT }],
      },
      DNS_EGRESS,
    ]);
    // The gate's pod matches none of the scoring policies' selectors.
    const gateLabels = spec(run.one(T.job, "canary-gate-job")).template.metadata.labels;
    expect(gateLabels["app.kubernetes.io/name"]).not.toBe("mlscore-scoring");
  });

  it("splits 90 / 10 and pins a request to a side by its header, on the public paths only", () => {
    const http = spec(run.one(T.virtualService, "ingress-virtual-service")).http as Json[];
    const host = (name: string) =>
      `${objectName(run.one(T.service, name))}.mlscore.svc.cluster.local`;
    expect(http.map((route) => [route.name, route.route])).toEqual([
      ["canary", [{ destination: { host: host("scoring-canary-service"), port: { number: 80 } } }]],
      ["stable", [{ destination: { host: host("scoring-service"), port: { number: 80 } } }]],
      [
        "scoring",
        [
          { destination: { host: host("scoring-service"), port: { number: 80 } }, weight: 90 },
          {
            destination: { host: host("scoring-canary-service"), port: { number: 80 } },
            weight: 10,
          },
        ],
      ],
    ]);
    for (const [route, variant] of [
      [http[0], "canary"],
      [http[1], "stable"],
    ]) {
      expect(route.match).toEqual(
        PUBLIC_ROUTES.map((uri) => ({ uri, headers: { [VARIANT_HEADER]: { exact: variant } } })),
      );
    }
    expect(http[2].match).toEqual(PUBLIC_ROUTES.map((uri) => ({ uri })));
    for (const route of http) {
      expect(route.retries.retryOn).toBe("connect-failure,refused-stream,reset-before-request");
    }
  });

  it("moves the weights only after the gate: the route and the canary's rule wait for the Job", () => {
    const job = run.one(T.job, "canary-gate-job");
    const route = run.one(T.virtualService, "ingress-virtual-service");
    const rule = run.one(T.destinationRule, "ingress-canary-destination-rule");
    expect(dependsDirectly(route, job)).toBe(true);
    expect(dependsDirectly(rule, job)).toBe(true);
    expect(dependsDirectly(route, rule)).toBe(true);
    expect(run.resources.indexOf(job)).toBeLessThan(run.resources.indexOf(route));
    // Nothing of the stable side waits for the canary.
    for (const name of ["ingress-gateway", "ingress-destination-rule", "scoring-deployment"]) {
      const resource = run.resources.find((r) => r.name === name) as RecordedResource;
      expect([name, run.waitsFor(resource, job)]).toEqual([name, false]);
    }
    expect(spec(rule).host).toBe(
      `${objectName(run.one(T.service, "scoring-canary-service"))}.mlscore.svc.cluster.local`,
    );
  });

  it("exports both models, the weights and the gate's result", () => {
    expect(run.outputs).toMatchObject({
      modelUri: "/app/models/iris.onnx",
      canaryModelUri: V2_URI,
      servedModels: {
        stable: { name: "iris", version: "1" },
        canary: { name: "iris", version: "2" },
      },
      trafficWeights: { stable: 90, canary: 10 },
      canaryGate: {
        job: `mlscore/${objectName(run.one(T.job, "canary-gate-job"))}`,
        result: "passed",
        goldenRequests: 1,
        completedAt: FAKE_JOB_COMPLETION,
      },
    });
    expect(run.secretOutputs).toEqual(new Set());
  });
});

describe("gke stack with a gs:// canary beside a gs:// model", () => {
  let run: RecordedRun;
  beforeAll(async () => {
    run = await gke({
      modelUri: "gs://models-bucket/iris/v1.onnx",
      ...CANARY,
      canaryModelUri: "gs://models-bucket/iris/v2.onnx",
      canaryWeight: 25,
    });
  });

  it("adds the canary's resources and its PodMonitoring to the gke stack's", async () => {
    const plain = await gke({ modelUri: "gs://models-bucket/iris/v1.onnx" });
    expect(names(run).sort()).toEqual(
      [
        ...names(plain),
        ...CANARY_RESOURCES,
        `${T.podMonitoring} scoring-canary-pod-monitoring`,
      ].sort(),
    );
  });

  it("spreads the canary's two pods over two nodes as a rule, as the gke stack does its own", () => {
    const pod = spec(run.one(T.deployment, "scoring-canary-deployment")).template.spec;
    expect(pod.topologySpreadConstraints).toEqual([
      expect.objectContaining({ whenUnsatisfiable: "DoNotSchedule", minDomains: 2 }),
    ]);
    expect(spec(run.one(T.hpa, "scoring-canary-autoscaler"))).toMatchObject({
      minReplicas: 2,
      maxReplicas: 5,
    });
  });

  it("lets the canary read its bucket through the pods' one Google identity", () => {
    expect(
      run.ofType("gcp:storage/bucketIAMMember:BucketIAMMember").map((g) => g.inputs.bucket),
    ).toEqual(["models-bucket"]);
    const canaryPod = spec(run.one(T.deployment, "scoring-canary-deployment")).template.spec;
    expect(canaryPod.serviceAccountName).toBe("mlscore-scoring");
    expect(JSON.stringify(spec(run.one(T.policy, "scoring-canary-allow-model-store")))).toContain(
      "169.254.169.252/32",
    );
  });

  it("splits 75 / 25 and declares only valid objects", () => {
    const http = spec(run.one(T.virtualService, "ingress-virtual-service")).http as Json[];
    expect(http[2].route.map((d: Json) => d.weight)).toEqual([75, 25]);
    expect(run.outputs.trafficWeights).toEqual({ stable: 75, canary: 25 });
    for (const { object } of run.kubernetesObjects()) {
      expect(() => validateKubernetesObject(object)).not.toThrow();
      expect(() => assertPodPolicy(object)).not.toThrow();
    }
  });
});

describe("gke stack: a gs:// canary beside a model from elsewhere", () => {
  it("gives the pods a Google identity for the canary's bucket", async () => {
    const run = await gke({ ...CANARY, canaryModelUri: "gs://canaries/iris/v2.onnx" });
    expect(
      run.ofType("gcp:storage/bucketIAMMember:BucketIAMMember").map((g) => g.inputs.bucket),
    ).toEqual(["canaries"]);
  });
});

describe("a canary URI holding a credential", () => {
  it("stays secret in the outputs and reaches the canary's pods only through a Secret", async () => {
    const presigned = `${V2_URI}?X-Goog-Signature=0123abcd`;
    const run = await dev({ ...CANARY, canaryModelUri: presigned });
    expect(run.secretOutputs).toEqual(new Set(["canaryModelUri"]));
    const source = run.one(T.secret, "scoring-canary-model-source");
    expect(unwrapSecrets(source.inputs.stringData)).toEqual({ MODEL_URI: presigned });
    const leaks = run.resources
      .filter((r) => r !== source && JSON.stringify(r.inputs).includes("X-Goog-Signature"))
      .map((r) => r.name);
    expect(leaks).toEqual([]);
    // The signature is not the model: re-signing keeps the canary's identity and its pods' names.
    const identity = (uri: string) =>
      canaryIdentity({ uri, sha256: V2_SHA, name: "iris", version: "2" });
    expect(objectName(run.one(T.deployment, "scoring-canary-deployment"))).toBe(
      `scoring-canary-${identity(presigned)}`,
    );
    expect(identity(`${V2_URI}?X-Goog-Signature=4567ef`)).toBe(identity(presigned));
    expect(identity(V3_URI)).not.toBe(identity(V2_URI));
  });
});

describe("an s3:// canary beside a model from elsewhere", () => {
  it("gives the S3 keys and the store's egress to the canary's pods only", async () => {
    const run = await recordResources(program, {
      stack: "dev",
      config: {
        ...readStackConfig("dev"),
        ...CANARY,
        canaryModelUri: "s3://models/iris-v2.onnx",
        s3Endpoint: "http://minio.minio.svc:9000",
        s3AccessKeyId: "minio",
        s3SecretAccessKey: "minio-secret",
      },
      secretKeys: ["s3SecretAccessKey"],
    });
    const canaryEnv = env(run.one(T.deployment, "scoring-canary-deployment"));
    expect(canaryEnv).toMatchObject({
      MODEL_URI: "s3://models/iris-v2.onnx",
      AWS_REGION: "us-east-1",
      AWS_ENDPOINT_URL_S3: "http://minio.minio.svc:9000",
    });
    const keys = run.one(T.secret, "scoring-canary-model-store-keys");
    expect(unwrapSecrets(keys.inputs.stringData)).toEqual({
      AWS_ACCESS_KEY_ID: "minio",
      AWS_SECRET_ACCESS_KEY: "minio-secret",
    });
    const stableEnv = env(run.one(T.deployment, "scoring-deployment"));
    expect(Object.keys(stableEnv).filter((key) => key.startsWith("AWS_"))).toEqual([]);
    expect(run.resources.filter((r) => r.name === "scoring-model-store-keys")).toEqual([]);
    const egress = (name: string) =>
      (run.one(T.policy, name).state.spec as { egress: { to: unknown; ports: unknown }[] }).egress;
    expect(egress("scoring-canary-allow-model-store")).toEqual([
      {
        to: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "minio" } } }],
        ports: [{ protocol: "TCP", port: 9000 }],
      },
    ]);
  });
});

describe("a canary config the program refuses", () => {
  it.each([
    [{ istioEnabled: false }, "mlscore:canaryModelUri needs mlscore:istioEnabled true"],
    [{ canaryGoldenRequests: "" }, "mlscore:canaryGoldenRequests is required with a canary"],
    [{ canaryModelVersion: "1" }, "mlscore:canaryModelVersion must differ from the stable model's"],
  ])("%j: before any resource is declared", async (change, message) => {
    const registered: string[] = [];
    await expect(
      recordResources(program, {
        stack: "dev",
        config: { ...readStackConfig("dev"), ...CANARY, ...change },
        mocks: {
          newResource: (args) => {
            registered.push(args.type);
            return undefined;
          },
        },
      }),
    ).rejects.toThrow(message);
    expect(registered.filter((type) => type !== "pulumi:pulumi:Stack")).toEqual([]);
  });
});

/** How one resource's inputs differ between two runs: the leaf paths that changed. */
function changedPaths(before: unknown, after: unknown, at = ""): string[] {
  if (JSON.stringify(before) === JSON.stringify(after)) {
    return [];
  }
  const isObject = (v: unknown) => typeof v === "object" && v !== null;
  if (!isObject(before) || !isObject(after) || Array.isArray(before) !== Array.isArray(after)) {
    return [at];
  }
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].flatMap((key) =>
    changedPaths(
      (before as Record<string, unknown>)[key],
      (after as Record<string, unknown>)[key],
      Array.isArray(before) ? `${at}[${key}]` : at ? `${at}.${key}` : key,
    ),
  );
}

/** The preview between two programs: resources created, deleted, and changed with their paths. */
function diffRuns(before: RecordedRun, after: RecordedRun) {
  const key = (r: RecordedResource) => `${r.type} ${r.name}`;
  const old = new Map(before.resources.map((r) => [key(r), r]));
  const now = new Map(after.resources.map((r) => [key(r), r]));
  const changed: Record<string, string[]> = {};
  for (const [k, r] of now) {
    const was = old.get(k);
    const paths = was ? changedPaths(unwrapSecrets(was.inputs), unwrapSecrets(r.inputs)) : [];
    if (paths.length > 0) {
      changed[k] = paths;
    }
  }
  return {
    created: [...now.keys()].filter((k) => !old.has(k)).sort(),
    deleted: [...old.keys()].filter((k) => !now.has(k)).sort(),
    changed,
  };
}

describe("promotion and rollback, as the previews between two programs", () => {
  let withCanary: RecordedRun;
  beforeAll(async () => {
    withCanary = await dev(CANARY);
  });

  it("rollback (canaryModelUri cleared): the canary's objects go, the route sends all to stable, the stable pods stay", async () => {
    const rolledBack = await dev({ ...CANARY, canaryModelUri: "" });
    const diff = diffRuns(withCanary, rolledBack);
    expect(diff.created).toEqual([]);
    expect(diff.deleted).toEqual([...CANARY_RESOURCES].sort());
    expect(Object.keys(diff.changed)).toEqual([`${T.virtualService} ingress-virtual-service`]);
    expect(spec(rolledBack.one(T.virtualService, "ingress-virtual-service")).http).toEqual(
      spec((await dev()).one(T.virtualService, "ingress-virtual-service")).http,
    );
  });

  it("promotion (the stable model set to the canary's, canaryModelUri cleared): the stable pods roll in place to it", async () => {
    // The canary answered as "iris"; a file named v2.onnx would be served as "v2" unless named.
    const promoted = await dev({
      ...CANARY,
      modelUri: V2_URI,
      modelName: "iris",
      modelVersion: "2",
      modelSha256: V2_SHA,
      canaryModelUri: "",
    });
    const diff = diffRuns(withCanary, promoted);
    expect(diff.created).toEqual([]);
    expect(diff.deleted).toEqual([...CANARY_RESOURCES].sort());
    expect(Object.keys(diff.changed).sort()).toEqual(
      [
        `${T.deployment} scoring-deployment`,
        `${T.policy} scoring-allow-model-store`,
        `${T.virtualService} ingress-virtual-service`,
      ].sort(),
    );
    // Only the model's environment: same name and selector, so an update, not a replacement,
    // rolled one pod at a time without going below the wanted count.
    const deploymentChanges = diff.changed[`${T.deployment} scoring-deployment`];
    expect(
      deploymentChanges.every((p) => p.startsWith("spec.template.spec.containers[0].env")),
    ).toBe(true);
    const deployment = promoted.one(T.deployment, "scoring-deployment");
    expect(env(deployment)).toMatchObject({
      MODEL_URI: V2_URI,
      MODEL_VERSION: "2",
      MODEL_SHA256: V2_SHA,
    });
    expect(spec(deployment).strategy.rollingUpdate).toEqual({ maxUnavailable: 0, maxSurge: 1 });
    // What the canary answered as is now the stable model's.
    expect(promoted.outputs.servedModels).toEqual({
      stable: (withCanary.outputs.servedModels as Json).canary,
    });
    expect(promoted.outputs).not.toHaveProperty("trafficWeights");
  });

  it("promotion that forgets the canary's name shows it in the preview, as the served name's change", async () => {
    const renamed = await dev({
      ...CANARY,
      modelUri: V2_URI,
      modelVersion: "2",
      canaryModelUri: "",
    });
    expect(renamed.outputs.servedModels).toEqual({ stable: { name: "v2", version: "2" } });
  });

  it("a new canary model: a new Deployment, Service and gate run, while the route waits for the gate", async () => {
    const next = await dev({
      ...CANARY,
      canaryModelUri: V3_URI,
      canaryModelVersion: "3",
      canaryModelSha256: "",
    });
    const diff = diffRuns(withCanary, next);
    expect(diff.created).toEqual([]);
    expect(diff.deleted).toEqual([]);
    // A new name is a new object: Pulumi creates it, then deletes the old one at the end.
    for (const name of ["scoring-canary-deployment", "scoring-canary-service"]) {
      const type = name.endsWith("deployment") ? T.deployment : T.service;
      expect(diff.changed[`${type} ${name}`]).toContain("metadata.name");
    }
    // A Job cannot change: its pod template changed, so Pulumi replaces it and the gate runs again.
    expect(diff.changed[`${T.job} canary-gate-job`]).toEqual(
      expect.arrayContaining([expect.stringMatching(/^spec\.template\./)]),
    );
    expect(Object.keys(diff.changed)).toEqual(
      expect.arrayContaining([
        `${T.virtualService} ingress-virtual-service`,
        `${T.destinationRule} ingress-canary-destination-rule`,
      ]),
    );
    expect(Object.keys(diff.changed)).not.toContain(`${T.pdb} scoring-canary-disruption-budget`);
    expect(Object.keys(diff.changed)).not.toContain(`${T.deployment} scoring-deployment`);
    const job = next.one(T.job, "canary-gate-job");
    expect(dependsDirectly(next.one(T.virtualService, "ingress-virtual-service"), job)).toBe(true);
  });

  it("new golden requests alone run the gate again, with nothing else changed", async () => {
    const file = "test/fixtures/golden/iris-setosa.json";
    const diff = diffRuns(withCanary, await dev({ ...CANARY, canaryGoldenRequests: file }));
    expect(diff.changed).toEqual({
      [`${T.configMap} canary-gate-golden`]: ["data.golden.json"],
      [`${T.job} canary-gate-job`]: [
        `spec.template.metadata.annotations.${GOLDEN_HASH_ANNOTATION}`,
      ],
    });
  });

  it("a weight change moves only the route", async () => {
    const diff = diffRuns(withCanary, await dev({ ...CANARY, canaryWeight: 50 }));
    expect(diff.changed).toEqual({
      [`${T.virtualService} ingress-virtual-service`]: [
        "spec.http[2].route[0].weight",
        "spec.http[2].route[1].weight",
      ],
    });
  });
});

describe("cluster stack on a cluster that runs Istio already", () => {
  const image = `registry.example.com/mlscore@sha256:${"0123456789abcdef".repeat(4)}`;
  let run: RecordedRun;
  beforeAll(async () => {
    run = await recordResources(program, {
      stack: "cluster",
      config: {
        ...readStackConfig("cluster"),
        target: "cluster",
        image,
        istioInstall: false,
        istioGatewayNamespace: "istio-system",
        ...CANARY,
      },
    });
  });

  it("installs no Istio and owns no gateway, but routes through the cluster's own", () => {
    expect(run.resources.filter((r) => r.type === "mlscore:index:Istio")).toEqual([]);
    expect(run.ofType("kubernetes:helm.sh/v3:Release")).toEqual([]);
    expect(
      run
        .ofType(T.service)
        .map((s) => s.name)
        .sort(),
    ).toEqual(["scoring-canary-service", "scoring-service"]);
    expect(
      run.one("kubernetes:networking.istio.io/v1:Gateway", "ingress-gateway").inputs.spec,
    ).toMatchObject({
      selector: { istio: "ingressgateway" },
    });
    for (const name of ["scoring-allow-ingress", "scoring-canary-allow-ingress"]) {
      expect(JSON.stringify(spec(run.one(T.policy, name)))).toContain(
        '"kubernetes.io/metadata.name":"istio-system"',
      );
    }
  });

  it("exports no endpoint, which belongs to the cluster's gateway, and everything else", () => {
    expect(run.outputs).not.toHaveProperty("endpoint");
    expect(run.outputs).toMatchObject({ trafficWeights: { stable: 90, canary: 10 } });
    for (const { object } of run.kubernetesObjects()) {
      expect(() => validateKubernetesObject(object)).not.toThrow();
    }
  });
});
