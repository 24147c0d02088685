import * as k8s from "@pulumi/kubernetes";
import { ScoringApp } from "../../infra/app/scoring-app";
import { IngressRoute } from "../../infra/platform/ingress-route";
import { MetalLb } from "../../infra/platform/metallb";
import { type RecordedRun } from "./harness/recorded-run";
import { recordResources } from "./harness/recording";
import { type KubernetesObject, validateKubernetesObject } from "./schemas/kubernetes";
import { podPolicyViolations, type PodSpec } from "../../infra/policy/workloads";
import { assertPodPolicy, podSpecOf } from "./schemas/policy";

const IMAGE = `localhost:5001/mlscore-service@sha256:${"b".repeat(64)}`;

let run: RecordedRun;

beforeAll(async () => {
  run = await recordResources(() => {
    const provider = new k8s.Provider("kind", { context: "kind-mlscore" });
    new ScoringApp(
      "scoring",
      {
        namespace: "mlscore",
        image: IMAGE,
        replicas: 1,
        minReplicas: 1,
        maxReplicas: 3,
        targetCpuUtilization: 80,
        cpuRequest: "100m",
        cpuLimit: "500m",
        memoryRequest: "128Mi",
        memoryLimit: "256Mi",
        modelMaxBytes: 32 * 2 ** 20,
        modelUri: "https://models.example.com/iris.onnx?X-Goog-Signature=0123",
        modelUriSecret: true,
        serviceType: "ClusterIP",
        ingressFromNamespace: "istio-ingress",
        podMonitoring: true,
      },
      { provider },
    );
    new MetalLb(
      "metallb",
      { addressRange: "172.18.255.200-172.18.255.250", version: "0.14.9" },
      { provider },
    );
    new IngressRoute(
      "scoring",
      { namespace: "mlscore", serviceHost: "scoring.mlscore.svc.cluster.local" },
      { provider },
    );
  });
});

/** Marks a field {@link broken} deletes rather than sets. */
const REMOVE = Symbol("remove");

/**
 * A deep copy of the declared object of this kind with fields changed, to prove a check catches
 * it. Paths are dotted (`spec.ports.0.port`); the field's parent must exist.
 */
function broken(kind: string, changes: Record<string, unknown>): KubernetesObject {
  const found = run.kubernetesObjects().find((o) => o.object.kind === kind);
  if (!found) {
    throw new Error(`the run declared no ${kind}`);
  }
  const copy = structuredClone<KubernetesObject>(found.object);
  for (const [path, value] of Object.entries(changes)) {
    const keys = path.split(".");
    const last = keys.pop() as string;
    let parent: unknown = copy;
    for (const key of keys) {
      parent = (parent as Record<string, unknown>)[key];
      if (typeof parent !== "object" || parent === null) {
        throw new Error(`${kind} has no object at ${path}`);
      }
    }
    const target = parent as Record<string, unknown>;
    if (value === REMOVE) {
      delete target[last];
    } else {
      target[last] = value;
    }
  }
  return copy;
}

const POD = "spec.template.spec";
const CONTAINER = `${POD}.containers.0`;

