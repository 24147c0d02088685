import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { INGRESS_GATEWAY_SELECTOR } from "./istio";
import { VARIANT_HEADER, type Variant } from "./variant-header";

/**
 * The only paths the gateway routes: predictions and model metadata of every protocol. The rest
 * (`/metrics`, `/openapi.json`, the kubelet's `/healthz` and `/readyz`) stays inside the cluster;
 * Envoy answers 404 for it.
 */
export const PUBLIC_ROUTES: ReadonlyArray<{ exact: string } | { prefix: string }> = [
  { exact: "/score" },
  { exact: "/api/v1.0/predictions" },
  { exact: "/predict" },
  { exact: "/v2" },
  { prefix: "/v2/" },
  { exact: "/v1/models" },
  { prefix: "/v1/models/" },
  { exact: "/invocations" },
  { exact: "/ping" },
  { exact: "/health" },
  { exact: "/version" },
];

/**
 * Seconds Envoy keeps an idle connection to a pod. Below the service's keep-alive (65 s), so the
 * gateway always closes first and never sends a request on a connection the pod is closing.
 */
export const UPSTREAM_IDLE_TIMEOUT_SECONDS = 60;

/**
 * Requests one gateway replica keeps in flight to the app, and queues beyond them, per scoring
 * pod it may reach: a pod answers fastest at about 32 concurrent requests (`npm run bench`), and
 * more only queue inside it. Past the limits Envoy answers 503 at once: load is shed, not queued.
 */
const IN_FLIGHT_PER_POD = 32;

/** Arguments of {@link IngressRoute}. */
export interface IngressRouteArgs {
  /** Namespace for the Gateway, VirtualService and DestinationRule: the app's own. Required. */
  readonly namespace: pulumi.Input<string>;
  /** Cluster DNS name of the Service to route to (`<svc>.<ns>.svc.cluster.local`). Required. */
  readonly serviceHost: pulumi.Input<string>;
  /** Port of that Service; default 80. */
  readonly servicePort?: pulumi.Input<number>;
  /** Most scoring pods there can be, which sizes the connection pool; default 1. */
  readonly maxPods?: pulumi.Input<number>;
  /** Per-request timeout at the gateway; default "30s". */
  readonly timeout?: pulumi.Input<string>;
  /**
   * kubernetes.io/tls Secret in the gateway's namespace; set, the gateway serves HTTPS on 443
   * with it and redirects HTTP there. Default unset: HTTP on 80 only.
   */
  readonly tlsSecretName?: pulumi.Input<string>;
  /** A canary beside the Service, sharing the traffic; default none: all goes to the Service. */
  readonly canary?: IngressCanaryArgs;
}

/** The canary's side of the route. */
export interface IngressCanaryArgs {
  /** Cluster DNS name of the canary's Service (on the same port). Required. */
  readonly serviceHost: pulumi.Input<string>;
  /** Percent (0-100) of the requests without a variant header it gets. Required. */
  readonly weight: pulumi.Input<number>;
  /** Most canary pods there can be, which sizes its connection pool. Required. */
  readonly maxPods: pulumi.Input<number>;
  /**
   * The canary's gate: the route names the canary only once it has completed, so a canary that
   * fails it gets no traffic and the route keeps what it had. Required.
   */
  readonly gate: pulumi.Resource;
}

/** The route's matches: every public path, with the variant header when one is given. */
function publicMatches(variant?: Variant) {
  return PUBLIC_ROUTES.map((uri) =>
    variant === undefined ? { uri } : { uri, headers: { [VARIANT_HEADER]: { exact: variant } } },
  );
}

/**
 * The app behind the Istio ingress gateway: a Gateway (HTTP on 80, or HTTPS on 443 with a redirect
 * from 80), a VirtualService that routes only {@link PUBLIC_ROUTES} and retries only what never
 * reached a pod, and a DestinationRule per Service that bounds the connections to the pods and
 * ejects failing ones. With a canary, the route shares the traffic by weight once the canary's
 * gate has passed, and a {@link VARIANT_HEADER} header pins a request to one side. Istio's CRDs
 * must exist first: pass the {@link Istio} component's `crds` in `dependsOn`.
 */
export class IngressRoute extends pulumi.ComponentResource {
  /** Name of the Gateway. */
  readonly gatewayName: pulumi.Output<string>;
  /** Name of the VirtualService. */
  readonly virtualServiceName: pulumi.Output<string>;

