import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { gatewayServiceResourceName } from "./istio-names";
import { loadBalancerAddress } from "./load-balancer";

/** Where Istio publishes its Helm charts. */
export const ISTIO_CHART_REPO = "https://istio-release.storage.googleapis.com/charts";
/**
 * Kubernetes minors the Istio minor of Pulumi.yaml's `istioVersion` is supported on ("Istio 1.31.0
 * is officially supported on Kubernetes versions 1.32 to 1.36", its release announcement). The
 * Kind node image in infra/kind/cluster.yaml and GKE's regular channel (1.34 to 1.36 as of
 * November 2026) must lie inside it. Istio supports a minor until six weeks after the second one
 * after it; move on when istio.io/latest/docs/releases/supported-releases lists a newer one whose
 * Kubernetes range covers these clusters.
 */
export const ISTIO_KUBERNETES_RANGE = { istio: "1.31", oldest: "1.32", newest: "1.36" } as const;
/** Labels of the ingress gateway pods, which a Gateway's selector names. */
export const INGRESS_GATEWAY_SELECTOR: Readonly<Record<string, string>> = {
  istio: "ingressgateway",
};
/** Helm release name of the gateway; the chart names its Deployment after it, and so does the Service. */
export const INGRESS_GATEWAY_NAME = "istio-ingressgateway";
/** Namespace of the ingress gateway the stack installs. */
export const ISTIO_GATEWAY_NAMESPACE = "istio-ingress";
/** Namespace of Istio's control plane the stack installs. */
export const ISTIO_SYSTEM_NAMESPACE = "istio-system";
/** Replicas of istiod and of the gateway: a node drain then moves one while the other serves. */
export const MESH_REPLICAS = 2;

/** The labels the gateway chart gives its pods (its `gateway.selectorLabels`). */
const GATEWAY_POD_LABELS = { app: INGRESS_GATEWAY_NAME, ...INGRESS_GATEWAY_SELECTOR };

/**
 * A preference to put the pods `labels` selects on different nodes. A preference, not a rule: the
 * disruption budgets already keep one replica up through a drain, and a hard rule would leave the
 * mesh half installed (and the chart's wait failing) on a one-node cluster.
 */
function spreadAcrossNodes(labels: Record<string, string>) {
  return [
    {
      maxSkew: 1,
      topologyKey: "kubernetes.io/hostname",
      whenUnsatisfiable: "ScheduleAnyway",
      labelSelector: { matchLabels: labels },
    },
  ];
}

/** Arguments of {@link Istio}. */
export interface IstioArgs {
  /** Istio chart version (Pulumi.yaml's `istioVersion`). Required. */
  readonly version: pulumi.Input<string>;
  /** Namespace for the control plane (base and istiod); default {@link ISTIO_SYSTEM_NAMESPACE}. */
  readonly systemNamespace?: pulumi.Input<string>;
  /** Namespace for the ingress gateway; default {@link ISTIO_GATEWAY_NAMESPACE}. */
  readonly gatewayNamespace?: pulumi.Input<string>;
  /** IPv4 CIDRs the gateway's load balancer admits; default empty, any source. */
  readonly loadBalancerSourceRanges?: pulumi.Input<pulumi.Input<string>[]>;
  /** Whether the load balancer also opens 443 for HTTPS; default false. */
  readonly https?: boolean;
}

/**
 * Istio from its official charts: `base` (CRDs), `istiod` and the `gateway` chart as the ingress
 * gateway, each waiting for the one before, istiod and the gateway with two replicas, a
 * disruption budget that lets one go and a spread across nodes; and the gateway's LoadBalancer
 * Service. Custom resources of networking.istio.io must depend on {@link Istio.crds}.
 */
export class Istio extends pulumi.ComponentResource {
  /** The release that installs Istio's CRDs. */
  readonly crds: k8s.helm.v3.Release;
  /** The control plane release. */
  readonly istiod: k8s.helm.v3.Release;
  /** The ingress gateway release. */
  readonly gateway: k8s.helm.v3.Release;
  /** Namespace of the ingress gateway, for network policies that admit its traffic. */
  readonly gatewayNamespace: pulumi.Output<string>;
  /** The LoadBalancer Service in front of the gateway pods. */
  readonly gatewayService: k8s.core.v1.Service;
  /** The gateway Service's load balancer IP (or hostname); undefined until one is assigned. */
  readonly gatewayAddress: pulumi.Output<string | undefined>;

