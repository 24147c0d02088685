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

/** The port the Service exposes in the cluster (and on the load balancer). */
export const SERVICE_PORT = 80;

/**
 * Name of the pods' Kubernetes ServiceAccount. Fixed rather than autonamed: a Workload Identity
 * binding has to name it before it exists.
 */
export const SERVICE_ACCOUNT_NAME = "mlscore-scoring";

/** Annotation on the Deployment (not its pods) naming the commit that last deployed it. */
export const REVISION_ANNOTATION = "mlscore.dev/git-revision";

/** Arguments of {@link ScoringApp}. */
export interface ScoringAppArgs {
  /** Namespace to create for the app. Required. */
  readonly namespace: pulumi.Input<string>;
  /** Image reference, pinned by digest (`repo@sha256:...`). Required. */
  readonly image: pulumi.Input<string>;
  /** Pods at creation; the autoscaler owns the count afterwards. Required. */
  readonly replicas: pulumi.Input<number>;
  /** Autoscaler floor. Required. */
  readonly minReplicas: pulumi.Input<number>;
  /** Autoscaler ceiling. Required. */
  readonly maxReplicas: pulumi.Input<number>;
  /** Average CPU utilization (percent of the request) the autoscaler aims for. Required. */
  readonly targetCpuUtilization: pulumi.Input<number>;
  /** CPU request per pod, e.g. "250m". Required. */
  readonly cpuRequest: pulumi.Input<string>;
  /** CPU limit per pod, e.g. "1". Required. */
  readonly cpuLimit: pulumi.Input<string>;
  /** Memory request per pod, e.g. "256Mi". Required. */
  readonly memoryRequest: pulumi.Input<string>;
  /** Memory limit per pod, e.g. "512Mi". Required. */
  readonly memoryLimit: pulumi.Input<string>;
  /** MODEL_URI for the service; default unset (the image's built-in iris model). */
  readonly modelUri?: pulumi.Input<string>;
  /**
   * Whether modelUri holds a credential (a presigned URL's signature): it then reaches the pods
   * through a Kubernetes Secret, never the pod spec. Default false: a plain URI stays in the pod
   * spec, where `pulumi preview` shows its change.
   */
  readonly modelUriSecret?: boolean;
  /** MODEL_NAME for the service; default unset (the service derives it from the URI). */
  readonly modelName?: pulumi.Input<string>;
  /** MODEL_VERSION for the service; default unset (version 1). */
  readonly modelVersion?: pulumi.Input<string>;
  /** MODEL_SHA256: the model's bytes must hash to it; default unset (not verified). */
  readonly modelSha256?: pulumi.Input<string>;
  /**
   * The S3-compatible store an `s3://` model is read from: its region, endpoint and the pods'
   * keys, which reach them through a Kubernetes Secret. Default unset: the model is not in S3.
   */
  readonly s3Store?: S3StoreArgs;
  /**
   * Largest model the pods accept (MODEL_MAX_BYTES); sizes their /tmp, the service's load timeout
   * and the startup probe. Required.
   */
  readonly modelMaxBytes: number;
  /** Git commit being deployed, recorded on the Deployment only; default unset. */
  readonly revision?: pulumi.Input<string>;
  /** How the Service is exposed: LoadBalancer when no ingress gateway fronts it. Required. */
  readonly serviceType: pulumi.Input<"LoadBalancer" | "ClusterIP">;
  /**
   * IPv4 CIDRs a LoadBalancer Service admits (Kubernetes rejects them on other types); default
   * unset: any source.
   */
  readonly loadBalancerSourceRanges?: pulumi.Input<pulumi.Input<string>[]>;
  /**
   * Namespace of the ingress gateway allowed to reach the pods. Default unset: the container
   * port is open to any source, as traffic then arrives straight from the load balancer.
   */
  readonly ingressFromNamespace?: pulumi.Input<string>;
  /**
   * Email of the Google service account the pods act as through GKE Workload Identity. Default
   * unset: the pods' ServiceAccount carries no Google identity.
   */
  readonly gcpServiceAccount?: pulumi.Input<string>;
  /**
   * Spread the pods over at least this many nodes, as a rule (`DoNotSchedule` with `minDomains`):
   * pods that would break it stay Pending, which makes a cluster autoscaler add nodes. Default
   * unset: the spread is only a preference, for a fixed node count such as Kind's.
   */
  readonly spreadMinNodes?: number;
  /** Namespace of the Prometheus that scrapes /metrics, admitted to the pods; default unset. */
  readonly monitoringNamespace?: pulumi.Input<string>;
  /**
   * Declare a PodMonitoring for GKE's managed Prometheus (its CRD exists only there); default
   * false. Every target gets the prometheus.io scrape annotations.
   */
  readonly podMonitoring?: boolean;
}

