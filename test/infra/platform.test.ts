import { KEEP_ALIVE_TIMEOUT_MS } from "../../service/src/http/express-server";
import * as k8s from "@pulumi/kubernetes";
import {
  IngressRoute,
  PUBLIC_ROUTES,
  UPSTREAM_IDLE_TIMEOUT_SECONDS,
} from "../../infra/platform/ingress-route";
import {
  INGRESS_GATEWAY_NAME,
  ISTIO_CHART_REPO,
  Istio,
  MESH_REPLICAS,
} from "../../infra/platform/istio";
import { METALLB_CHART_REPO, MetalLb, checkAddressRange } from "../../infra/platform/metallb";
import { METRICS_SERVER_CHART_REPO, MetricsServer } from "../../infra/platform/metrics-server";
import { fakeLoadBalancerIp } from "./harness/mocks";
import { type RecordedResource, type RecordedRun } from "./harness/recorded-run";
import { recordResources } from "./harness/recording";
import { validateKubernetesObject } from "./schemas/kubernetes";

/**
 * The top-level values Istio 1.31's charts read (their values.yaml). A key outside these is
 * silently ignored by the chart, which is how `pilot:` once hid istiod's settings.
 */
const CHART_VALUE_KEYS: Record<string, readonly string[]> = {
  istiod: [
    "autoscaleEnabled",
    "autoscaleMin",
    "autoscaleMax",
    "autoscaleBehavior",
    "replicaCount",
    "rollingMaxSurge",
    "rollingMaxUnavailable",
    "hub",
    "tag",
    "variant",
    "image",
    "traceSampling",
    "resources",
    "seccompProfile",
    "cni",
    "extraContainerArgs",
    "env",
    "envVarFrom",
    "taint",
    "affinity",
    "tolerations",
    "cpu",
    "memory",
    "volumeMounts",
    "volumes",
    "initContainers",
    "nodeSelector",
    "podAnnotations",
    "serviceAnnotations",
    "serviceAccountAnnotations",
    "sidecarInjectorWebhookAnnotations",
    "topologySpreadConstraints",
    "jwksResolverExtraRootCA",
    "keepaliveMaxServerConnectionAge",
    "deploymentLabels",
    "deploymentAnnotations",
    "configMap",
    "podLabels",
    "ipFamilyPolicy",
    "ipFamilies",
    "trustedZtunnelNamespace",
    "trustedZtunnelName",
    "sidecarInjectorWebhook",
    "istiodRemote",
    "telemetry",
    "revision",
    "revisionTags",
    "ownerName",
    "meshConfig",
    "experimental",
    "global",
    "base",
    "gateways",
    "gatewayClasses",
    "pdb",
  ],
  gateway: [
    "name",
    "revision",
    "replicaCount",
    "kind",
    "rbac",
    "serviceAccount",
    "podAnnotations",
    "securityContext",
    "containerSecurityContext",
    "service",
    "resources",
    "autoscaling",
    "env",
    "envVarFrom",
    "strategy",
    "minReadySeconds",
    "readinessProbe",
    "labels",
    "annotations",
    "nodeSelector",
    "tolerations",
    "topologySpreadConstraints",
    "affinity",
    "networkGateway",
    "networkGatewayPorts",
    "imagePullPolicy",
    "imagePullSecrets",
    "podDisruptionBudget",
    "dnsPolicy",
    "dnsConfig",
    "terminationGracePeriodSeconds",
    "volumes",
    "volumeMounts",
    "initContainers",
    "additionalContainers",
    "priorityClassName",
    "lifecycle",
    "global",
  ],
};

/** The retryOn values Istio 1.31's validating webhook accepts (pkg/config/validation). */
const ISTIO_RETRY_ON = [
  "5xx",
  "gateway-error",
  "reset",
  "reset-before-request",
  "connect-failure",
  "retriable-4xx",
  "refused-stream",
  "retriable-status-codes",
  "retriable-headers",
  "envoy-ratelimited",
  "http3-post-connect-failure",
  "cancelled",
  "deadline-exceeded",
  "internal",
  "resource-exhausted",
  "unavailable",
];

