import * as k8s from "@pulumi/kubernetes";
import {
  CONTAINER_PORT,
  PRE_STOP_SLEEP_SECONDS,
  PRIVATE_RANGES,
  SERVICE_ACCOUNT_NAME,
  SHUTDOWN_GRACE_SECONDS,
  ScoringApp,
  type ScoringAppArgs,
  checkImagePinned,
  isRemoteModelUri,
  modelStoreEgress,
} from "../../infra/app/scoring-app";
import {
  fakeLoadBalancerIp,
  recordResources,
  type RecordedResource,
  type RecordedRun,
} from "./harness";
import { validateKubernetesObject } from "./schemas/kubernetes";
import { assertPodPolicy } from "./schemas/policy";

const DIGEST = "a".repeat(64);
const IMAGE = `localhost:5001/mlscore-service@sha256:${DIGEST}`;

const GSA_EMAIL = "mlscore-scoring@mlscore-test-project.iam.gserviceaccount.com";

const BASE_ARGS: ScoringAppArgs = {
  namespace: "mlscore",
  image: IMAGE,
  replicas: 2,
  minReplicas: 2,
  maxReplicas: 6,
  targetCpuUtilization: 70,
  cpuRequest: "250m",
  cpuLimit: "1",
  memoryRequest: "256Mi",
  memoryLimit: "512Mi",
  serviceType: "ClusterIP",
};

/** Runs the component as the real program does: a provider in opts, nothing else. */
function runApp(args: ScoringAppArgs): Promise<RecordedRun> {
  return recordResources(() => {
    const provider = new k8s.Provider("kind", { context: "kind-mlscore" });
    const app = new ScoringApp("scoring", args, { providers: { kubernetes: provider } });
    return {
      namespace: app.namespace,
      serviceName: app.serviceName,
      serviceHost: app.serviceHost,
      servicePort: app.servicePort,
      endpoint: app.endpoint,
      serviceAccountName: app.serviceAccountName,
    };
  });
}

interface PodTemplate {
  metadata: { labels: Record<string, string> };
  spec: {
    terminationGracePeriodSeconds: number;
    serviceAccountName?: string;
    automountServiceAccountToken: boolean;
    securityContext: Record<string, unknown>;
    topologySpreadConstraints: Array<Record<string, unknown>>;
    volumes: Array<Record<string, unknown>>;
    containers: Array<{
      name: string;
      image: string;
      ports: Array<{ name: string; containerPort: number }>;
      env: Array<{ name: string; value: string }>;
      readinessProbe: { httpGet: { path: string; port: string } };
      livenessProbe: { httpGet: { path: string; port: string } };
      startupProbe: { httpGet: { path: string; port: string } };
      lifecycle: { preStop: { sleep: { seconds: number } } };
      resources: { requests: Record<string, string>; limits: Record<string, string> };
      volumeMounts: Array<{ name: string; mountPath: string }>;
    }>;
  };
}

function podTemplate(deployment: RecordedResource): PodTemplate {
  return (deployment.inputs.spec as { template: PodTemplate }).template;
}

function spec<T>(resource: RecordedResource): T {
  return resource.inputs.spec as T;
}

const TYPES = {
  namespace: "kubernetes:core/v1:Namespace",
  serviceAccount: "kubernetes:core/v1:ServiceAccount",
  deployment: "kubernetes:apps/v1:Deployment",
  service: "kubernetes:core/v1:Service",
  hpa: "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
  pdb: "kubernetes:policy/v1:PodDisruptionBudget",
  networkPolicy: "kubernetes:networking.k8s.io/v1:NetworkPolicy",
} as const;