/** Where the pods read an `s3://` model, and with which keys. */
export interface S3StoreArgs {
  /** AWS_REGION. */
  readonly region: string;
  /** AWS_ENDPOINT_URL_S3, for another store than AWS S3; undefined: AWS S3. */
  readonly endpoint?: string;
  readonly accessKeyId: pulumi.Input<string>;
  /** Kept in a Kubernetes Secret, never the pod spec. */
  readonly secretAccessKey: pulumi.Input<string>;
}

/**
 * Throws unless `image` is pinned by digest: a tag can move under a running Deployment, so
 * nodes could run something other than what was built and a rollout would not be triggered.
 */
export function checkImagePinned(image: string): string {
  if (!isPinnedImage(image)) {
    throw new Error(
      `ScoringApp image must be pinned by digest (repo@sha256:<64 hex>), got "${image}"`,
    );
  }
  return image;
}

/**
 * The scoring service on Kubernetes: its namespace (Pod Security "restricted"), a ServiceAccount
 * for its pods (bound to a Google service account when given one), a Deployment that rolls out
 * without downtime, a Service, a CPU autoscaler, a disruption budget and network
 * policies that deny everything the service does not need.
 */
export class ScoringApp extends pulumi.ComponentResource {
  /** Name of the namespace the app runs in. */
  readonly namespace: pulumi.Output<string>;
  /** Name of the Service. */
  readonly serviceName: pulumi.Output<string>;
  /** The Service's cluster DNS name, `<service>.<namespace>.svc.cluster.local`. */
  readonly serviceHost: pulumi.Output<string>;
  /** The Service's port. */
  readonly servicePort: pulumi.Output<number>;
  /** The load balancer's IP (or hostname) when the Service is a LoadBalancer; else undefined. */
  readonly endpoint: pulumi.Output<string | undefined>;
  /** The Deployment, for dependents that must wait for ready pods. */
  readonly deployment: k8s.apps.v1.Deployment;
  /** The Service. */
  readonly service: k8s.core.v1.Service;
  /** Name of the Kubernetes ServiceAccount the pods run as. */
  readonly serviceAccountName: pulumi.Output<string>;

