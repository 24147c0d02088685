import type * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { mebibytes, scratchBytes, startupWindowSeconds } from "./model-budget";

/** The port the service listens on inside the pod, named so probes and the Service follow it. */
export const CONTAINER_PORT = 8080;
/** The name of {@link CONTAINER_PORT} on the container. */
export const CONTAINER_PORT_NAME = "http";
/** The uid and gid of the distroless `nonroot` user the image runs as. */
export const NONROOT_ID = 65532;

/**
 * Seconds the pod keeps serving after it is marked terminating, while endpoint removal reaches
 * every kube-proxy and load balancer; only then does it get SIGTERM.
 */
export const PRE_STOP_SLEEP_SECONDS = 5;
/** Seconds the service drains in-flight requests after SIGTERM (its SHUTDOWN_GRACE_SECONDS). */
export const SHUTDOWN_GRACE_SECONDS = 20;
/** Kubernetes kills the pod after this: the pre-stop pause, the drain, and slack for exit. */
export const TERMINATION_GRACE_SECONDS = PRE_STOP_SLEEP_SECONDS + SHUTDOWN_GRACE_SECONDS + 5;

/** Seconds between startup probes while the model loads. */
export const STARTUP_PROBE_PERIOD_SECONDS = 2;

/** What {@link scoringPodSpec} builds the pod from. */
export interface ScoringPodArgs {
  /** Image by digest. */
  readonly image: pulumi.Input<string>;
  /** The Kubernetes ServiceAccount the pod runs as. */
  readonly serviceAccountName: pulumi.Input<string>;
  /** Labels selecting the app's pods, for the spread constraint. */
  readonly podLabels: Record<string, string>;
  /** The service's environment. */
  readonly env: pulumi.Input<k8s.types.input.core.v1.EnvVar>[];
  readonly cpuRequest: pulumi.Input<string>;
  readonly cpuLimit: pulumi.Input<string>;
  readonly memoryRequest: pulumi.Input<string>;
  readonly memoryLimit: pulumi.Input<string>;
  /** Largest model the pod loads: sizes its /tmp and its startup probe. */
  readonly modelMaxBytes: number;
  /** Spread over at least this many nodes as a rule; undefined: as a preference. */
  readonly spreadMinNodes?: number;
}

/** The restricted profile at the pod level: the image's non-root user, the runtime's seccomp. */
export const POD_SECURITY_CONTEXT: k8s.types.input.core.v1.PodSecurityContext = {
  runAsNonRoot: true,
  runAsUser: NONROOT_ID,
  runAsGroup: NONROOT_ID,
  fsGroup: NONROOT_ID,
  seccompProfile: { type: "RuntimeDefault" },
};

/** The restricted profile for a container, and a root filesystem nothing can change. */
export const CONTAINER_SECURITY_CONTEXT: k8s.types.input.core.v1.SecurityContext = {
  runAsNonRoot: true,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ["ALL"] },
  seccompProfile: { type: "RuntimeDefault" },
};

const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({
  httpGet: { path, port: CONTAINER_PORT_NAME },
  periodSeconds,
  timeoutSeconds: 2,
  failureThreshold,
});

/**
 * The scoring pod: non-root under the restricted profile with a read-only root and a /tmp sized
 * for the model, probes whose start-up window follows the model size, a pre-stop pause before
 * SIGTERM, and a spread across nodes.
 */
export function scoringPodSpec(args: ScoringPodArgs): k8s.types.input.core.v1.PodSpec {
  return {
    serviceAccountName: args.serviceAccountName,
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    terminationGracePeriodSeconds: TERMINATION_GRACE_SECONDS,
    securityContext: POD_SECURITY_CONTEXT,
    topologySpreadConstraints: [
      {
        maxSkew: 1,
        topologyKey: "kubernetes.io/hostname",
        labelSelector: { matchLabels: args.podLabels },
        matchLabelKeys: ["pod-template-hash"],
        ...(args.spreadMinNodes === undefined
          ? { whenUnsatisfiable: "ScheduleAnyway" }
          : { whenUnsatisfiable: "DoNotSchedule", minDomains: args.spreadMinNodes }),
      },
    ],
    containers: [
      {
        name: "scoring",
        image: args.image,
        imagePullPolicy: "IfNotPresent",
        ports: [{ name: CONTAINER_PORT_NAME, containerPort: CONTAINER_PORT, protocol: "TCP" }],
        env: args.env,
        resources: {
          requests: { cpu: args.cpuRequest, memory: args.memoryRequest },
          limits: { cpu: args.cpuLimit, memory: args.memoryLimit },
        },
        // The server listens only once the model is loaded: the startup probe allows the
        // service's own load timeout and a little more, then liveness takes over.
        startupProbe: probe(
          "/healthz",
          STARTUP_PROBE_PERIOD_SECONDS,
          Math.ceil(startupWindowSeconds(args.modelMaxBytes) / STARTUP_PROBE_PERIOD_SECONDS),
        ),
        livenessProbe: probe("/healthz", 10, 3),
        readinessProbe: probe("/readyz", 5, 2),
        // The image is distroless (no shell, no sleep binary), so an exec pause is impossible;
        // the built-in sleep handler needs Kubernetes 1.30 or later.
        lifecycle: { preStop: { sleep: { seconds: PRE_STOP_SLEEP_SECONDS } } },
        securityContext: CONTAINER_SECURITY_CONTEXT,
        volumeMounts: [{ name: "tmp", mountPath: "/tmp" }],
      },
    ],
    // The downloaded model lives here, so a restarted container finds it again.
    volumes: [
      { name: "tmp", emptyDir: { sizeLimit: mebibytes(scratchBytes(args.modelMaxBytes)) } },
    ],
  };
}