const RELEASE = "kubernetes:helm.sh/v3:Release";
const CUSTOM = {
  pool: "kubernetes:metallb.io/v1beta1:IPAddressPool",
  l2: "kubernetes:metallb.io/v1beta1:L2Advertisement",
  gateway: "kubernetes:networking.istio.io/v1:Gateway",
  virtualService: "kubernetes:networking.istio.io/v1:VirtualService",
  destinationRule: "kubernetes:networking.istio.io/v1:DestinationRule",
} as const;
const SERVICE_HOST = "scoring-service.mlscore.svc.cluster.local";
/** Chart versions as a stack passes them on, which the components require. */
const VERSIONS = { istio: "1.31.1", metallb: "0.14.9", metricsServer: "3.13.1" } as const;

/** The platform as the Kind stack wires it: MetalLB, then Istio, then the app's route. */
function runPlatform(
  addressRange: string,
  tlsSecretName?: string,
  loadBalancerSourceRanges?: string[],
): Promise<RecordedRun> {
  return recordResources(() => {
    const provider = new k8s.Provider("kind", { context: "kind-mlscore" });
    const metallb = new MetalLb(
      "metallb",
      { addressRange, version: VERSIONS.metallb },
      { provider },
    );
    new MetricsServer("metrics-server", { version: VERSIONS.metricsServer }, { provider });
    const istio = new Istio(
      "istio",
      {
        version: VERSIONS.istio,
        https: tlsSecretName !== undefined,
        loadBalancerSourceRanges,
      },
      { provider, dependsOn: metallb.ready },
    );
    const route = new IngressRoute(
      "scoring",
      { namespace: "mlscore", serviceHost: SERVICE_HOST, maxPods: 4, tlsSecretName },
      { provider, dependsOn: [istio.crds] },
    );
    return {
      poolName: metallb.poolName,
      addressRange: metallb.addressRange,
      gatewayNamespace: istio.gatewayNamespace,
      gatewayAddress: istio.gatewayAddress,
      gatewayName: route.gatewayName,
    };
  });
}

/** Whether a request path reaches the app through the VirtualService's matches. */
function routed(matches: Array<{ uri: { exact?: string; prefix?: string } }>, path: string) {
  return matches.some(({ uri }) =>
    uri.exact !== undefined ? path === uri.exact : path.startsWith(uri.prefix ?? "\0"),
  );
}

function spec<T>(resource: RecordedResource): T {
  return resource.inputs.spec as T;
}

