import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { isPinnedImage } from "../policy/workloads";
import { modelLoadTimeoutSeconds, startupWindowSeconds } from "./model-budget";
import { declareNetworkPolicies } from "./network-policies";
import {
  CONTAINER_PORT,
  CONTAINER_PORT_NAME,
  SHUTDOWN_GRACE_SECONDS,
  scoringPodSpec,
} from "./pod-spec";
import type { ScoringAppArgs } from "./scoring-app";

/** The port the Service exposes in the cluster (and on the load balancer). */
export const SERVICE_PORT = 80;

/** Annotation on the Deployment (not its pods) naming the commit that last deployed it. */
export const REVISION_ANNOTATION = "mlscore.dev/git-revision";

/** Pod label carrying a canary's identity, which its Deployment and Service select on. */
export const CANARY_IDENTITY_LABEL = "mlscore.dev/canary";

/**
 * Throws unless `image` is pinned by digest ({@link isPinnedImage}, the policy pack's rule), as
 * an error of `resource` when given: a tag can move under a running Deployment, so nodes could
 * run something other than what was built and a rollout would not be triggered.
 */
export function checkImagePinned(image: string, resource?: pulumi.Resource): string {
  if (!isPinnedImage(image)) {
    throw new pulumi.ResourceError(
      `ScoringApp image must be pinned by digest (repo@sha256:<64 hex>), got "${image}"`,
      resource,
    );
  }
  return image;
}

/** One set of scoring pods: the app's settings with this variant's model and replica counts. */
export interface VariantArgs extends Omit<ScoringAppArgs, "namespace" | "canary"> {
  /** The app's namespace. */
  readonly namespace: pulumi.Output<string>;
  /** The Kubernetes ServiceAccount the pods run as. */
  readonly serviceAccountName: pulumi.Output<string>;
  /** Labels every object of the app carries. */
  readonly labels: Record<string, string>;
  /**
   * A canary's identity, a hash of its model: its Deployment and Service are named after it and
   * select on it, so a new canary model gets a new Deployment and Service while the old ones
   * keep serving their share until the route moves. Unset for the stable pods, which roll.
   */
  readonly identity?: string;
}

/** What the rest of the app needs from one set of scoring pods. */
export interface Variant {
  readonly deployment: k8s.apps.v1.Deployment;
  readonly service: k8s.core.v1.Service;
  /** The Service's cluster DNS name, `<service>.<namespace>.svc.cluster.local`. */
  readonly serviceHost: pulumi.Output<string>;
  /** Labels of exactly these pods (a canary's: of its current identity). */
  readonly podLabels: Record<string, string>;
}

/**
 * One set of scoring pods and what serves and guards them: a Deployment that rolls out without
 * downtime, its Service, a CPU autoscaler, a disruption budget, a PodMonitoring where asked, and
 * the network policies they need. Children of `parent`, named after `name`, which is also the
 * pods' `app.kubernetes.io/instance` label.
 */
