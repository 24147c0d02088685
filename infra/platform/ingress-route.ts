import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { INGRESS_GATEWAY_SELECTOR } from "./istio";

/** Arguments of {@link IngressRoute}. */
export interface IngressRouteArgs {
  /** Namespace for the Gateway and VirtualService: the app's own. Required. */
  readonly namespace: pulumi.Input<string>;
  /** Cluster DNS name of the Service to route to (`<svc>.<ns>.svc.cluster.local`). Required. */
  readonly serviceHost: pulumi.Input<string>;
  /** Port of that Service; default 80. */
  readonly servicePort?: pulumi.Input<number>;
  /** Per-request timeout at the gateway; default "30s". */
  readonly timeout?: pulumi.Input<string>;
  /** Retries of a failed request (connection failures, 503 and resets only); default 2. */
  readonly retryAttempts?: pulumi.Input<number>;
}

/**
 * HTTP on port 80 of the Istio ingress gateway, for every host, routed to one Service. Istio's
 * CRDs must exist first: pass the {@link Istio} component's `crds` release in `dependsOn`.
 */
export class IngressRoute extends pulumi.ComponentResource {
  /** Name of the Gateway. */
  readonly gatewayName: pulumi.Output<string>;
  /** Name of the VirtualService. */
  readonly virtualServiceName: pulumi.Output<string>;

  constructor(name: string, args: IngressRouteArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("mlscore:index:IngressRoute", name, {}, opts);

    // networking.istio.io/v1 is served from Istio 1.22 on, with the same schema as v1beta1.
    const gateway = new k8s.apiextensions.CustomResource(
      `${name}-gateway`,
      {
        apiVersion: "networking.istio.io/v1",
        kind: "Gateway",
        metadata: { namespace: args.namespace },
        spec: {
          selector: { ...INGRESS_GATEWAY_SELECTOR },
          servers: [{ port: { number: 80, name: "http", protocol: "HTTP" }, hosts: ["*"] }],
        },
      },
      { parent: this },
    );

    const virtualService = new k8s.apiextensions.CustomResource(
      `${name}-virtual-service`,
      {
        apiVersion: "networking.istio.io/v1",
        kind: "VirtualService",
        metadata: { namespace: args.namespace },
        spec: {
          hosts: ["*"],
          gateways: [gateway.metadata.name],
          http: [
            {
              name: "scoring",
              match: [{ uri: { prefix: "/" } }],
              route: [
                {
                  destination: {
                    host: args.serviceHost,
                    port: { number: args.servicePort ?? 80 },
                  },
                },
              ],
              timeout: args.timeout ?? "30s",
              retries: {
                attempts: args.retryAttempts ?? 2,
                perTryTimeout: "10s",
                // Only failures where the request never reached the model: a retried predict
                // would not harm, but a retried 4xx would just fail again.
                retryOn: "connect-failure,refused-stream,reset,503",
              },
            },
          ],
        },
      },
      { parent: this, dependsOn: [gateway] },
    );

    this.gatewayName = gateway.metadata.name;
    this.virtualServiceName = virtualService.metadata.name;
    this.registerOutputs({
      gatewayName: this.gatewayName,
      virtualServiceName: this.virtualServiceName,
    });
  }
}