  constructor(name: string, args: IngressRouteArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("mlscore:index:IngressRoute", name, {}, opts);
    const servicePort = args.servicePort ?? 80;
    const maxPods = args.maxPods ?? 1;
    const timeout = args.timeout ?? "30s";

    const servers =
      args.tlsSecretName === undefined
        ? [{ port: { number: 80, name: "http", protocol: "HTTP" }, hosts: ["*"] }]
        : [
            {
              port: { number: 443, name: "https", protocol: "HTTPS" },
              hosts: ["*"],
              tls: { mode: "SIMPLE", credentialName: args.tlsSecretName },
            },
            {
              port: { number: 80, name: "http", protocol: "HTTP" },
              hosts: ["*"],
              tls: { httpsRedirect: true },
            },
          ];

    // networking.istio.io/v1 is served from Istio 1.22 on, with the same schema as v1beta1.
    const gateway = new k8s.apiextensions.CustomResource(
      `${name}-gateway`,
      {
        apiVersion: "networking.istio.io/v1",
        kind: "Gateway",
        metadata: { namespace: args.namespace },
        spec: { selector: { ...INGRESS_GATEWAY_SELECTOR }, servers },
      },
      { parent: this },
    );

    const port = { number: servicePort };
    const to = (host: pulumi.Input<string>, weight?: pulumi.Input<number>) => ({
      destination: { host, port },
      ...(weight === undefined ? {} : { weight }),
    });
    const route = (
      routeName: string,
      match: ReturnType<typeof publicMatches>,
      destinations: object[],
    ) => ({
      name: routeName,
      match,
      route: destinations,
      timeout,
      // Only failures where the request never reached a pod: a refused or failed
      // connection, a refused stream, a reset before the request went out. A reset or
      // timeout after that would run the prediction again while the first still computes.
      retries: { attempts: 2, retryOn: "connect-failure,refused-stream,reset-before-request" },
    });

    const stableRule = this.destinationRule(
      `${name}-destination-rule`,
      args.namespace,
      args.serviceHost,
      maxPods,
    );
    const canary = args.canary;
    // With a canary, a pinned request goes to its side; the rest are shared by weight.
    const http =
      canary === undefined
        ? [route("scoring", publicMatches(), [to(args.serviceHost)])]
        : [
            route("canary", publicMatches("canary"), [to(canary.serviceHost)]),
            route("stable", publicMatches("stable"), [to(args.serviceHost)]),
            route("scoring", publicMatches(), [
              to(
                args.serviceHost,
                pulumi.output(canary.weight).apply((w) => 100 - w),
              ),
              to(canary.serviceHost, canary.weight),
            ]),
          ];
    const canaryRule =
      canary === undefined
        ? []
        : [
            // After the gate too: it names the canary's host, which the old canary's traffic
            // still goes to until the route moves.
            this.destinationRule(
              `${name}-canary-destination-rule`,
              args.namespace,
              canary.serviceHost,
              canary.maxPods,
              [canary.gate],
            ),
          ];

    const virtualService = new k8s.apiextensions.CustomResource(
      `${name}-virtual-service`,
      {
        apiVersion: "networking.istio.io/v1",
        kind: "VirtualService",
        metadata: { namespace: args.namespace },
        spec: { hosts: ["*"], gateways: [gateway.metadata.name], http },
      },
      {
        parent: this,
        // A host without its rule would get Istio's unlimited defaults until the rule lands.
        dependsOn: [gateway, stableRule, ...canaryRule, ...(canary ? [canary.gate] : [])],
      },
    );

    this.gatewayName = gateway.metadata.name;
    this.virtualServiceName = virtualService.metadata.name;
    this.registerOutputs({
      gatewayName: this.gatewayName,
      virtualServiceName: this.virtualServiceName,
    });
  }

  /**
   * Bounds the connections to one Service's pods, sheds the excess and ejects failing pods.
   */
  private destinationRule(
    resourceName: string,
    namespace: pulumi.Input<string>,
    host: pulumi.Input<string>,
    maxPods: pulumi.Input<number>,
    dependsOn: pulumi.Resource[] = [],
  ): k8s.apiextensions.CustomResource {
    const inFlight = pulumi.output(maxPods).apply((pods) => pods * IN_FLIGHT_PER_POD);
    return new k8s.apiextensions.CustomResource(
      resourceName,
      {
        apiVersion: "networking.istio.io/v1",
        kind: "DestinationRule",
        metadata: { namespace },
        spec: {
          host,
          trafficPolicy: {
            connectionPool: {
              tcp: { maxConnections: inFlight, connectTimeout: "2s" },
              http: {
                http1MaxPendingRequests: inFlight,
                idleTimeout: `${UPSTREAM_IDLE_TIMEOUT_SECONDS}s`,
              },
            },
            // A pod that keeps failing (5xx, or connections that fail) rests for 30 s; at most
            // half the pods at once, so an overload does not eject them all.
            outlierDetection: {
              consecutive5xxErrors: 5,
              consecutiveGatewayErrors: 3,
              interval: "10s",
              baseEjectionTime: "30s",
              maxEjectionPercent: 50,
            },
          },
        },
      },
      { parent: this, dependsOn },
    );
  }
}