export function declareVariant(parent: pulumi.Resource, name: string, args: VariantArgs): Variant {
  const opts = { parent };
  // Policies, the budget and scraping follow every pod of this variant, of any identity.
  const variantLabels = {
    "app.kubernetes.io/name": "mlscore-scoring",
    "app.kubernetes.io/instance": name,
  };
  const podLabels =
    args.identity === undefined
      ? variantLabels
      : { ...variantLabels, [CANARY_IDENTITY_LABEL]: args.identity };
  const labels = { ...args.labels, ...variantLabels };
  const objectName = args.identity === undefined ? undefined : `${name}-${args.identity}`;
  const ns = args.namespace;

  // A rollout replaces pods one at a time; allow two model loads before calling it stuck.
  const rolloutMinutes = Math.max(
    5,
    Math.ceil((2 * startupWindowSeconds(args.modelMaxBytes)) / 60) + 1,
  );

  const deployment = new k8s.apps.v1.Deployment(
    `${name}-deployment`,
    {
      metadata: {
        name: objectName,
        namespace: ns,
        labels,
        // On the Deployment, not its pods: a new commit with the same image rolls nothing.
        annotations:
          args.revision === undefined ? undefined : { [REVISION_ANNOTATION]: args.revision },
      },
      spec: {
        replicas: args.replicas,
        selector: { matchLabels: podLabels },
        strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
        template: {
          metadata: {
            labels: { ...labels, ...podLabels },
            annotations: {
              "prometheus.io/scrape": "true",
              "prometheus.io/port": String(CONTAINER_PORT),
              "prometheus.io/path": "/metrics",
            },
          },
          spec: scoringPodSpec({
            image: pulumi.output(args.image).apply((image) => checkImagePinned(image, parent)),
            serviceAccountName: args.serviceAccountName,
            podLabels,
            env: serviceEnv(parent, name, ns, labels, args),
            cpuRequest: args.cpuRequest,
            cpuLimit: args.cpuLimit,
            memoryRequest: args.memoryRequest,
            memoryLimit: args.memoryLimit,
            modelMaxBytes: args.modelMaxBytes,
            spreadMinNodes: args.spreadMinNodes,
          }),
        },
      },
    },
    {
      parent,
      // A crash-looping pod should fail `up` in minutes, not the default ten.
      customTimeouts: {
        create: `${rolloutMinutes}m`,
        update: `${rolloutMinutes}m`,
        delete: "2m",
      },
      // The autoscaler owns the replica count once the Deployment exists.
      ignoreChanges: ["spec.replicas"],
    },
  );

  const service = new k8s.core.v1.Service(
    `${name}-service`,
    {
      metadata: { name: objectName, namespace: ns, labels },
      spec: {
        type: args.serviceType,
        loadBalancerSourceRanges: args.loadBalancerSourceRanges,
        selector: podLabels,
        ports: [
          { name: "http", port: SERVICE_PORT, targetPort: CONTAINER_PORT_NAME, protocol: "TCP" },
        ],
      },
    },
    { parent, customTimeouts: { create: "5m", update: "5m" } },
  );

  new k8s.autoscaling.v2.HorizontalPodAutoscaler(
    `${name}-autoscaler`,
    {
      metadata: { namespace: ns, labels },
      spec: {
        scaleTargetRef: {
          apiVersion: "apps/v1",
          kind: "Deployment",
          name: deployment.metadata.name,
        },
        minReplicas: args.minReplicas,
        maxReplicas: args.maxReplicas,
        metrics: [
          {
            type: "Resource",
            resource: {
              name: "cpu",
              target: { type: "Utilization", averageUtilization: args.targetCpuUtilization },
            },
          },
        ],
      },
    },
    opts,
  );

  // maxUnavailable rather than minAvailable: with one replica, minAvailable 1 would block
  // every node drain forever.
  new k8s.policy.v1.PodDisruptionBudget(
    `${name}-disruption-budget`,
    {
      metadata: { namespace: ns, labels },
      spec: { maxUnavailable: 1, selector: { matchLabels: variantLabels } },
    },
    opts,
  );

  if (args.podMonitoring) {
    new k8s.apiextensions.CustomResource(
      `${name}-pod-monitoring`,
      {
        apiVersion: "monitoring.googleapis.com/v1",
        kind: "PodMonitoring",
        metadata: { namespace: ns, labels },
        spec: {
          selector: { matchLabels: variantLabels },
          endpoints: [{ port: CONTAINER_PORT_NAME, path: "/metrics", interval: "30s" }],
        },
      },
      opts,
    );
  }

  declareNetworkPolicies(parent, name, {
    namespace: ns,
    podLabels: variantLabels,
    labels,
    port: CONTAINER_PORT,
    gatewayNamespace: args.ingressFromNamespace,
    monitoringNamespace: args.monitoringNamespace,
    modelUri: args.modelUri,
    s3Endpoint: args.s3Store?.endpoint,
  });

  return {
    deployment,
    service,
    serviceHost: pulumi.interpolate`${service.metadata.name}.${service.metadata.namespace}.svc.cluster.local`,
    podLabels,
  };
}

/**
 * The service's environment. A MODEL_URI that holds a credential comes from a Secret, which
 * keeps it out of the Deployment. Pulumi replaces an autonamed Secret whose data changes, so a
 * new URI renames the reference and rolls the pods like any other change here.
 */
function serviceEnv(
  parent: pulumi.Resource,
  name: string,
  ns: pulumi.Output<string>,
  labels: Record<string, string>,
  args: VariantArgs,
): k8s.types.input.core.v1.EnvVar[] {
  const env: k8s.types.input.core.v1.EnvVar[] = [
    { name: "PORT", value: String(CONTAINER_PORT) },
    { name: "SHUTDOWN_GRACE_SECONDS", value: String(SHUTDOWN_GRACE_SECONDS) },
    { name: "MODEL_MAX_BYTES", value: String(args.modelMaxBytes) },
    {
      name: "MODEL_LOAD_TIMEOUT_SECONDS",
      value: String(modelLoadTimeoutSeconds(args.modelMaxBytes)),
    },
  ];
  if (args.modelUri !== undefined && args.modelUriSecret) {
    // Autonamed: a new URI makes a new Secret, so the pods' reference changes and they roll.
    const source = new k8s.core.v1.Secret(
      `${name}-model-source`,
      { metadata: { namespace: ns, labels }, stringData: { MODEL_URI: args.modelUri } },
      { parent },
    );
    env.push({
      name: "MODEL_URI",
      valueFrom: { secretKeyRef: { name: source.metadata.name, key: "MODEL_URI" } },
    });
  }
  if (args.s3Store !== undefined) {
    // Autonamed like the model source: new keys make a new Secret, and the pods roll.
    const keys = new k8s.core.v1.Secret(
      `${name}-model-store-keys`,
      {
        metadata: { namespace: ns, labels },
        stringData: {
          AWS_ACCESS_KEY_ID: args.s3Store.accessKeyId,
          AWS_SECRET_ACCESS_KEY: args.s3Store.secretAccessKey,
        },
      },
      { parent },
    );
    for (const key of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]) {
      env.push({ name: key, valueFrom: { secretKeyRef: { name: keys.metadata.name, key } } });
    }
  }
  const plain = {
    MODEL_URI: args.modelUriSecret ? undefined : args.modelUri,
    MODEL_NAME: args.modelName,
    MODEL_VERSION: args.modelVersion,
    MODEL_SHA256: args.modelSha256,
    AWS_REGION: args.s3Store?.region,
    AWS_ENDPOINT_URL_S3: args.s3Store?.endpoint,
  };
  for (const [key, value] of Object.entries(plain)) {
    if (value !== undefined) {
      env.push({ name: key, value });
    }
  }
  return env;
}