describe("validateKubernetesObject", () => {
  it("accepts every object the components declare", () => {
    const kinds = run.kubernetesObjects().map(({ object }) => {
      validateKubernetesObject(object);
      return object.kind;
    });
    expect(new Set(kinds)).toEqual(
      new Set([
        "Namespace",
        "ServiceAccount",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "IPAddressPool",
        "L2Advertisement",
        "Gateway",
        "VirtualService",
        "DestinationRule",
        "Secret",
        "PodMonitoring",
      ]),
    );
  });

  it("rejects a DestinationRule whose connection limit is not a number", () => {
    const rule = broken("DestinationRule", {
      "spec.trafficPolicy.connectionPool.tcp.maxConnections": "many",
    });
    expect(() => validateKubernetesObject(rule)).toThrow(/maxConnections must be integer/);
  });

  it("rejects a Secret whose data is not a map of strings", () => {
    const secret = broken("Secret", { stringData: ["MODEL_URI"] });
    expect(() => validateKubernetesObject(secret)).toThrow(/violates the v1 schema: .*stringData/);
  });

  it("rejects a PodMonitoring without endpoints, with a bad interval or an unknown field", () => {
    const none = broken("PodMonitoring", { "spec.endpoints": REMOVE });
    expect(() => validateKubernetesObject(none)).toThrow(
      /^PodMonitoring mlscore\/\S+ violates the managed Prometheus CRD schema: \/spec must have required property 'endpoints'/,
    );
    const slow = broken("PodMonitoring", { "spec.endpoints.0.interval": "30 seconds" });
    expect(() => validateKubernetesObject(slow)).toThrow("/spec/endpoints/0/interval must match");
    const typo = broken("PodMonitoring", { "spec.endpoint": [] });
    expect(() => validateKubernetesObject(typo)).toThrow(
      "/spec must NOT have additional properties",
    );
  });

  it("rejects a Deployment whose container port is not a number", () => {
    const deployment = broken("Deployment", { [`${CONTAINER}.ports.0.containerPort`]: "http" });
    expect(() => validateKubernetesObject(deployment)).toThrow(
      /^Deployment mlscore\/scoring-deployment-\w+ violates the apps\/v1 schema: .*containerPort must be integer/,
    );
  });

  it("rejects a Deployment without a selector", () => {
    const deployment = broken("Deployment", { "spec.selector": REMOVE });
    expect(() => validateKubernetesObject(deployment)).toThrow(
      "data/spec must have required property selector",
    );
  });

  it("rejects a Service whose port is a string", () => {
    const service = broken("Service", { "spec.ports.0.port": "eighty" });
    expect(() => validateKubernetesObject(service)).toThrow(
      /violates the v1 schema: .*port must be integer/,
    );
  });

  it("rejects an autoscaler whose metrics are not a list", () => {
    const hpa = broken("HorizontalPodAutoscaler", { "spec.metrics": "cpu" });
    expect(() => validateKubernetesObject(hpa)).toThrow(/metrics must be array/);
  });

  it("rejects a Gateway whose server port is not a number", () => {
    const gateway = broken("Gateway", { "spec.servers.0.port.number": "80" });
    expect(() => validateKubernetesObject(gateway)).toThrow(
      /^Gateway mlscore\/\S+ violates the networking.istio.io\/v1 schema: .*number must be integer/,
    );
  });

  it("rejects a VirtualService whose routes are not a list", () => {
    const routes = broken("VirtualService", {
      "spec.http.0.route": { destination: { host: "x" } },
    });
    expect(() => validateKubernetesObject(routes)).toThrow(/route must be array/);
  });

  it("rejects an IPAddressPool without addresses", () => {
    const pool = broken("IPAddressPool", { "spec.addresses": REMOVE });
    expect(() => validateKubernetesObject(pool)).toThrow(
      "IPAddressPool metallb-system/mlscore violates the MetalLB CRD schema: /spec must have required property 'addresses'",
    );
  });

  it("rejects an IPAddressPool whose addresses are one string, or with an unknown field", () => {
    const single = broken("IPAddressPool", { "spec.addresses": "172.18.255.200-172.18.255.250" });
    expect(() => validateKubernetesObject(single)).toThrow("/spec/addresses must be array");
    const typo = broken("IPAddressPool", { "spec.autoassign": true });
    expect(() => validateKubernetesObject(typo)).toThrow(
      "/spec must NOT have additional properties",
    );
  });

  it("rejects an L2Advertisement naming pools with a string instead of a list", () => {
    const l2 = broken("L2Advertisement", { "spec.ipAddressPools": "mlscore" });
    expect(() => validateKubernetesObject(l2)).toThrow("/spec/ipAddressPools must be array");
  });

  it("refuses kinds it has no schema for, so none slips through unchecked", () => {
    expect(() =>
      validateKubernetesObject({
        apiVersion: "v1",
        kind: "ReplicationController",
        metadata: { name: "x" },
      }),
    ).toThrow("ReplicationController x: no schema known for v1 ReplicationController");
    expect(() =>
      validateKubernetesObject({
        apiVersion: "metallb.io/v1beta1",
        kind: "BGPPeer",
        metadata: { name: "p" },
      }),
    ).toThrow("BGPPeer p: no schema known for metallb.io/v1beta1 BGPPeer");
  });
});

