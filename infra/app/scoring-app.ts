import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { isPinnedImage } from "../policy/workloads";

/** The port the service listens on inside the pod, named so probes and the Service follow it. */
export const CONTAINER_PORT = 8080;
/** The name of {@link CONTAINER_PORT} on the container. */
export const CONTAINER_PORT_NAME = "http";
/** The port the Service exposes in the cluster (and on the load balancer). */
export const SERVICE_PORT = 80;
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

/**
 * Name of the pods' Kubernetes ServiceAccount. Fixed rather than autonamed: a Workload Identity
 * binding has to name it before it exists.
 */
export const SERVICE_ACCOUNT_NAME = "mlscore-scoring";

/** Private and link-local ranges the model-store egress rule must not open. */
export const PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"];

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
  /** MODEL_NAME for the service; default unset (the service derives it from the URI). */
  readonly modelName?: pulumi.Input<string>;
  /** How the Service is exposed: LoadBalancer when no ingress gateway fronts it. Required. */
  readonly serviceType: pulumi.Input<"LoadBalancer" | "ClusterIP">;
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
}

/** Model URIs the pods fetch over the network, and so need egress to the internet for. */
export function isRemoteModelUri(uri: string | undefined): boolean {
  return uri !== undefined && /^(https|gs):\/\//.test(uri);
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
 * Egress rules the pods need to fetch their model: HTTPS to public addresses for `https://`
 * and `gs://`, plus the GKE metadata server for `gs://` (Workload Identity tokens). Local and
 * built-in models need none.
 */
export function modelStoreEgress(
  uri: string | undefined,
): k8s.types.input.networking.v1.NetworkPolicyEgressRule[] {
  if (!isRemoteModelUri(uri)) {
    return [];
  }
  const rules: k8s.types.input.networking.v1.NetworkPolicyEgressRule[] = [
    {
      to: [{ ipBlock: { cidr: "0.0.0.0/0", except: PRIVATE_RANGES } }],
      ports: [{ protocol: "TCP", port: 443 }],
    },
  ];
  if (uri?.startsWith("gs://")) {
    // GKE serves Workload Identity tokens from the metadata server: 169.254.169.254:80, which
    // Dataplane V2 clusters redirect to 169.254.169.252:988.
    rules.push({
      to: [{ ipBlock: { cidr: "169.254.169.254/32" } }],
      ports: [{ protocol: "TCP", port: 80 }],
    });
    rules.push({
      to: [{ ipBlock: { cidr: "169.254.169.252/32" } }],
      ports: [{ protocol: "TCP", port: 988 }],
    });
  }
  return rules;
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

    const env: k8s.types.input.core.v1.EnvVar[] = [
      { name: "PORT", value: String(CONTAINER_PORT) },
      { name: "SHUTDOWN_GRACE_SECONDS", value: String(SHUTDOWN_GRACE_SECONDS) },
    ];
    if (args.modelUri !== undefined) {
      env.push({ name: "MODEL_URI", value: args.modelUri });
    }
    if (args.modelName !== undefined) {
      env.push({ name: "MODEL_NAME", value: args.modelName });
    }

    const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({
      httpGet: { path, port: CONTAINER_PORT_NAME },
      periodSeconds,
      timeoutSeconds: 2,
      failureThreshold,
    });

    this.deployment = new k8s.apps.v1.Deployment(
      `${name}-deployment`,
      {
        metadata: { namespace: ns, labels },
        spec: {
          replicas: args.replicas,
          selector: { matchLabels: appLabels },
          strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
          template: {
            metadata: { labels },
            spec: {
              serviceAccountName: serviceAccount.metadata.name,
              automountServiceAccountToken: false,
              enableServiceLinks: false,
              terminationGracePeriodSeconds: TERMINATION_GRACE_SECONDS,
              securityContext: {
                runAsNonRoot: true,
                runAsUser: NONROOT_ID,
                runAsGroup: NONROOT_ID,
                fsGroup: NONROOT_ID,
                seccompProfile: { type: "RuntimeDefault" },
              },
              topologySpreadConstraints: [
                {
                  maxSkew: 1,
                  topologyKey: "kubernetes.io/hostname",
                  whenUnsatisfiable: "ScheduleAnyway",
                  labelSelector: { matchLabels: appLabels },
                  matchLabelKeys: ["pod-template-hash"],
                },
              ],
              containers: [
                {
                  name: "scoring",
                  image: pulumi.output(args.image).apply(checkImagePinned),
                  imagePullPolicy: "IfNotPresent",
                  ports: [
                    { name: CONTAINER_PORT_NAME, containerPort: CONTAINER_PORT, protocol: "TCP" },
                  ],
                  env,
                  resources: {
                    requests: { cpu: args.cpuRequest, memory: args.memoryRequest },
                    limits: { cpu: args.cpuLimit, memory: args.memoryLimit },
                  },
                  // The server listens only once the model is loaded, which for a remote model
                  // can take a while: allow up to two minutes before liveness takes over.
                  startupProbe: probe("/healthz", 2, 60),
                  livenessProbe: probe("/healthz", 10, 3),
                  readinessProbe: probe("/readyz", 5, 2),
                  // The image is distroless (no shell, no sleep binary), so an exec pause is
                  // impossible; the built-in sleep handler needs Kubernetes 1.30 or later.
                  lifecycle: { preStop: { sleep: { seconds: PRE_STOP_SLEEP_SECONDS } } },
                  securityContext: {
                    runAsNonRoot: true,
                    allowPrivilegeEscalation: false,
                    readOnlyRootFilesystem: true,
                    capabilities: { drop: ["ALL"] },
                    seccompProfile: { type: "RuntimeDefault" },
                  },
                  volumeMounts: [{ name: "tmp", mountPath: "/tmp" }],
                },
              ],
              volumes: [{ name: "tmp", emptyDir: { sizeLimit: "1Gi" } }],
            },
          },
        },
      },
      {
        parent: this,
        // A crash-looping pod should fail `up` in minutes, not the default ten.
        customTimeouts: { create: "5m", update: "5m", delete: "2m" },
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

    this.declareNetworkPolicies(name, ns, appLabels, labels, args);

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

  private declareNetworkPolicies(
    name: string,
    ns: pulumi.Output<string>,
    appLabels: Record<string, string>,
    labels: Record<string, string>,
    args: ScoringAppArgs,
  ): void {
    const opts = { parent: this };
    const appPort = [{ protocol: "TCP", port: CONTAINER_PORT }];

    new k8s.networking.v1.NetworkPolicy(
      `${name}-deny-all`,
      {
        metadata: { namespace: ns, labels },
        spec: { podSelector: {}, policyTypes: ["Ingress", "Egress"] },
      },
      opts,
    );

    const sameNamespace = { podSelector: {} };
    const ingressFrom =
      args.ingressFromNamespace === undefined
        ? pulumi.output([
            // Without a gateway, clients come straight through the load balancer: any source.
            { ports: appPort },
          ])
        : pulumi.output(args.ingressFromNamespace).apply((gatewayNamespace) => [
            {
              from: [
                {
                  namespaceSelector: {
                    matchLabels: { "kubernetes.io/metadata.name": gatewayNamespace },
                  },
                },
                sameNamespace,
              ],
              ports: appPort,
            },
          ]);
    new k8s.networking.v1.NetworkPolicy(
      `${name}-allow-ingress`,
      {
        metadata: { namespace: ns, labels },
        spec: {
          podSelector: { matchLabels: appLabels },
          policyTypes: ["Ingress"],
          ingress: ingressFrom,
        },
      },
      opts,
    );

    new k8s.networking.v1.NetworkPolicy(
      `${name}-allow-dns`,
      {
        metadata: { namespace: ns, labels },
        spec: {
          podSelector: { matchLabels: appLabels },
          policyTypes: ["Egress"],
          egress: [
            {
              to: [
                {
                  namespaceSelector: {
                    matchLabels: { "kubernetes.io/metadata.name": "kube-system" },
                  },
                  podSelector: { matchLabels: { "k8s-app": "kube-dns" } },
                },
              ],
              ports: [
                { protocol: "UDP", port: 53 },
                { protocol: "TCP", port: 53 },
              ],
            },
          ],
        },
      },
      opts,
    );

    // Declared for every model URI so the resource set does not depend on a value; for local
    // models its rule list is empty and it opens nothing.
    new k8s.networking.v1.NetworkPolicy(
      `${name}-allow-model-store`,
      {
        metadata: { namespace: ns, labels },
        spec: {
          podSelector: { matchLabels: appLabels },
          policyTypes: ["Egress"],
          egress: pulumi.output(args.modelUri).apply(modelStoreEgress),
        },
      },
      opts,
    );
  }
}
