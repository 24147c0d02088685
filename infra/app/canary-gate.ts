import { createHash } from "node:crypto";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { parseGoldenRequests } from "../../service/src/gate/golden";
import { DNS_EGRESS } from "./network-policies";
import { CONTAINER_PORT, CONTAINER_SECURITY_CONTEXT, POD_SECURITY_CONTEXT } from "./pod-spec";
import { CANARY_IDENTITY_LABEL } from "./variant";

/** Pod annotation with a hash of the golden requests: new ones make a new Job, which runs again. */
export const GOLDEN_HASH_ANNOTATION = "mlscore.dev/golden-requests-sha256";
/** Where the gate's pod finds the golden requests (a ConfigMap volume). */
const GOLDEN_DIR = "/etc/mlscore/golden";
const GOLDEN_KEY = "golden.json";
/** How long the gate waits for the canary to answer that it is ready (GATE_WAIT_SECONDS). */
export const GATE_WAIT_SECONDS = 60;
/** How long one golden request may take (GATE_TIMEOUT_SECONDS). */
export const GATE_TIMEOUT_SECONDS = 10;

/** Arguments of {@link CanaryGate}. */
export interface CanaryGateArgs {
  /** The app's namespace, where the canary runs. Required. */
  readonly namespace: pulumi.Input<string>;
  /** The service's image, pinned by digest: the gate is its `dist/gate.js`. Required. */
  readonly image: pulumi.Input<string>;
  /** Cluster DNS name of the canary's Service. Required. */
  readonly serviceHost: pulumi.Input<string>;
  /** Port of that Service. Required. */
  readonly servicePort: pulumi.Input<number>;
  /** Labels of the canary's pods: the only pods the gate may reach. Required. */
  readonly canaryPodLabels: Record<string, string>;
  /** The canary's identity ({@link canaryIdentity}), put on the gate's pod. Required. */
  readonly identity: string;
  /** The name and version the canary must answer as. Required. */
  readonly model: { readonly name: string; readonly version: string };
  /** The golden requests file's text. Required. */
  readonly golden: string;
}

/**
 * The canary's golden-request gate: a Job running `node dist/gate.js` from the service's image,
 * which sends the golden requests to the canary's Service and fails unless every answer is as
 * expected, a ConfigMap carrying those requests, and a NetworkPolicy that lets its pod reach the
 * canary's pods (and DNS) only. Pulumi waits for a Job to complete and fails `up` when it fails,
 * so whatever depends on {@link CanaryGate.job} (the route's weights) moves only after a pass.
 * A Job cannot change: its pod carries the canary's identity and a hash of the golden requests,
 * so a new model or new golden requests replace the Job and run the gate again.
 */
export class CanaryGate extends pulumi.ComponentResource {
  /** The Job; depend on it to wait for a passed gate. */
  readonly job: k8s.batch.v1.Job;
  /** `passed`, with the Job and when it completed; known only once the Job completed. */
  readonly result: pulumi.Output<{
    job: string;
    result: string;
    goldenRequests: number;
    completedAt?: string;
  }>;