describe("ScoringApp behind a gateway with a remote model", () => {
  let run: RecordedRun;
  let deployment: RecordedResource;
  let service: RecordedResource;
  const gatewayArgs: ScoringAppArgs = {
    ...BASE_ARGS,
    modelUri: "gs://models/iris/model.onnx",
    modelName: "iris",
    ingressFromNamespace: "istio-ingress",
    gcpServiceAccount: GSA_EMAIL,
  };

  beforeAll(async () => {
    run = await runApp(gatewayArgs);
    deployment = run.one(TYPES.deployment, "scoring-deployment");
    service = run.one(TYPES.service, "scoring-service");
  });

  it("declares exactly the app's resources, all children of the component", () => {
    const component = run.one("mlscore:index:ScoringApp", "scoring");
    const children = run.childrenOf(component).map((r) => `${r.type} ${r.name}`);
    expect(children.sort()).toEqual(
      [
        `${TYPES.namespace} scoring-namespace`,
        `${TYPES.serviceAccount} scoring-service-account`,
        `${TYPES.deployment} scoring-deployment`,
        `${TYPES.service} scoring-service`,
        `${TYPES.hpa} scoring-autoscaler`,
        `${TYPES.pdb} scoring-disruption-budget`,
        `${TYPES.networkPolicy} scoring-deny-all`,
        `${TYPES.networkPolicy} scoring-allow-ingress`,
        `${TYPES.networkPolicy} scoring-allow-dns`,
        `${TYPES.networkPolicy} scoring-allow-model-store`,
      ].sort(),
    );
  });

  it("sends every child to the cluster provider given to the component", () => {
    const provider = run.one("pulumi:providers:kubernetes", "kind");
    const component = run.one("mlscore:index:ScoringApp", "scoring");
    for (const child of run.childrenOf(component)) {
      expect(run.effectiveProvider(child)?.urn).toBe(provider.urn);
    }
  });

  it("puts every namespaced object in the namespace it creates, which enforces restricted", () => {
    const namespace = run.one(TYPES.namespace, "scoring-namespace");
    const labels = (namespace.inputs.metadata as { name: string; labels: Record<string, string> })
      .labels;
    expect((namespace.inputs.metadata as { name: string }).name).toBe("mlscore");
    expect(labels["pod-security.kubernetes.io/enforce"]).toBe("restricted");
    expect(labels["mlscore.dev/network-policy"]).toBe("isolated");
    for (const { resource, object } of run.kubernetesObjects()) {
      if (resource.type !== TYPES.namespace) {
        expect(object.metadata?.namespace).toBe("mlscore");
        // Deleted before the namespace on destroy, so the namespace never sticks terminating.
        expect(run.waitsFor(resource, namespace)).toBe(true);
      }
    }
  });

  it("selects its own pods in the Deployment, Service, budget and spread constraint", () => {
    const podLabels = podTemplate(deployment).metadata.labels;
    const selector = spec<{ selector: { matchLabels: Record<string, string> } }>(deployment)
      .selector.matchLabels;
    expect(Object.keys(selector).length).toBeGreaterThan(0);
    expect(podLabels).toMatchObject(selector);
    expect(spec<{ selector: Record<string, string> }>(service).selector).toEqual(selector);
    const pdb = run.one(TYPES.pdb, "scoring-disruption-budget");
    expect(spec<{ selector: { matchLabels: unknown } }>(pdb).selector.matchLabels).toEqual(
      selector,
    );
    const spread = podTemplate(deployment).spec.topologySpreadConstraints;
    expect(spread).toEqual([
      expect.objectContaining({
        topologyKey: "kubernetes.io/hostname",
        whenUnsatisfiable: "ScheduleAnyway",
        labelSelector: { matchLabels: selector },
      }),
    ]);
  });

  it("runs the pods as their own ServiceAccount, bound to the given Google service account", () => {
    const account = run.one(TYPES.serviceAccount, "scoring-service-account");
    expect(account.inputs).toEqual({
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: expect.objectContaining({
        name: SERVICE_ACCOUNT_NAME,
        namespace: "mlscore",
        annotations: { "iam.gke.io/gcp-service-account": GSA_EMAIL },
      }),
      automountServiceAccountToken: false,
    });
    expect(podTemplate(deployment).spec.serviceAccountName).toBe(SERVICE_ACCOUNT_NAME);
    expect(run.waitsFor(deployment, account)).toBe(true);
    expect(run.outputs.serviceAccountName).toBe(SERVICE_ACCOUNT_NAME);
  });

  it("routes the Service's port 80 to the container's named port", () => {
    const container = podTemplate(deployment).spec.containers[0];
    const port = spec<{ ports: Array<{ port: number; targetPort: string }> }>(service).ports;
    expect(port).toEqual([expect.objectContaining({ port: 80, targetPort: "http" })]);
    expect(container.ports).toEqual([
      expect.objectContaining({ name: "http", containerPort: CONTAINER_PORT }),
    ]);
    expect(spec<{ type: string }>(service).type).toBe("ClusterIP");
  });

  it("probes /readyz for readiness and /healthz for liveness and startup, on the named port", () => {
    const container = podTemplate(deployment).spec.containers[0];
    expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "http" });
    expect(container.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "http" });
    expect(container.startupProbe.httpGet).toEqual({ path: "/healthz", port: "http" });
  });

  it("rolls out one extra pod at a time and never goes below the wanted count", () => {
    const strategy = spec<{ strategy: unknown; replicas: number }>(deployment);
    expect(strategy.strategy).toEqual({
      type: "RollingUpdate",
      rollingUpdate: { maxUnavailable: 0, maxSurge: 1 },
    });
    expect(strategy.replicas).toBe(2);
    // The autoscaler owns the count after creation; Pulumi must not reset it on every update.
    expect(deployment.ignoreChanges).toEqual(["spec.replicas"]);
  });

  it("pauses before SIGTERM and gives the drain time to finish before the kill", () => {
    const pod = podTemplate(deployment).spec;
    const container = pod.containers[0];
    expect(container.lifecycle.preStop).toEqual({ sleep: { seconds: PRE_STOP_SLEEP_SECONDS } });
    expect(container.env).toContainEqual({
      name: "SHUTDOWN_GRACE_SECONDS",
      value: String(SHUTDOWN_GRACE_SECONDS),
    });
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(
      PRE_STOP_SLEEP_SECONDS + SHUTDOWN_GRACE_SECONDS,
    );
  });

  it("passes the port, model URI and model name to the service", () => {
    const container = podTemplate(deployment).spec.containers[0];
    expect(container.env).toEqual(
      expect.arrayContaining([
        { name: "PORT", value: "8080" },
        { name: "MODEL_URI", value: "gs://models/iris/model.onnx" },
        { name: "MODEL_NAME", value: "iris" },
      ]),
    );
    expect(container.image).toBe(IMAGE);
  });

  it("requests and limits CPU and memory as given", () => {
    const container = podTemplate(deployment).spec.containers[0];
    expect(container.resources).toEqual({
      requests: { cpu: "250m", memory: "256Mi" },
      limits: { cpu: "1", memory: "512Mi" },
    });
  });

  it("runs under the restricted profile with a writable /tmp only", () => {
    const pod = podTemplate(deployment).spec;
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.containers[0].volumeMounts).toEqual([{ name: "tmp", mountPath: "/tmp" }]);
    expect(pod.volumes).toEqual([
      expect.objectContaining({ name: "tmp", emptyDir: expect.anything() }),
    ]);
  });

  it("fails a stuck rollout in minutes, not the default ten", () => {
    expect(deployment.customTimeouts).toEqual({ create: "5m", update: "5m", delete: "2m" });
    expect(
      (deployment.inputs.metadata as { annotations?: Record<string, string> }).annotations?.[
        "pulumi.com/skipAwait"
      ],
    ).toBeUndefined();
  });

  it("scales the Deployment on CPU between the given bounds", () => {
    const hpa = spec<{
      scaleTargetRef: { kind: string; name: string };
      minReplicas: number;
      maxReplicas: number;
      metrics: unknown[];
    }>(run.one(TYPES.hpa, "scoring-autoscaler"));
    const deploymentName = (deployment.state.metadata as { name: string }).name;
    expect(hpa.scaleTargetRef).toEqual({
      apiVersion: "apps/v1",
      kind: "Deployment",
      name: deploymentName,
    });
    expect([hpa.minReplicas, hpa.maxReplicas]).toEqual([2, 6]);
    expect(hpa.metrics).toEqual([
      {
        type: "Resource",
        resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 70 } },
      },
    ]);
  });

  it("denies all traffic by default and admits only the gateway namespace and itself", () => {
    const denyAll = spec<{ podSelector: unknown; policyTypes: string[]; ingress?: unknown }>(
      run.one(TYPES.networkPolicy, "scoring-deny-all"),
    );
    expect(denyAll).toEqual({ podSelector: {}, policyTypes: ["Ingress", "Egress"] });
    const ingress = spec<{ ingress: unknown }>(
      run.one(TYPES.networkPolicy, "scoring-allow-ingress"),
    );
    expect(ingress.ingress).toEqual([
      {
        from: [
          {
            namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "istio-ingress" } },
          },
          { podSelector: {} },
        ],
        ports: [{ protocol: "TCP", port: CONTAINER_PORT }],
      },
    ]);
  });

  it("allows DNS to kube-system and HTTPS plus the metadata server for a gs:// model", () => {
    const dns = spec<{ egress: unknown }>(run.one(TYPES.networkPolicy, "scoring-allow-dns"));
    expect(dns.egress).toEqual([
      expect.objectContaining({
        ports: [
          { protocol: "UDP", port: 53 },
          { protocol: "TCP", port: 53 },
        ],
      }),
    ]);
    const store = spec<{ egress: unknown }>(
      run.one(TYPES.networkPolicy, "scoring-allow-model-store"),
    );
    expect(store.egress).toEqual(modelStoreEgress("gs://models/iris/model.onnx"));
    expect(store.egress).toContainEqual({
      to: [{ ipBlock: { cidr: "0.0.0.0/0", except: PRIVATE_RANGES } }],
      ports: [{ protocol: "TCP", port: 443 }],
    });
  });

  it("exposes the Service's cluster DNS name and no endpoint of its own", () => {
    const name = (service.state.metadata as { name: string }).name;
    expect(run.outputs.serviceHost).toBe(`${name}.mlscore.svc.cluster.local`);
    expect(run.outputs.serviceName).toBe(name);
    expect(run.outputs.servicePort).toBe(80);
    expect(run.outputs.endpoint).toBeUndefined();
  });

  it("declares only objects valid against the upstream schemas", () => {
    for (const { object } of run.kubernetesObjects()) {
      expect(() => validateKubernetesObject(object)).not.toThrow();
    }
  });

  it("runs only pods that meet the workload policy", () => {
    const workloads = run.kubernetesObjects().filter(({ object }) => object.kind === "Deployment");
    expect(workloads).toHaveLength(1);
    expect(() => assertPodPolicy(workloads[0].object)).not.toThrow();
  });
});

