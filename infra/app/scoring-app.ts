import { createHash } from "node:crypto";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { loadBalancerAddress } from "../platform/load-balancer";
import { redactUri } from "./model-store";
import { declareDenyAll } from "./network-policies";
import { checkImagePinned, declareVariant, SERVICE_PORT, type Variant } from "./variant";

export { checkImagePinned, REVISION_ANNOTATION, SERVICE_PORT } from "./variant";

/**
 * Name of the pods' Kubernetes ServiceAccount. Fixed rather than autonamed: a Workload Identity
 * binding has to name it before it exists.
 */
export const SERVICE_ACCOUNT_NAME = "mlscore-scoring";

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
  /** The S3 store an `s3://` modelUri is read from; default none. */
  readonly s3Store?: S3StoreArgs;
  /** A canary beside the stable pods: the same pods but for the model; default none. */
  readonly canary?: ScoringCanaryArgs;
}

/** The canary's model; everything else it shares with the stable pods. */
export interface ScoringCanaryArgs {
  /**
   * A hash of its model ({@link canaryIdentity}): names its Deployment and Service, so a new
   * model gets new ones while the old keep their share until the route moves. Required.
   */
  readonly identity: string;
  /** MODEL_URI of the canary. Required. */
  readonly modelUri: pulumi.Input<string>;
  /** Whether modelUri holds a credential, as for the stable model; default false. */
  readonly modelUriSecret?: boolean;
  /** MODEL_NAME: the canary answers under it. Required. */
  readonly modelName: pulumi.Input<string>;
  /** MODEL_VERSION: tells the canary from the stable model. Required. */
  readonly modelVersion: pulumi.Input<string>;
  /** MODEL_SHA256; default unset (not verified). */
  readonly modelSha256?: pulumi.Input<string>;
  /** The S3 store an `s3://` canary is read from; default none. */
  readonly s3Store?: S3StoreArgs;
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
 * A canary model's identity: 10 hex digits of a hash of what it serves (its URI without query
 * string or user info, so a re-signed URL is the same model, its digest, name and version).
 */
export function canaryIdentity(model: {
  readonly uri: string;
  readonly sha256?: string;
  readonly name: string;
  readonly version: string;
}): string {
  const parts = [redactUri(model.uri), model.sha256 ?? "", model.name, model.version];
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex").slice(0, 10);
}

/**
 * Pods a canary keeps at least: two, so a node drain never leaves its share without a pod, or
 * one when the stable pods are allowed one. It autoscales up to the stable pods' ceiling.
 */
export function canaryMinReplicas(stableMinReplicas: number): number {
  return Math.min(2, stableMinReplicas);
}

/**
 * The scoring service on Kubernetes: its namespace (Pod Security "restricted"), a ServiceAccount
 * for its pods (bound to a Google service account when given one), a namespace-wide deny-all
 * policy, and the stable pods with their Service, autoscaler, disruption budget and policies
 * (see {@link declareVariant}); with a canary, a second such set serving the canary's model.
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
  /** The canary's pods, Service and labels; undefined without a canary. */
  readonly canary?: Variant;

  constructor(name: string, args: ScoringAppArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("mlscore:index:ScoringApp", name, {}, opts);
    // A known image fails here, before any child exists; one from the build fails at its apply.
    if (typeof args.image === "string") {
      checkImagePinned(args.image, this);
    }

    const labels = {
      "app.kubernetes.io/name": "mlscore-scoring",
      "app.kubernetes.io/instance": name,
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

    declareDenyAll(this, name, { namespace: ns, labels });

    const { canary, ...shared } = args;
    const pods = {
      ...shared,
      namespace: ns,
      serviceAccountName: serviceAccount.metadata.name,
      labels,
    };
    const stable = declareVariant(this, name, pods);
    if (canary !== undefined) {
      const minReplicas = pulumi.output(args.minReplicas).apply(canaryMinReplicas);
      // Every model field named, so none of the stable model's (its digest) reaches the canary.
      this.canary = declareVariant(this, `${name}-canary`, {
        ...pods,
        identity: canary.identity,
        modelUri: canary.modelUri,
        modelUriSecret: canary.modelUriSecret,
        modelName: canary.modelName,
        modelVersion: canary.modelVersion,
        modelSha256: canary.modelSha256,
        s3Store: canary.s3Store,
        replicas: minReplicas,
        minReplicas,
        spreadMinNodes:
          args.spreadMinNodes === undefined ? undefined : canaryMinReplicas(args.spreadMinNodes),
      });
    }

    this.deployment = stable.deployment;
    this.service = stable.service;
    this.namespace = ns;
    this.serviceName = this.service.metadata.name;
    this.serviceHost = stable.serviceHost;
    this.servicePort = pulumi.output(SERVICE_PORT);
    this.serviceAccountName = serviceAccount.metadata.name;
    this.endpoint = pulumi
      .all([args.serviceType, this.service.status])
      .apply(([type, status]) =>
        type === "LoadBalancer" ? loadBalancerAddress(status) : undefined,
      );

    this.registerOutputs({
      namespace: this.namespace,
      serviceName: this.serviceName,
      serviceHost: this.serviceHost,
      servicePort: this.servicePort,
      endpoint: this.endpoint,
      deployment: this.deployment,
      service: this.service,
      serviceAccountName: this.serviceAccountName,
      canary: this.canary,
    });
  }
}