  constructor(name: string, args: CanaryGateArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("mlscore:index:CanaryGate", name, {}, opts);

    const requests = this.countGoldenRequests(args.golden);
    const labels = {
      "app.kubernetes.io/name": "mlscore-canary-gate",
      "app.kubernetes.io/instance": name,
      "app.kubernetes.io/component": "gate",
      "app.kubernetes.io/part-of": "mlscore",
      "app.kubernetes.io/managed-by": "pulumi",
    };
    const metadata = { namespace: args.namespace, labels };

    const golden = new k8s.core.v1.ConfigMap(
      `${name}-golden`,
      { metadata, data: { [GOLDEN_KEY]: args.golden } },
      { parent: this },
    );

    // The namespace denies everything; the gate may reach the canary and nothing else.
    const egress = new k8s.networking.v1.NetworkPolicy(
      `${name}-egress`,
      {
        metadata,
        spec: {
          podSelector: { matchLabels: labels },
          policyTypes: ["Egress"],
          egress: [
            {
              to: [{ podSelector: { matchLabels: args.canaryPodLabels } }],
              ports: [{ protocol: "TCP", port: CONTAINER_PORT }],
            },
            DNS_EGRESS,
          ],
        },
      },
      { parent: this },
    );

    // Waiting for the canary, then every request at its longest, and a minute for the pod.
    const deadlineSeconds = GATE_WAIT_SECONDS + requests * GATE_TIMEOUT_SECONDS + 60;
    this.job = new k8s.batch.v1.Job(
      `${name}-job`,
      {
        metadata: {
          ...metadata,
          // A failed gate is asked again at the next `up` (a new Job), rather than reported as
          // failed forever: the canary may have been slow, and the verdict is cheap to repeat.
          annotations: { "pulumi.com/replaceUnready": "true" },
        },
        spec: {
          // The check is deterministic: a failure is the verdict, not something to retry.
          backoffLimit: 0,
          activeDeadlineSeconds: deadlineSeconds,
          template: {
            metadata: {
              labels: { ...labels, [CANARY_IDENTITY_LABEL]: args.identity },
              annotations: {
                [GOLDEN_HASH_ANNOTATION]: createHash("sha256").update(args.golden).digest("hex"),
              },
            },
            spec: {
              restartPolicy: "Never",
              automountServiceAccountToken: false,
              enableServiceLinks: false,
              securityContext: POD_SECURITY_CONTEXT,
              containers: [
                {
                  name: "gate",
                  image: args.image,
                  // The image's entry point is node; its default argument is the server.
                  args: ["dist/gate.js"],
                  env: [
                    {
                      name: "GATE_URL",
                      value: pulumi.interpolate`http://${args.serviceHost}:${args.servicePort}`,
                    },
                    { name: "GATE_MODEL_NAME", value: args.model.name },
                    { name: "GATE_MODEL_VERSION", value: args.model.version },
                    { name: "GATE_GOLDEN_FILE", value: `${GOLDEN_DIR}/${GOLDEN_KEY}` },
                    { name: "GATE_WAIT_SECONDS", value: String(GATE_WAIT_SECONDS) },
                    { name: "GATE_TIMEOUT_SECONDS", value: String(GATE_TIMEOUT_SECONDS) },
                  ],
                  resources: {
                    requests: { cpu: "100m", memory: "128Mi" },
                    limits: { cpu: "500m", memory: "256Mi" },
                  },
                  securityContext: CONTAINER_SECURITY_CONTEXT,
                  // The gate prints its verdict last; a failed pod's last lines become its
                  // termination message, which `pulumi up` shows with the Job's failure.
                  terminationMessagePolicy: "FallbackToLogsOnError",
                  volumeMounts: [{ name: "golden", mountPath: GOLDEN_DIR, readOnly: true }],
                },
              ],
              volumes: [{ name: "golden", configMap: { name: golden.metadata.name } }],
            },
          },
        },
      },
      {
        parent: this,
        dependsOn: [egress],
        customTimeouts: { create: `${Math.ceil(deadlineSeconds / 60) + 2}m` },
      },
    );

    this.result = pulumi.all([this.job.metadata, this.job.status]).apply(([meta, status]) => ({
      job: `${meta.namespace}/${meta.name}`,
      result: (status?.succeeded ?? 0) > 0 ? "passed" : "failed",
      goldenRequests: requests,
      completedAt: status?.completionTime,
    }));
    this.registerOutputs({ job: this.job, result: this.result });
  }

  /** How many golden requests `golden` holds; a file the gate could not read fails here. */
  private countGoldenRequests(golden: string): number {
    try {
      return parseGoldenRequests(golden).requests.length;
    } catch (error) {
      throw new pulumi.ResourceError(error instanceof Error ? error.message : String(error), this);
    }
  }
}