  constructor(name: string, args: ScoringAppArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("mlscore:index:ScoringApp", name, {}, opts);
    // A known image fails here, before any child exists; one from the build fails at its apply.
    if (typeof args.image === "string") {
      checkImagePinned(args.image);
    }

    const appLabels = {
      "app.kubernetes.io/name": "mlscore-scoring",
      "app.kubernetes.io/instance": name,
    };
    const labels = {
      ...appLabels,
      "app.kubernetes.io/component": "scoring",
      "app.kubernetes.io/part-of": "mlscore",
      "app.kubernetes.io/managed-by": "pulumi",
    };

    const namespace = new k8s.core.v1.Namespace(
      `${name}-namespace`,
      {
        metadata: {
          name: args.namespace,
          labels: {
            "app.kubernetes.io/part-of": "mlscore",
            "mlscore.dev/network-policy": "isolated",
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/audit": "restricted",
          },
        },
      },
      { parent: this },
    );
    const ns = namespace.metadata.name;

    // The pods' own account rather than the namespace's `default`, so an identity granted to
    // them is granted to nothing else. No API token: the service never calls the API server,
    // and the GKE metadata server issues Workload Identity tokens without one.
    const serviceAccount = new k8s.core.v1.ServiceAccount(
      `${name}-service-account`,
      {
        metadata: {
          name: SERVICE_ACCOUNT_NAME,
          namespace: ns,
          labels,
          annotations:
            args.gcpServiceAccount === undefined
              ? undefined
              : { "iam.gke.io/gcp-service-account": args.gcpServiceAccount },
        },
        automountServiceAccountToken: false,
      },
      { parent: this },
    );

    // A rollout replaces pods one at a time; allow two model loads before calling it stuck.
    const rolloutMinutes = Math.max(
      5,
      Math.ceil((2 * startupWindowSeconds(args.modelMaxBytes)) / 60) + 1,
    );

    this.deployment = new k8s.apps.v1.Deployment(
      `${name}-deployment`,
      {
        metadata: {
          namespace: ns,
          labels,
          // On the Deployment, not its pods: a new commit with the same image rolls nothing.
          annotations:
            args.revision === undefined ? undefined : { [REVISION_ANNOTATION]: args.revision },
        },
        spec: {
          replicas: args.replicas,
          selector: { matchLabels: appLabels },
          strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
          template: {
            metadata: {
              labels,
              annotations: {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": String(CONTAINER_PORT),
                "prometheus.io/path": "/metrics",
              },
            },
            spec: scoringPodSpec({
              image: pulumi.output(args.image).apply(checkImagePinned),
              serviceAccountName: serviceAccount.metadata.name,
              podLabels: appLabels,
              env: this.serviceEnv(name, ns, labels, args),
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
        parent: this,
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

    this.service = new k8s.core.v1.Service(
      `${name}-service`,
      {
        metadata: { namespace: ns, labels },
        spec: {
          type: args.serviceType,
          loadBalancerSourceRanges: args.loadBalancerSourceRanges,
          selector: appLabels,
          ports: [
            { name: "http", port: SERVICE_PORT, targetPort: CONTAINER_PORT_NAME, protocol: "TCP" },
          ],
        },
      },
      { parent: this, customTimeouts: { create: "5m", update: "5m" } },
    );

    new k8s.autoscaling.v2.HorizontalPodAutoscaler(
      `${name}-autoscaler`,
      {
        metadata: { namespace: ns, labels },
        spec: {
          scaleTargetRef: {
            apiVersion: "apps/v1",
            kind: "Deployment",
            name: this.deployment.metadata.name,
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
      { parent: this },
    );

    // maxUnavailable rather than minAvailable: with one replica, minAvailable 1 would block
    // every node drain forever.
    new k8s.policy.v1.PodDisruptionBudget(
      `${name}-disruption-budget`,
      {
        metadata: { namespace: ns, labels },
        spec: { maxUnavailable: 1, selector: { matchLabels: appLabels } },
      },
      { parent: this },
    );

    if (args.podMonitoring) {
      new k8s.apiextensions.CustomResource(
        `${name}-pod-monitoring`,
        {
          apiVersion: "monitoring.googleapis.com/v1",
          kind: "PodMonitoring",
          metadata: { namespace: ns, labels },
          spec: {
            selector: { matchLabels: appLabels },
            endpoints: [{ port: CONTAINER_PORT_NAME, path: "/metrics", interval: "30s" }],
          },
        },
        { parent: this },
      );
    }

    declareNetworkPolicies(this, name, {
      namespace: ns,
      podLabels: appLabels,
      labels,
      port: CONTAINER_PORT,
      gatewayNamespace: args.ingressFromNamespace,
      monitoringNamespace: args.monitoringNamespace,
      modelUri: args.modelUri,
      s3Endpoint: args.s3Store?.endpoint,
    });

    this.namespace = ns;
    this.serviceName = this.service.metadata.name;
    this.serviceHost = pulumi.interpolate`${this.service.metadata.name}.${this.service.metadata.namespace}.svc.cluster.local`;
    this.servicePort = pulumi.output(SERVICE_PORT);
    this.serviceAccountName = serviceAccount.metadata.name;
    this.endpoint = pulumi.all([args.serviceType, this.service.status]).apply(([type, status]) => {
      if (type !== "LoadBalancer") {
        return undefined;
      }
      const ingress = status?.loadBalancer?.ingress?.[0];
      return ingress?.ip || ingress?.hostname || undefined;
    });

    this.registerOutputs({
      namespace: this.namespace,
      serviceName: this.serviceName,
      serviceHost: this.serviceHost,
      servicePort: this.servicePort,
      endpoint: this.endpoint,
      serviceAccountName: this.serviceAccountName,
    });
  }

  /**
   * The service's environment. MODEL_URI comes from a Secret: it may carry a credential, and a
   * Secret keeps it out of the Deployment. Pulumi replaces an autonamed Secret whose data changes,
   * so a new URI renames the reference and rolls the pods like any other change here.
   */
  private serviceEnv(
    name: string,
    ns: pulumi.Output<string>,
    labels: Record<string, string>,
    args: ScoringAppArgs,
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
        { parent: this },
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
        { parent: this },
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
}
