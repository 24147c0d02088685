import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { specialSecretSig, specialSigKey } from "@pulumi/pulumi/runtime/rpc";
import { MIB } from "../../infra/app/model-budget";
import { PRIVATE_RANGES, isRemoteModelUri, modelStoreEgress } from "../../infra/app/model-store";
import {
  CONTAINER_PORT,
  PRE_STOP_SLEEP_SECONDS,
  SHUTDOWN_GRACE_SECONDS,
} from "../../infra/app/pod-spec";
import {
  REVISION_ANNOTATION,
  SERVICE_ACCOUNT_NAME,
  ScoringApp,
  type ScoringAppArgs,
  checkImagePinned,
} from "../../infra/app/scoring-app";
import { fakeLoadBalancerIp } from "./harness/mocks";
import { type RecordedResource, type RecordedRun } from "./harness/recorded-run";
import { recordResources } from "./harness/recording";
import { validateKubernetesObject } from "./schemas/kubernetes";
import { assertPodPolicy } from "./schemas/policy";

const DIGEST = "a".repeat(64);
const IMAGE = `localhost:5001/mlscore-service@sha256:${DIGEST}`;

const REVISION = "0123456789abcdef0123456789abcdef01234567";

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
  modelMaxBytes: 128 * MIB,
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
  metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
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
      env: Array<{ name: string; value?: string; valueFrom?: unknown }>;
      readinessProbe: { httpGet: { path: string; port: string } };
      livenessProbe: { httpGet: { path: string; port: string } };
      startupProbe: {
        httpGet: { path: string; port: string };
        periodSeconds: number;
        failureThreshold: number;
      };
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
  secret: "kubernetes:core/v1:Secret",
  podMonitoring: "kubernetes:monitoring.googleapis.com/v1:PodMonitoring",
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
    monitoringNamespace: "gmp-system",
    podMonitoring: true,
    revision: REVISION,
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
        `${TYPES.podMonitoring} scoring-pod-monitoring`,
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

  it("passes the port, model name and the model size's limits to the service", () => {
    const container = podTemplate(deployment).spec.containers[0];
    expect(container.env).toEqual(
      expect.arrayContaining([
        { name: "PORT", value: "8080" },
        { name: "MODEL_NAME", value: "iris" },
        { name: "MODEL_MAX_BYTES", value: String(128 * MIB) },
        // 60 s plus 128 MiB at 8 MiB/s.
        { name: "MODEL_LOAD_TIMEOUT_SECONDS", value: "76" },
      ]),
    );
    expect(container.image).toBe(IMAGE);
  });

  it("keeps a URI without a credential in the pod spec, where a preview shows its change", () => {
    expect(run.resources.filter((r) => r.type === TYPES.secret)).toEqual([]);
    expect(podTemplate(deployment).spec.containers[0].env).toContainEqual({
      name: "MODEL_URI",
      value: "gs://models/iris/model.onnx",
    });
  });

  it("gives the startup probe the service's load timeout and 30 s more", () => {
    const startup = podTemplate(deployment).spec.containers[0].startupProbe;
    expect(startup.periodSeconds * startup.failureThreshold).toBe(106);
  });

  it("sizes /tmp for the model, a partial download beside it and 64 MiB of slack", () => {
    expect(podTemplate(deployment).spec.volumes).toEqual([
      { name: "tmp", emptyDir: { sizeLimit: "320Mi" } },
    ]);
  });

  it("records the commit on the Deployment, outside the pod template a rollout follows", () => {
    expect(deployment.inputs.metadata).toMatchObject({
      annotations: { [REVISION_ANNOTATION]: REVISION },
    });
    expect(JSON.stringify(podTemplate(deployment))).not.toContain(REVISION);
  });

  it("is scraped: prometheus.io annotations, a PodMonitoring, and its namespace admitted", () => {
    expect(podTemplate(deployment).metadata.annotations).toEqual({
      "prometheus.io/scrape": "true",
      "prometheus.io/port": "8080",
      "prometheus.io/path": "/metrics",
    });
    const monitoring = run.one(TYPES.podMonitoring, "scoring-pod-monitoring");
    expect(monitoring.inputs.spec).toEqual({
      selector: {
        matchLabels: spec<{ selector: { matchLabels: unknown } }>(deployment).selector.matchLabels,
      },
      endpoints: [{ port: "http", path: "/metrics", interval: "30s" }],
    });
    const ingress = spec<{ ingress: Array<{ from: unknown[] }> }>(
      run.one(TYPES.networkPolicy, "scoring-allow-ingress"),
    );
    expect(ingress.ingress[0].from).toContainEqual({
      namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "gmp-system" } },
    });
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

  it("denies all traffic by default and admits only the gateway, itself and Prometheus", () => {
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
          { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "gmp-system" } } },
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
    // Cloud Storage over HTTPS on public addresses, and Workload Identity's metadata server.
    expect(store.egress).toEqual([
      {
        to: [{ ipBlock: { cidr: "0.0.0.0/0", except: PRIVATE_RANGES } }],
        ports: [{ protocol: "TCP", port: 443 }],
      },
      { to: [{ ipBlock: { cidr: "169.254.169.254/32" } }], ports: [{ protocol: "TCP", port: 80 }] },
      {
        to: [{ ipBlock: { cidr: "169.254.169.252/32" } }],
        ports: [{ protocol: "TCP", port: 988 }],
      },
    ]);
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

  it("admits only the configured sources at its load balancer", async () => {
    const ranged = await runApp({
      ...BASE_ARGS,
      serviceType: "LoadBalancer",
      loadBalancerSourceRanges: ["203.0.113.0/24"],
    });
    expect(spec<unknown>(ranged.one(TYPES.service, "scoring-service"))).toMatchObject({
      type: "LoadBalancer",
      loadBalancerSourceRanges: ["203.0.113.0/24"],
    });
  });

  it("declares no Secret and no PodMonitoring when it has neither a model URI nor GKE", () => {
    expect(run.ofType(TYPES.secret)).toEqual([]);
    expect(run.ofType(TYPES.podMonitoring)).toEqual([]);
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
  it("open HTTPS plus exactly the metadata-server addresses Google documents for a gs:// model", () => {
    expect(modelStoreEgress("gs://b/m.onnx")).toEqual([
      {
        to: [{ ipBlock: { cidr: "0.0.0.0/0", except: PRIVATE_RANGES } }],
        ports: [{ protocol: "TCP", port: 443 }],
      },
      { to: [{ ipBlock: { cidr: "169.254.169.254/32" } }], ports: [{ protocol: "TCP", port: 80 }] },
      {
        to: [{ ipBlock: { cidr: "169.254.169.252/32" } }],
        ports: [{ protocol: "TCP", port: 988 }],
      },
    ]);
  });

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

/** The value inside a secret input as the engine received it; undefined when it is not secret. */
function secretValue(value: unknown): unknown {
  const wrapped = value as Record<string, unknown> | undefined;
  return wrapped?.[specialSigKey] === specialSecretSig ? wrapped.value : undefined;
}

describe("ScoringApp given a presigned model URL as a secret", () => {
  const url = "https://models.example.com/iris.onnx?X-Goog-Signature=0123abcd";
  let run: RecordedRun;

  beforeAll(async () => {
    run = await runApp({ ...BASE_ARGS, modelUri: pulumi.secret(url), modelUriSecret: true });
  });

  it("keeps it secret in the Secret that carries it, and out of every other object", () => {
    const secret = run.one(TYPES.secret, "scoring-model-source");
    expect(secretValue(secret.inputs.stringData)).toEqual({ MODEL_URI: url });
    for (const resource of run.resources.filter((r) => r !== secret)) {
      expect([resource.name, JSON.stringify(resource.inputs)]).not.toEqual([
        resource.name,
        expect.stringContaining("X-Goog-Signature"),
      ]);
    }
  });

  it("hands it to the pods by reference to an autonamed Secret, so a new URI rolls them", () => {
    const secret = run.one(TYPES.secret, "scoring-model-source");
    const deployment = run.one(TYPES.deployment, "scoring-deployment");
    expect(secret.inputs.metadata).not.toHaveProperty("name");
    const secretName = (secret.state.metadata as { name: string }).name;
    expect(podTemplate(deployment).spec.containers[0].env).toContainEqual({
      name: "MODEL_URI",
      valueFrom: { secretKeyRef: { name: secretName, key: "MODEL_URI" } },
    });
    expect(run.waitsFor(deployment, secret)).toBe(true);
  });

  it("still opens HTTPS egress, in rules that carry nothing secret", () => {
    const store = run.one(TYPES.networkPolicy, "scoring-allow-model-store");
    const egress = spec<{ egress: unknown }>(store).egress;
    expect(egress).toEqual([
      {
        to: [{ ipBlock: { cidr: "0.0.0.0/0", except: PRIVATE_RANGES } }],
        ports: [{ protocol: "TCP", port: 443 }],
      },
    ]);
    expect(JSON.stringify(store.inputs)).not.toContain("X-Goog-Signature");
  });
});

describe("ScoringApp pinned to a model's identity", () => {
  const sha = "c".repeat(64);

  it("passes MODEL_SHA256 and MODEL_VERSION, so a new digest or version rolls the pods", async () => {
    const template = async (modelSha256: string, modelVersion: string) =>
      podTemplate(
        (await runApp({ ...BASE_ARGS, modelUri: "/models/m.onnx", modelSha256, modelVersion })).one(
          TYPES.deployment,
          "scoring-deployment",
        ),
      );
    const first = await template(sha, "2");
    expect(first.spec.containers[0].env).toEqual(
      expect.arrayContaining([
        { name: "MODEL_SHA256", value: sha },
        { name: "MODEL_VERSION", value: "2" },
      ]),
    );
    expect(await template("d".repeat(64), "2")).not.toEqual(first);
    expect(await template(sha, "3")).not.toEqual(first);
    expect(await template(sha, "2")).toEqual(first);
  });
});

describe("ScoringApp spread as a rule", () => {
  it("uses DoNotSchedule with minDomains, so missing nodes leave pods Pending", async () => {
    const run = await runApp({ ...BASE_ARGS, spreadMinNodes: 3 });
    const spread = podTemplate(run.one(TYPES.deployment, "scoring-deployment")).spec
      .topologySpreadConstraints;
    expect(spread).toEqual([
      expect.objectContaining({
        topologyKey: "kubernetes.io/hostname",
        maxSkew: 1,
        whenUnsatisfiable: "DoNotSchedule",
        minDomains: 3,
      }),
    ]);
    for (const { object } of run.kubernetesObjects()) {
      expect(() => validateKubernetesObject(object)).not.toThrow();
    }
  });
});

describe("ScoringApp for a 1 GiB model", () => {
  it("derives the timeout, the startup window, /tmp and the rollout timeout from its size", async () => {
    const run = await runApp({ ...BASE_ARGS, modelMaxBytes: 1024 * MIB });
    const deployment = run.one(TYPES.deployment, "scoring-deployment");
    const pod = podTemplate(deployment).spec;
    expect(pod.containers[0].env).toEqual(
      expect.arrayContaining([
        { name: "MODEL_MAX_BYTES", value: String(1024 * MIB) },
        { name: "MODEL_LOAD_TIMEOUT_SECONDS", value: "188" },
      ]),
    );
    const startup = pod.containers[0].startupProbe;
    expect(startup.periodSeconds * startup.failureThreshold).toBe(218);
    expect(pod.volumes).toEqual([{ name: "tmp", emptyDir: { sizeLimit: "2112Mi" } }]);
    // Two model loads (436 s) and a minute: 9 minutes, not the 5 a small model gets.
    expect(deployment.customTimeouts).toEqual({ create: "9m", update: "9m", delete: "2m" });
  });
});