describe("platform add-ons on Kind", () => {
  let run: RecordedRun;

  beforeAll(async () => {
    run = await runPlatform("172.18.255.200-172.18.255.250");
  });

  it("declares each component's children and nothing else", () => {
    const children = (type: string, name: string) =>
      run
        .childrenOf(run.one(type, name))
        .map((r) => `${r.type} ${r.name}`)
        .sort();
    expect(children("mlscore:index:MetalLb", "metallb")).toEqual(
      [
        `${CUSTOM.l2} metallb-l2-advertisement`,
        `${CUSTOM.pool} metallb-pool`,
        `kubernetes:core/v1:Namespace metallb-namespace`,
        `${RELEASE} metallb-release`,
      ].sort(),
    );
    expect(children("mlscore:index:Istio", "istio")).toEqual(
      [
        `${RELEASE} istio-base`,
        `${RELEASE} istio-gateway`,
        `${RELEASE} istio-istiod`,
        `kubernetes:core/v1:Namespace istio-gateway-namespace`,
        `kubernetes:core/v1:Namespace istio-system-namespace`,
        `kubernetes:core/v1:Service istio-gateway-service`,
      ].sort(),
    );
    expect(children("mlscore:index:IngressRoute", "scoring")).toEqual(
      [
        `${CUSTOM.destinationRule} scoring-destination-rule`,
        `${CUSTOM.gateway} scoring-gateway`,
        `${CUSTOM.virtualService} scoring-virtual-service`,
      ].sort(),
    );
    expect(children("mlscore:index:MetricsServer", "metrics-server")).toEqual([
      `${RELEASE} metrics-server-release`,
    ]);
  });

  it("installs metrics-server, with the flag Kind's self-signed kubelet certificates need", () => {
    expect(run.one(RELEASE, "metrics-server-release").inputs).toMatchObject({
      chart: "metrics-server",
      version: VERSIONS.metricsServer,
      repositoryOpts: { repo: METRICS_SERVER_CHART_REPO },
      namespace: "kube-system",
      skipAwait: false,
      values: { args: ["--kubelet-insecure-tls"] },
    });
  });

  it("sends every resource to the cluster provider", () => {
    const provider = run.one("pulumi:providers:kubernetes", "kind");
    for (const resource of run.resources.filter((r) => r.custom && r.type !== provider.type)) {
      expect(run.effectiveProvider(resource)?.urn).toBe(provider.urn);
    }
  });

  it("installs MetalLB's chart and waits for its webhook before anything else", () => {
    const release = run.one(RELEASE, "metallb-release");
    expect(release.inputs).toMatchObject({
      chart: "metallb",
      version: VERSIONS.metallb,
      repositoryOpts: { repo: METALLB_CHART_REPO },
      namespace: "metallb-system",
      skipAwait: false,
      atomic: true,
    });
    const namespace = run.one("kubernetes:core/v1:Namespace", "metallb-namespace");
    expect(
      (namespace.inputs.metadata as { labels: Record<string, string> }).labels[
        "pod-security.kubernetes.io/enforce"
      ],
    ).toBe("privileged");
    expect(run.waitsFor(release, namespace)).toBe(true);
  });

  it("creates the pool and advertisement only after the release that serves their webhook", () => {
    const release = run.one(RELEASE, "metallb-release");
    const pool = run.one(CUSTOM.pool, "metallb-pool");
    const l2 = run.one(CUSTOM.l2, "metallb-l2-advertisement");
    expect(pool.dependencies).toContain(release.urn);
    expect(l2.dependencies).toContain(release.urn);
    expect(run.waitsFor(l2, pool)).toBe(true);
    expect(run.waitsFor(release, pool)).toBe(false);
  });

  it("hands out the configured range from one pool that the advertisement names", () => {
    const pool = run.one(CUSTOM.pool, "metallb-pool");
    expect(spec<{ addresses: string[] }>(pool).addresses).toEqual([
      "172.18.255.200-172.18.255.250",
    ]);
    const poolName = (pool.inputs.metadata as { name: string }).name;
    const l2 = run.one(CUSTOM.l2, "metallb-l2-advertisement");
    expect(spec<{ ipAddressPools: string[] }>(l2).ipAddressPools).toEqual([poolName]);
    expect(run.outputs.poolName).toBe(poolName);
    expect(run.outputs.addressRange).toBe("172.18.255.200-172.18.255.250");
  });

  it("installs Istio's charts in order: base, then istiod, then the gateway", () => {
    const base = run.one(RELEASE, "istio-base");
    const istiod = run.one(RELEASE, "istio-istiod");
    const gateway = run.one(RELEASE, "istio-gateway");
    for (const [release, chart] of [
      [base, "base"],
      [istiod, "istiod"],
      [gateway, "gateway"],
    ] as const) {
      expect(release.inputs).toMatchObject({
        chart,
        version: VERSIONS.istio,
        repositoryOpts: { repo: ISTIO_CHART_REPO },
        skipAwait: false,
      });
    }
    expect(base.inputs.namespace).toBe("istio-system");
    expect(istiod.inputs.namespace).toBe("istio-system");
    expect(istiod.dependencies).toContain(base.urn);
    expect(gateway.dependencies).toContain(istiod.urn);
    expect(run.waitsFor(base, gateway)).toBe(false);
  });

  it("sets only values Istio's charts read", () => {
    for (const [name, chart] of [
      ["istio-istiod", "istiod"],
      ["istio-gateway", "gateway"],
    ] as const) {
      const values = run.one(RELEASE, name).inputs.values as Record<string, unknown>;
      const unknown = Object.keys(values).filter((key) => !CHART_VALUE_KEYS[chart].includes(key));
      expect([name, unknown]).toEqual([name, []]);
    }
  });

  it("runs two istiods with a budget that lets one go and a spread across nodes", () => {
    expect(run.one(RELEASE, "istio-istiod").inputs.values).toEqual({
      autoscaleEnabled: false,
      replicaCount: MESH_REPLICAS,
      pdb: { maxUnavailable: 1 },
      topologySpreadConstraints: [
        {
          maxSkew: 1,
          topologyKey: "kubernetes.io/hostname",
          whenUnsatisfiable: "ScheduleAnyway",
          labelSelector: { matchLabels: { app: "istiod" } },
        },
      ],
      resources: { requests: { cpu: "100m", memory: "256Mi" } },
    });
    expect(MESH_REPLICAS).toBe(2);
  });

  it("runs at least two gateways with a budget, a spread and no Service of the chart's own", () => {
    const gateway = run.one(RELEASE, "istio-gateway");
    expect(gateway.inputs).toMatchObject({
      name: INGRESS_GATEWAY_NAME,
      namespace: "istio-ingress",
    });
    expect(gateway.inputs.values).toEqual({
      labels: { istio: "ingressgateway" },
      service: { type: "None" },
      autoscaling: { enabled: true, minReplicas: 2, maxReplicas: 5 },
      podDisruptionBudget: { maxUnavailable: 1 },
      topologySpreadConstraints: [
        {
          maxSkew: 1,
          topologyKey: "kubernetes.io/hostname",
          whenUnsatisfiable: "ScheduleAnyway",
          labelSelector: { matchLabels: { app: INGRESS_GATEWAY_NAME, istio: "ingressgateway" } },
        },
      ],
    });
  });

  it("fronts the gateway pods with its own LoadBalancer Service, local traffic, port 80 only", () => {
    const service = run.one("kubernetes:core/v1:Service", "istio-gateway-service");
    expect(service.read).toBe(false);
    expect(service.inputs.metadata).toMatchObject({
      name: INGRESS_GATEWAY_NAME,
      namespace: "istio-ingress",
    });
    expect(service.inputs.spec).toEqual({
      type: "LoadBalancer",
      externalTrafficPolicy: "Local",
      selector: { app: INGRESS_GATEWAY_NAME, istio: "ingressgateway" },
      ports: [{ name: "http2", port: 80, targetPort: 80, protocol: "TCP" }],
    });
    // Deleted, and its cloud load balancer released, before anything it waits for goes.
    expect(run.waitsFor(service, run.one(RELEASE, "istio-gateway"))).toBe(true);
    expect(service.customTimeouts).toEqual({ create: "10m", update: "10m", delete: "10m" });
  });

  it("starts Istio only once MetalLB's pool can give the gateway an address", () => {
    const pool = run.one(CUSTOM.pool, "metallb-pool");
    const l2 = run.one(CUSTOM.l2, "metallb-l2-advertisement");
    const gateway = run.one(RELEASE, "istio-gateway");
    expect(run.waitsFor(gateway, pool)).toBe(true);
    expect(run.waitsFor(gateway, l2)).toBe(true);
  });

  it("reports the gateway Service's load balancer address", () => {
    expect(run.outputs.gatewayAddress).toBe(fakeLoadBalancerIp("istio-gateway-service"));
    expect(run.outputs.gatewayNamespace).toBe("istio-ingress");
  });

  it("opens HTTP port 80 for every host on the ingress gateway pods", () => {
    const gateway = run.one(CUSTOM.gateway, "scoring-gateway");
    expect(gateway.inputs.apiVersion).toBe("networking.istio.io/v1");
    expect(spec<unknown>(gateway)).toEqual({
      selector: { istio: "ingressgateway" },
      servers: [{ port: { number: 80, name: "http", protocol: "HTTP" }, hosts: ["*"] }],
    });
  });

  it("routes only prediction and metadata paths, through that Gateway to the Service", () => {
    const gateway = run.one(CUSTOM.gateway, "scoring-gateway");
    const virtualService = run.one(CUSTOM.virtualService, "scoring-virtual-service");
    const routing = spec<{
      hosts: string[];
      gateways: string[];
      http: Array<{
        match: Array<{ uri: { exact?: string; prefix?: string } }>;
        route: Array<{ destination: { host: string; port: { number: number } } }>;
        timeout: string;
      }>;
    }>(virtualService);
    expect(routing.hosts).toEqual(["*"]);
    expect(routing.gateways).toEqual([(gateway.state.metadata as { name: string }).name]);
    expect(routing.http).toHaveLength(1);
    expect(routing.http[0].match).toEqual(PUBLIC_ROUTES.map((uri) => ({ uri })));
    const match = routing.http[0].match;
    const publicPaths = [
      "/score",
      "/api/v1.0/predictions",
      "/predict",
      "/v2",
      "/v2/health/ready",
      "/v2/models/iris",
      "/v2/models/iris/versions/1/infer",
      "/v1/models",
      "/v1/models/iris",
      "/v1/models/iris:predict",
      "/invocations",
      "/ping",
      "/health",
      "/version",
    ];
    const privatePaths = ["/metrics", "/openapi.json", "/healthz", "/readyz", "/", "/v2x", "/v1"];
    expect(publicPaths.filter((p) => !routed(match, p))).toEqual([]);
    expect(privatePaths.filter((p) => routed(match, p))).toEqual([]);
    expect(routing.http[0].route).toEqual([
      { destination: { host: SERVICE_HOST, port: { number: 80 } } },
    ]);
    expect(routing.http[0].timeout).toBe("30s");
  });

  it("retries only requests that never reached a pod, with values Istio accepts", () => {
    const routing = spec<{ http: Array<{ retries: Record<string, unknown> }> }>(
      run.one(CUSTOM.virtualService, "scoring-virtual-service"),
    );
    const retries = routing.http[0].retries;
    expect(retries).toEqual({
      attempts: 2,
      retryOn: "connect-failure,refused-stream,reset-before-request",
    });
    // No per-try timeout: a slow prediction is not started a second time beside the first.
    expect(retries).not.toHaveProperty("perTryTimeout");
    const policies = String(retries.retryOn).split(",");
    expect(policies.filter((p) => !ISTIO_RETRY_ON.includes(p))).toEqual([]);
    expect(policies).not.toContain("reset");
    expect(policies).not.toContain("5xx");
  });

  it("bounds connections to the pods, sheds the excess and ejects failing pods", () => {
    const rule = spec<Record<string, unknown>>(
      run.one(CUSTOM.destinationRule, "scoring-destination-rule"),
    );
    expect(rule).toEqual({
      host: SERVICE_HOST,
      trafficPolicy: {
        connectionPool: {
          tcp: { maxConnections: 128, connectTimeout: "2s" },
          http: { http1MaxPendingRequests: 128, idleTimeout: "60s" },
        },
        outlierDetection: {
          consecutive5xxErrors: 5,
          consecutiveGatewayErrors: 3,
          interval: "10s",
          baseEjectionTime: "30s",
          maxEjectionPercent: 50,
        },
      },
    });
  });

  it("closes idle upstream connections before the service's own keep-alive does", () => {
    expect(UPSTREAM_IDLE_TIMEOUT_SECONDS * 1000).toBeLessThan(KEEP_ALIVE_TIMEOUT_MS);
  });

  it("creates the Gateway, VirtualService and DestinationRule only after Istio's CRDs", () => {
    const base = run.one(RELEASE, "istio-base");
    for (const name of ["scoring-gateway", "scoring-virtual-service", "scoring-destination-rule"]) {
      const resource = run.resources.find((r) => r.name === name) as RecordedResource;
      expect(run.waitsFor(resource, base)).toBe(true);
    }
  });

  it("declares only objects valid against the upstream and MetalLB schemas", () => {
    const objects = run.kubernetesObjects();
    expect(objects.map((o) => o.object.kind).sort()).toEqual([
      "DestinationRule",
      "Gateway",
      "IPAddressPool",
      "L2Advertisement",
      "Namespace",
      "Namespace",
      "Namespace",
      "Service",
      "VirtualService",
    ]);
    for (const { object } of objects) {
      expect(() => validateKubernetesObject(object)).not.toThrow();
    }
  });
});

