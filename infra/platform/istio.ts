import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

/** Where Istio publishes its Helm charts. */
export const ISTIO_CHART_REPO = "https://istio-release.storage.googleapis.com/charts";
/** The Istio version installed when none is given. */
export const DEFAULT_ISTIO_VERSION = "1.24.2";
/** Labels of the ingress gateway pods, which a Gateway's selector names. */
export const INGRESS_GATEWAY_SELECTOR: Readonly<Record<string, string>> = {
  istio: "ingressgateway",
};
/** Helm release name of the gateway; the chart names its Deployment and Service after it. */
export const INGRESS_GATEWAY_NAME = "istio-ingressgateway";

/** Arguments of {@link Istio}. */
export interface IstioArgs {
  /** Istio chart version; default {@link DEFAULT_ISTIO_VERSION}. */
  readonly version?: pulumi.Input<string>;
  /** Namespace for the control plane (base and istiod); default "istio-system". */
  readonly systemNamespace?: pulumi.Input<string>;
  /** Namespace for the ingress gateway; default "istio-ingress". */
  readonly gatewayNamespace?: pulumi.Input<string>;
  /** Service type of the ingress gateway; default "LoadBalancer". */
  readonly gatewayServiceType?: pulumi.Input<"LoadBalancer" | "NodePort" | "ClusterIP">;
}

/**
 * Istio from its official charts: `base` (CRDs), `istiod` and the `gateway` chart as the ingress
 * gateway, each waiting for the one before. Custom resources of networking.istio.io must depend
 * on {@link Istio.crds}.
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
  /** The gateway Service's load balancer IP (or hostname); undefined until one is assigned. */
  readonly gatewayAddress: pulumi.Output<string | undefined>;

  constructor(name: string, args: IstioArgs = {}, opts: pulumi.ComponentResourceOptions = {}) {
    super("mlscore:index:Istio", name, {}, opts);

    const version = args.version ?? DEFAULT_ISTIO_VERSION;
    const systemNamespace = new k8s.core.v1.Namespace(
      `${name}-system-namespace`,
      {
        metadata: {
          name: args.systemNamespace ?? "istio-system",
          labels: { "app.kubernetes.io/part-of": "mlscore" },
        },
      },
      { parent: this },
    );
    const gatewayNamespace = new k8s.core.v1.Namespace(
      `${name}-gateway-namespace`,
      {
        metadata: {
          name: args.gatewayNamespace ?? "istio-ingress",
          labels: { "app.kubernetes.io/part-of": "mlscore" },
        },
      },
      { parent: this },
    );

    const chart = (chartName: string) => ({
      chart: chartName,
      version,
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

    this.istiod = new k8s.helm.v3.Release(
      `${name}-istiod`,
      {
        ...chart("istiod"),
        name: "istiod",
        namespace: systemNamespace.metadata.name,
        // The chart's default request (500m CPU, 2Gi) does not fit a laptop's Kind cluster.
        values: {
          pilot: {
            autoscaleEnabled: false,
            resources: { requests: { cpu: "100m", memory: "256Mi" } },
          },
        },
      },
      { parent: this, dependsOn: [this.crds] },
    );

    this.gateway = new k8s.helm.v3.Release(
      `${name}-gateway`,
      {
        ...chart("gateway"),
        name: INGRESS_GATEWAY_NAME,
        namespace: gatewayNamespace.metadata.name,
        values: {
          labels: { ...INGRESS_GATEWAY_SELECTOR },
          service: { type: args.gatewayServiceType ?? "LoadBalancer" },
        },
      },
      // The gateway's pods get their proxy config injected by istiod's webhook.
      { parent: this, dependsOn: [this.istiod] },
    );

    // Read back the Service the chart created, for its load balancer address.
    const gatewayService = k8s.core.v1.Service.get(
      `${name}-gateway-service`,
      pulumi.interpolate`${this.gateway.status.namespace}/${this.gateway.status.name}`,
      { parent: this, dependsOn: [this.gateway] },
    );

    this.gatewayNamespace = gatewayNamespace.metadata.name;
    this.gatewayAddress = gatewayService.status.apply((status) => {
      const ingress = status?.loadBalancer?.ingress?.[0];
      return ingress?.ip || ingress?.hostname || undefined;
    });

    this.registerOutputs({
      gatewayNamespace: this.gatewayNamespace,
      gatewayAddress: this.gatewayAddress,
    });
  }
}