describe("ScoringApp on its own load balancer with the built-in model", () => {
  let run: RecordedRun;

  beforeAll(async () => {
    run = await runApp({ ...BASE_ARGS, serviceType: "LoadBalancer" });
  });

  it("makes the Service a LoadBalancer and reports its address as the endpoint", () => {
    const service = run.one(TYPES.service, "scoring-service");
    expect(spec<{ type: string }>(service).type).toBe("LoadBalancer");
    expect(run.outputs.endpoint).toBe(fakeLoadBalancerIp("scoring-service"));
  });

  it("leaves MODEL_URI and MODEL_NAME unset so the image's built-in model serves", () => {
    const names = podTemplate(
      run.one(TYPES.deployment, "scoring-deployment"),
    ).spec.containers[0].env.map((e) => e.name);
    expect(names).not.toContain("MODEL_URI");
    expect(names).not.toContain("MODEL_NAME");
  });

  it("opens the container port to any source, since clients arrive through the load balancer", () => {
    const ingress = spec<{ ingress: unknown }>(
      run.one(TYPES.networkPolicy, "scoring-allow-ingress"),
    );
    expect(ingress.ingress).toEqual([{ ports: [{ protocol: "TCP", port: CONTAINER_PORT }] }]);
  });

  it("still runs the pods as their own ServiceAccount, which names no Google identity", () => {
    const account = run.one(TYPES.serviceAccount, "scoring-service-account");
    expect(account.inputs.metadata).toMatchObject({ name: SERVICE_ACCOUNT_NAME });
    expect(account.inputs.metadata).not.toHaveProperty("annotations");
    expect(
      podTemplate(run.one(TYPES.deployment, "scoring-deployment")).spec.serviceAccountName,
    ).toBe(SERVICE_ACCOUNT_NAME);
  });

  it("opens no egress beyond DNS for a model inside the image", () => {
    const store = spec<{ egress: unknown[] }>(
      run.one(TYPES.networkPolicy, "scoring-allow-model-store"),
    );
    expect(store.egress).toEqual([]);
  });
});

