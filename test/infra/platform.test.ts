import * as k8s from "@pulumi/kubernetes";
import { IngressRoute } from "../../infra/platform/ingress-route";
import {
  DEFAULT_ISTIO_VERSION,
  INGRESS_GATEWAY_NAME,
  ISTIO_CHART_REPO,
  Istio,
} from "../../infra/platform/istio";
import {
  DEFAULT_METALLB_VERSION,
  METALLB_CHART_REPO,
  MetalLb,
  checkAddressRange,
} from "../../infra/platform/metallb";
import {
  fakeLoadBalancerIp,
  recordResources,
  type RecordedResource,
  type RecordedRun,
} from "./harness";
import { validateKubernetesObject } from "./schemas/kubernetes";

const RELEASE = "kubernetes:helm.sh/v3:Release";
const CUSTOM = {
  pool: "kubernetes:metallb.io/v1beta1:IPAddressPool",
  l2: "kubernetes:metallb.io/v1beta1:L2Advertisement",
  gateway: "kubernetes:networking.istio.io/v1:Gateway",
  virtualService: "kubernetes:networking.istio.io/v1:VirtualService",
} as const;
const SERVICE_HOST = "scoring-service.mlscore.svc.cluster.local";

/** The platform as the Kind stack wires it: MetalLB, then Istio, then the app's route. */
function runPlatform(addressRange: string): Promise<RecordedRun> {
  return recordResources(() => {
    const provider = new k8s.Provider("kind", { context: "kind-mlscore" });
    const metallb = new MetalLb("metallb", { addressRange }, { provider });
    const istio = new Istio("istio", {}, { provider, dependsOn: metallb.ready });
    const route = new IngressRoute(
      "scoring",
      { namespace: "mlscore", serviceHost: SERVICE_HOST },
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
        `${CUSTOM.gateway} scoring-gateway`,
        `${CUSTOM.virtualService} scoring-virtual-service`,
      ].sort(),
    );
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
      version: DEFAULT_METALLB_VERSION,
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
        version: DEFAULT_ISTIO_VERSION,
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

  it("runs the gateway as istio-ingressgateway behind a LoadBalancer, labelled for Gateways", () => {
    const gateway = run.one(RELEASE, "istio-gateway");
    expect(gateway.inputs).toMatchObject({
      name: INGRESS_GATEWAY_NAME,
      namespace: "istio-ingress",
      values: { labels: { istio: "ingressgateway" }, service: { type: "LoadBalancer" } },
    });
  });

  it("starts Istio only once MetalLB's pool can give the gateway an address", () => {
    const pool = run.one(CUSTOM.pool, "metallb-pool");
    const l2 = run.one(CUSTOM.l2, "metallb-l2-advertisement");
    const gateway = run.one(RELEASE, "istio-gateway");
    expect(run.waitsFor(gateway, pool)).toBe(true);
    expect(run.waitsFor(gateway, l2)).toBe(true);
  });

  it("reads the gateway's Service after the release and reports its load balancer address", () => {
    const service = run.one("kubernetes:core/v1:Service", "istio-gateway-service");
    expect(service.read).toBe(true);
    expect(service.importId).toBe(`istio-ingress/${INGRESS_GATEWAY_NAME}`);
    expect(run.waitsFor(service, run.one(RELEASE, "istio-gateway"))).toBe(true);
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

  it("routes everything through that Gateway to the Service's cluster DNS name on port 80", () => {
    const gateway = run.one(CUSTOM.gateway, "scoring-gateway");
    const virtualService = run.one(CUSTOM.virtualService, "scoring-virtual-service");
    const routing = spec<{
      hosts: string[];
      gateways: string[];
      http: Array<{
        match: unknown;
        route: Array<{ destination: { host: string; port: { number: number } } }>;
        timeout: string;
        retries: { attempts: number; retryOn: string };
      }>;
    }>(virtualService);
    expect(routing.hosts).toEqual(["*"]);
    expect(routing.gateways).toEqual([(gateway.state.metadata as { name: string }).name]);
    expect(routing.http).toHaveLength(1);
    expect(routing.http[0].match).toEqual([{ uri: { prefix: "/" } }]);
    expect(routing.http[0].route).toEqual([
      { destination: { host: SERVICE_HOST, port: { number: 80 } } },
    ]);
    expect(routing.http[0].timeout).toBe("30s");
    expect(routing.http[0].retries).toMatchObject({ attempts: 2 });
    expect(routing.http[0].retries.retryOn).not.toMatch(/5xx|4xx/);
  });

  it("creates the Gateway and VirtualService only after Istio's CRDs", () => {
    const base = run.one(RELEASE, "istio-base");
    for (const name of ["scoring-gateway", "scoring-virtual-service"]) {
      const resource = run.resources.find((r) => r.name === name) as RecordedResource;
      expect(run.waitsFor(resource, base)).toBe(true);
    }
  });

  it("declares only objects valid against the upstream and MetalLB schemas", () => {
    const objects = run.kubernetesObjects();
    expect(objects.map((o) => o.object.kind).sort()).toEqual([
      "Gateway",
      "IPAddressPool",
      "L2Advertisement",
      "Namespace",
      "Namespace",
      "Namespace",
      "VirtualService",
    ]);
    for (const { object } of objects) {
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
