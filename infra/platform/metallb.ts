import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { addressRangeProblem } from "../ipv4";

/** Where MetalLB publishes its Helm chart. */
export const METALLB_CHART_REPO = "https://metallb.github.io/metallb";

/** The namespace MetalLB runs in unless told otherwise. */
export const METALLB_NAMESPACE = "metallb-system";

/** Arguments of {@link MetalLb}. */
export interface MetalLbArgs {
  /**
   * Addresses MetalLB hands to LoadBalancer Services: `first-last` (IPv4) or a CIDR. On Kind
   * they must lie in the `kind` Docker network. Required.
   */
  readonly addressRange: pulumi.Input<string>;
  /** MetalLB chart version (Pulumi.yaml's `metallbVersion`). Required. */
  readonly version: pulumi.Input<string>;
  /** Namespace to create for MetalLB; default {@link METALLB_NAMESPACE}. */
  readonly namespace?: pulumi.Input<string>;
}

/**
 * Returns `range` if it is an address range MetalLB accepts in an IPAddressPool (an IPv4
 * `first-last` with first <= last, or an IPv4 CIDR); throws a message naming the fix otherwise,
 * as an error of `resource` when given.
 */
export function checkAddressRange(range: string, resource?: pulumi.Resource): string {
  const problem = addressRangeProblem(range);
  if (problem !== undefined) {
    throw new pulumi.ResourceError(
      `MetalLB address range "${range}" ${problem}; use "first-last" such as ` +
        "172.18.255.200-172.18.255.250, or a CIDR such as 172.18.255.0/24",
      resource,
    );
  }
  return range;
}

/**
 * MetalLB in layer-2 mode: the chart (CRDs, controller with its validating webhook, speakers),
 * one address pool and its L2 advertisement. Depend on {@link MetalLb.ready} (or the component)
 * before creating LoadBalancer Services, or they wait for an address that never comes.
 */
export class MetalLb extends pulumi.ComponentResource {
  /** Namespace MetalLB runs in. */
  readonly namespace: pulumi.Output<string>;
  /** Name of the address pool. */
  readonly poolName: pulumi.Output<string>;
  /** The address range the pool serves. */
  readonly addressRange: pulumi.Output<string>;
  /** The Helm release; custom resources of metallb.io must depend on it. */
  readonly release: k8s.helm.v3.Release;
  /** The pool and its advertisement: once these exist, LoadBalancer Services get addresses. */
  readonly ready: pulumi.Resource[];

  constructor(name: string, args: MetalLbArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("mlscore:index:MetalLb", name, {}, opts);
    // A known range fails here, before any child exists; a derived one fails at its apply.
    if (typeof args.addressRange === "string") {
      checkAddressRange(args.addressRange, this);
    }
    const namespaceName = args.namespace ?? METALLB_NAMESPACE;

    const namespace = new k8s.core.v1.Namespace(
      `${name}-namespace`,
      {
        metadata: {
          name: namespaceName,
          // The speaker needs host networking and NET_RAW, which only "privileged" admits.
          labels: {
            "app.kubernetes.io/part-of": "mlscore",
            "pod-security.kubernetes.io/enforce": "privileged",
            "pod-security.kubernetes.io/audit": "privileged",
            "pod-security.kubernetes.io/warn": "privileged",
          },
        },
      },
      { parent: this },
    );

    // skipAwait false with Helm's wait: the release completes only once the controller, which
    // serves the validating webhook for metallb.io objects, is Ready. A pool created earlier is
    // rejected by the unreachable webhook.
    this.release = new k8s.helm.v3.Release(
      `${name}-release`,
      {
        name: "metallb",
        chart: "metallb",
        version: args.version,
        repositoryOpts: { repo: METALLB_CHART_REPO },
        namespace: namespace.metadata.name,
        skipAwait: false,
        atomic: true,
        cleanupOnFail: true,
        timeout: 300,
        // Layer 2 only: neither BGP backend is needed on Kind.
        values: { speaker: { frr: { enabled: false } }, frrk8s: { enabled: false } },
      },
      { parent: this },
    );

    this.addressRange = pulumi
      .output(args.addressRange)
      .apply((range) => checkAddressRange(range, this));
    const pool = new k8s.apiextensions.CustomResource(
      `${name}-pool`,
      {
        apiVersion: "metallb.io/v1beta1",
        kind: "IPAddressPool",
        metadata: { name: "mlscore", namespace: namespace.metadata.name },
        spec: { addresses: [this.addressRange], autoAssign: true, avoidBuggyIPs: true },
      },
      { parent: this, dependsOn: [this.release] },
    );

    const advertisement = new k8s.apiextensions.CustomResource(
      `${name}-l2-advertisement`,
      {
        apiVersion: "metallb.io/v1beta1",
        kind: "L2Advertisement",
        metadata: { name: "mlscore", namespace: namespace.metadata.name },
        spec: { ipAddressPools: [pool.metadata.name] },
      },
      { parent: this, dependsOn: [this.release, pool] },
    );

    this.namespace = namespace.metadata.name;
    this.poolName = pool.metadata.name;
    this.ready = [pool, advertisement];

    this.registerOutputs({
      namespace: this.namespace,
      poolName: this.poolName,
      addressRange: this.addressRange,
      release: this.release,
      ready: this.ready,
    });
  }
}