describe("ScoringApp given a movable image tag", () => {
  it("refuses to deploy it, naming the fix", async () => {
    await expect(
      runApp({ ...BASE_ARGS, image: "localhost:5001/mlscore-service:latest" }),
    ).rejects.toThrow(
      'ScoringApp image must be pinned by digest (repo@sha256:<64 hex>), got "localhost:5001/mlscore-service:latest"',
    );
  });
});

describe("model store helpers", () => {
  it("treat https:// and gs:// as remote, paths and identity as local", () => {
    expect(["https://x/m.onnx", "gs://b/m.onnx"].map(isRemoteModelUri)).toEqual([true, true]);
    expect(
      ["/app/models/iris.onnx", "identity", undefined, "http://x/m.onnx"].map(isRemoteModelUri),
    ).toEqual([false, false, false, false]);
  });

  it("open only HTTPS for an https:// model, without the metadata server", () => {
    expect(modelStoreEgress("https://example.com/m.onnx")).toEqual([
      {
        to: [{ ipBlock: { cidr: "0.0.0.0/0", except: PRIVATE_RANGES } }],
        ports: [{ protocol: "TCP", port: 443 }],
      },
    ]);
  });

  it("accept only digests of 64 hex characters", () => {
    expect(checkImagePinned(IMAGE)).toBe(IMAGE);
    expect(() => checkImagePinned("repo@sha256:abc")).toThrow("must be pinned by digest");
    expect(() => checkImagePinned(`repo:1.0`)).toThrow('got "repo:1.0"');
  });
});