describe("workload policy", () => {
  const violations = (object: KubernetesObject) =>
    podPolicyViolations(podSpecOf(object) as PodSpec);

  it("passes the ScoringApp's Deployment", () => {
    const deployment = broken("Deployment", {});
    expect(violations(deployment)).toEqual([]);
    expect(() => assertPodPolicy(deployment)).not.toThrow();
  });

  it("ignores objects that run no pods", () => {
    const service = broken("Service", {});
    expect(podSpecOf(service)).toBeUndefined();
    expect(() => assertPodPolicy(service)).not.toThrow();
  });

  it("fails a Deployment without probes, naming each missing one", () => {
    const deployment = broken("Deployment", {
      [`${CONTAINER}.readinessProbe`]: REMOVE,
      [`${CONTAINER}.livenessProbe`]: REMOVE,
    });
    expect(violations(deployment)).toEqual([
      'container "scoring": no readinessProbe; traffic would reach it before it is ready',
      'container "scoring": no livenessProbe; a hung process would never be restarted',
    ]);
    expect(() => assertPodPolicy(deployment)).toThrow(
      /^Deployment mlscore\/scoring-deployment-\w+ breaks the workload policy:/,
    );
  });

  it("fails a Deployment running as root", () => {
    const deployment = broken("Deployment", {
      [`${POD}.securityContext.runAsUser`]: 0,
      [`${POD}.securityContext.runAsNonRoot`]: false,
      [`${CONTAINER}.securityContext.runAsNonRoot`]: false,
    });
    expect(violations(deployment)).toEqual([
      "pod: runAsUser 0 is root; use a non-zero uid such as 65532",
      'container "scoring": runAsNonRoot must be true (pod or container securityContext)',
      'container "scoring": runAsUser 0 is root; use a non-zero uid such as 65532',
    ]);
  });

  it("fails a Deployment with a :latest image", () => {
    const deployment = broken("Deployment", {
      [`${CONTAINER}.image`]: "localhost:5001/mlscore-service:latest",
    });
    expect(() => assertPodPolicy(deployment)).toThrow(
      'container "scoring": image "localhost:5001/mlscore-service:latest" is not pinned by digest; use repository@sha256:<digest> (never latest or a tag alone)',
    );
  });

  it("fails a Deployment that escalates privileges or keeps capabilities", () => {
    const deployment = broken("Deployment", {
      [`${CONTAINER}.securityContext.allowPrivilegeEscalation`]: true,
      [`${CONTAINER}.securityContext.privileged`]: true,
      [`${CONTAINER}.securityContext.capabilities`]: { add: ["NET_ADMIN"] },
      [`${CONTAINER}.securityContext.readOnlyRootFilesystem`]: false,
      [`${CONTAINER}.securityContext.seccompProfile`]: REMOVE,
      [`${POD}.securityContext.seccompProfile`]: REMOVE,
    });
    expect(violations(deployment)).toEqual([
      'container "scoring": privileged must not be true',
      'container "scoring": allowPrivilegeEscalation must be false',
      'container "scoring": capabilities.drop must include ALL',
      'container "scoring": capabilities.add may hold only NET_BIND_SERVICE, not NET_ADMIN',
      'container "scoring": seccompProfile.type must be RuntimeDefault (or Localhost)',
      'container "scoring": readOnlyRootFilesystem must be true; mount an emptyDir where it writes',
    ]);
  });

  it("fails a Deployment without limits, or using the host", () => {
    const deployment = broken("Deployment", {
      [`${CONTAINER}.resources.limits`]: REMOVE,
      [`${POD}.hostNetwork`]: true,
      [`${POD}.volumes.1`]: { name: "docker", hostPath: { path: "/var/run/docker.sock" } },
      [`${CONTAINER}.ports.0.hostPort`]: 8080,
    });
    expect(violations(deployment)).toEqual([
      "pod: hostNetwork shares the node's namespace; remove it",
      'pod: volume "docker" is a hostPath; use an emptyDir or a PVC',
      'container "scoring": hostPort 8080 binds the node\'s port; remove it',
      'container "scoring": no cpu limit',
      'container "scoring": no memory limit',
    ]);
  });

  it("finds pod specs in Pods and CronJobs too", () => {
    const pod: PodSpec = { containers: [{ name: "c", image: "busybox" }] };
    expect(podSpecOf({ apiVersion: "v1", kind: "Pod", spec: pod })).toBe(pod);
    expect(
      podSpecOf({
        apiVersion: "batch/v1",
        kind: "CronJob",
        spec: { jobTemplate: { spec: { template: { spec: pod } } } },
      }),
    ).toBe(pod);
    expect(() =>
      assertPodPolicy({ apiVersion: "v1", kind: "Pod", metadata: { name: "p" }, spec: pod }),
    ).toThrow(/^Pod p breaks the workload policy:\n- container "c": /);
    expect(() =>
      assertPodPolicy({ apiVersion: "v1", kind: "Pod", metadata: { name: "p" }, spec: pod }),
    ).toThrow('\n- container "c": image "busybox" is not pinned by digest');
  });
});
