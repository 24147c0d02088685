import { stringify as toYaml } from "yaml";

/**
 * The address kwok writes into a LoadBalancer Service's status, as a cloud controller would.
 * From TEST-NET-1 (RFC 5737): documentation only, never routed, and the test never connects to it.
 */
export const FAKE_LOAD_BALANCER_IP = "192.0.2.10";

/** A kwok Stage: when an object of `kind` matches `selector`, kwok applies `next`. */
function stage(
  name: string,
  kind: string,
  matchExpressions: { key: string; operator: string; values?: string[] }[],
  next: Record<string, unknown>,
): Record<string, unknown> {
  return {
    apiVersion: "kwok.x-k8s.io/v1alpha1",
    kind: "Stage",
    metadata: { name },
    spec: { resourceRef: { apiGroup: "v1", kind }, selector: { matchExpressions }, next },
  };
}

/** A node kwok manages becomes Ready, with room for the test's pods. */
const NODE_READY = `
conditions:
- type: Ready
  status: "True"
  reason: KubeletReady
  message: kwok simulates this node's kubelet
  lastHeartbeatTime: {{ Now | Quote }}
  lastTransitionTime: {{ Now | Quote }}
addresses:
- type: InternalIP
  address: {{ NodeIP | Quote }}
allocatable: { cpu: "8", memory: 32Gi, pods: "110" }
capacity: { cpu: "8", memory: 32Gi, pods: "110" }
nodeInfo:
  architecture: amd64
  operatingSystem: linux
  kubeletVersion: {{ printf "kwok-%s" Version | Quote }}
phase: Running
`;

/** A scheduled pod gets an address and every container runs and is ready: no image is pulled. */
const POD_READY = `
{{ $now := Now }}
conditions:
- { type: PodScheduled, status: "True", lastTransitionTime: {{ $now | Quote }} }
- { type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }} }
- { type: ContainersReady, status: "True", lastTransitionTime: {{ $now | Quote }} }
- { type: Ready, status: "True", lastTransitionTime: {{ $now | Quote }} }
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  imageID: {{ .image | Quote }}
  ready: true
  started: true
  restartCount: 0
  state: { running: { startedAt: {{ $now | Quote }} } }
{{ end }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName false .metadata.uid .metadata.name .metadata.namespace | Quote }}
phase: Running
startTime: {{ $now | Quote }}
`;

/**
 * The canary version whose gate kwok fails, as a gate that found wrong answers would: the engine
 * test cannot run the gate's HTTP check (kwok runs no containers), so it decides the verdict by
 * the version the gate's pod checks. Every other gate pod succeeds.
 */
export const REJECTED_CANARY_VERSION = "rejected";

/** The termination message of a rejected gate's pod, as the kubelet takes it from its last lines. */
export const REJECTED_GATE_MESSAGE =
  'FAIL held-out rows (30): output "probabilities"[0] is 0.5 where 0.968 was expected';

/** A pod of a Job whose one container ended: succeeded (exit 0) or failed with a message. */
function terminated(phase: "Succeeded" | "Failed", exitCode: number, message?: string): string {
  return `
{{ $now := Now }}
phase: ${phase}
conditions:
- { type: Ready, status: "False", reason: PodCompleted, lastTransitionTime: {{ $now | Quote }} }
- { type: ContainersReady, status: "False", reason: PodCompleted, lastTransitionTime: {{ $now | Quote }} }
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  imageID: {{ .image | Quote }}
  ready: false
  started: false
  restartCount: 0
  state:
    terminated:
      exitCode: ${exitCode}
      reason: ${phase === "Succeeded" ? "Completed" : "Error"}
      startedAt: {{ $now | Quote }}
      finishedAt: {{ $now | Quote }}${
        message === undefined
          ? ""
          : `
      message: ${JSON.stringify(message)}`
      }
{{ end }}
`;
}

/** The gate's pod names the canary version it checks in GATE_MODEL_VERSION. */
const GATE_VERSION = '.spec.containers[].env[]? | select(.name == "GATE_MODEL_VERSION") | .value';
/** A running pod of a Job, which kwok ends as its container would. */
const RUNNING_JOB_POD = [
  { key: ".metadata.deletionTimestamp", operator: "DoesNotExist" },
  { key: ".metadata.ownerReferences[].kind", operator: "In", values: ["Job"] },
  { key: ".status.phase", operator: "In", values: ["Running"] },
];

const LOAD_BALANCER = `
loadBalancer:
  ingress:
  - ip: ${FAKE_LOAD_BALANCER_IP}
`;

/**
 * The kwok config the test writes: its own stages (kwok's default ones are not taken from the
 * module download), which stand in for the kubelet (pods start, and a Job's pods end) and the
 * cloud's load-balancer controller.
 */
export function kwokStages(): string {
  const stages = [
    stage(
      "node-ready",
      "Node",
      [{ key: ".status.phase", operator: "NotIn", values: ["Running"] }],
      {
        statusTemplate: NODE_READY,
      },
    ),
    stage(
      "pod-ready",
      "Pod",
      [
        { key: ".metadata.deletionTimestamp", operator: "DoesNotExist" },
        { key: ".status.podIP", operator: "DoesNotExist" },
      ],
      { statusTemplate: POD_READY },
    ),
    // A Job's pod runs to completion: the gate's, unless it checks the rejected version.
    stage(
      "job-pod-succeeds",
      "Pod",
      [
        ...RUNNING_JOB_POD,
        { key: GATE_VERSION, operator: "NotIn", values: [REJECTED_CANARY_VERSION] },
      ],
      { statusTemplate: terminated("Succeeded", 0) },
    ),
    stage(
      "gate-pod-rejects",
      "Pod",
      [
        ...RUNNING_JOB_POD,
        { key: GATE_VERSION, operator: "In", values: [REJECTED_CANARY_VERSION] },
      ],
      { statusTemplate: terminated("Failed", 1, REJECTED_GATE_MESSAGE) },
    ),
    // Without a kubelet nothing would ever confirm a pod's end: kwok removes it at once.
    stage("pod-delete", "Pod", [{ key: ".metadata.deletionTimestamp", operator: "Exists" }], {
      finalizers: { empty: true },
      delete: true,
    }),
    stage(
      "service-load-balancer",
      "Service",
      [
        { key: ".spec.type", operator: "In", values: ["LoadBalancer"] },
        { key: ".status.loadBalancer.ingress", operator: "DoesNotExist" },
      ],
      { statusTemplate: LOAD_BALANCER },
    ),
  ];
  return stages.map((s) => toYaml(s)).join("---\n");
}