  constructor(name: string, args: IstioArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("mlscore:index:Istio", name, {}, opts);
    const systemNamespaceName = args.systemNamespace ?? ISTIO_SYSTEM_NAMESPACE;
    const gatewayNamespaceName = args.gatewayNamespace ?? ISTIO_GATEWAY_NAMESPACE;
    const https = args.https ?? false;

    const systemNamespace = new k8s.core.v1.Namespace(
      `${name}-system-namespace`,
      {
        metadata: {
          name: systemNamespaceName,
          labels: { "app.kubernetes.io/part-of": "mlscore" },
        },
      },
      { parent: this },
    );
    const gatewayNamespace = new k8s.core.v1.Namespace(
      `${name}-gateway-namespace`,
      {
        metadata: {
          name: gatewayNamespaceName,
          labels: { "app.kubernetes.io/part-of": "mlscore" },
        },
      },
      { parent: this },
    );

    const chart = (chartName: string) => ({
      chart: chartName,
      version: args.version,
      repositoryOpts: { repo: ISTIO_CHART_REPO },
      // Helm waits for every workload to be Ready, so dependents start on a working mesh.
      skipAwait: false,
      atomic: true,
      cleanupOnFail: true,
      timeout: 600,
    });

    this.crds = new k8s.helm.v3.Release(
      `${name}-base`,
      {
        ...chart("base"),
        name: "istio-base",
        namespace: systemNamespace.metadata.name,
        values: { defaultRevision: "default" },
      },
      { parent: this },
    );

    // The chart's values sit at the top level (not under `pilot:`, which it ignores). Its default
    // request (500m CPU, 2Gi) does not fit a laptop's Kind cluster.
    this.istiod = new k8s.helm.v3.Release(
      `${name}-istiod`,
      {
        ...chart("istiod"),
        name: "istiod",
        namespace: systemNamespace.metadata.name,
        values: {
          autoscaleEnabled: false,
          replicaCount: MESH_REPLICAS,
          // The chart's budget is minAvailable 1, which with one replica blocks every drain.
          pdb: { maxUnavailable: 1 },
          topologySpreadConstraints: spreadAcrossNodes({ app: "istiod" }),
          resources: { requests: { cpu: "100m", memory: "256Mi" } },
        },
      },
      { parent: this, dependsOn: [this.crds] },
    );

    // No Service from the chart ("None"): the program owns the load balancer below, so `destroy`
    // waits for the cloud to release it before the cluster goes.
    this.gateway = new k8s.helm.v3.Release(
      `${name}-gateway`,
      {
        ...chart("gateway"),
        name: INGRESS_GATEWAY_NAME,
        namespace: gatewayNamespace.metadata.name,
        values: {
          labels: { ...INGRESS_GATEWAY_SELECTOR },
          service: { type: "None" },
          autoscaling: { enabled: true, minReplicas: MESH_REPLICAS, maxReplicas: 5 },
          podDisruptionBudget: { maxUnavailable: 1 },
          topologySpreadConstraints: spreadAcrossNodes(GATEWAY_POD_LABELS),
        },
      },
      // The gateway's pods get their proxy config injected by istiod's webhook.
      { parent: this, dependsOn: [this.istiod] },
    );

    // The public entry point. Pulumi deletes it and waits until its finalizer is gone, i.e. until
    // the cloud load balancer, its forwarding rule and firewall rules are released. Local traffic
    // policy: health checks go to the nodes running a gateway, so GKE makes no cluster-wide node
    // health-check firewall rule (the one that outlives clusters and blocks the network's
    // deletion), and the gateway sees the client's address.
    const ports = [{ name: "http2", port: 80, targetPort: 80, protocol: "TCP" }];
    if (https) {
      ports.push({ name: "https", port: 443, targetPort: 443, protocol: "TCP" });
    }
    this.gatewayService = new k8s.core.v1.Service(
      gatewayServiceResourceName(name),
      {
        metadata: {
          name: INGRESS_GATEWAY_NAME,
          namespace: gatewayNamespace.metadata.name,
          labels: { ...GATEWAY_POD_LABELS, "app.kubernetes.io/part-of": "mlscore" },
        },
        spec: {
          type: "LoadBalancer",
          externalTrafficPolicy: "Local",
          loadBalancerSourceRanges: args.loadBalancerSourceRanges,
          selector: GATEWAY_POD_LABELS,
          ports,
        },
      },
      {
        parent: this,
        dependsOn: [this.gateway],
        customTimeouts: { create: "10m", update: "10m", delete: "10m" },
      },
    );

    this.gatewayNamespace = gatewayNamespace.metadata.name;
    this.gatewayAddress = this.gatewayService.status.apply(loadBalancerAddress);

    this.registerOutputs({
      crds: this.crds,
      istiod: this.istiod,
      gateway: this.gateway,
      gatewayNamespace: this.gatewayNamespace,
      gatewayService: this.gatewayService,
      gatewayAddress: this.gatewayAddress,
    });
  }
}