describe("platform with TLS and source ranges", () => {
  let run: RecordedRun;

  beforeAll(async () => {
    run = await runPlatform("172.18.255.200-172.18.255.250", "mlscore-tls", ["203.0.113.0/24"]);
  });

  it("serves HTTPS on 443 with the certificate Secret and redirects HTTP there", () => {
    expect(spec<unknown>(run.one(CUSTOM.gateway, "scoring-gateway"))).toEqual({
      selector: { istio: "ingressgateway" },
      servers: [
        {
          port: { number: 443, name: "https", protocol: "HTTPS" },
          hosts: ["*"],
          tls: { mode: "SIMPLE", credentialName: "mlscore-tls" },
        },
        {
          port: { number: 80, name: "http", protocol: "HTTP" },
          hosts: ["*"],
          tls: { httpsRedirect: true },
        },
      ],
    });
  });

  it("opens 443 on the load balancer and admits only the configured sources", () => {
    const service = spec<{ ports: Array<{ port: number }>; loadBalancerSourceRanges: string[] }>(
      run.one("kubernetes:core/v1:Service", "istio-gateway-service"),
    );
    expect(service.ports.map((p) => p.port)).toEqual([80, 443]);
    expect(service.loadBalancerSourceRanges).toEqual(["203.0.113.0/24"]);
  });

  it("declares only objects valid against the upstream schemas", () => {
    for (const { object } of run.kubernetesObjects()) {
      expect(() => validateKubernetesObject(object)).not.toThrow();
    }
  });
});

describe("MetalLB given a bad address range", () => {
  it("fails the run with a message naming the fix", async () => {
    await expect(runPlatform("172.18.255.250-172.18.255.200")).rejects.toThrow(
      'MetalLB address range "172.18.255.250-172.18.255.200" starts after it ends',
    );
  });
});

describe("checkAddressRange", () => {
  it("accepts first-last ranges and CIDRs", () => {
    for (const range of ["172.18.255.200-172.18.255.250", "10.0.0.1-10.0.0.1", "172.18.255.0/24"]) {
      expect(checkAddressRange(range)).toBe(range);
    }
  });

  it.each([
    ["172.18.255.200", "is neither first-last nor a CIDR"],
    ["172.18.255.300-172.18.255.310", "is neither first-last nor a CIDR"],
    ["a-b", "is neither first-last nor a CIDR"],
    ["172.18.0.0/33", "is not a valid IPv4 CIDR"],
    ["10.0.0.9-10.0.0.1", "starts after it ends"],
  ])("rejects %s: %s", (range, reason) => {
    expect(() => checkAddressRange(range)).toThrow(`MetalLB address range "${range}" ${reason}`);
  });
});
