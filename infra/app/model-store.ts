import type * as k8s from "@pulumi/kubernetes";
import { cidrContains, ipv4 } from "../ipv4";

/** Private and link-local ranges the model-store egress rule must not open. */
export const PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"];

/**
 * Where the GKE metadata server serves Workload Identity tokens. Google's Workload Identity page
 * (docs.cloud.google.com/kubernetes-engine/docs/concepts/workload-identity, limitations) asks
 * NetworkPolicies to allow 169.254.169.252/32 on port 988 and, on GKE Dataplane V2 clusters,
 * 169.254.169.254/32 on port 80: Dataplane V2 evaluates policy before the node's redirect, the
 * iptables dataplane after it.
 */
export const GKE_METADATA_SERVER = [
  { cidr: "169.254.169.254/32", port: 80 },
  { cidr: "169.254.169.252/32", port: 988 },
] as const;

/** Model URIs the pods fetch over the network, and so need egress to the internet for. */
export function isRemoteModelUri(uri: string | undefined): boolean {
  return uri !== undefined && /^(https|gs):\/\//.test(uri);
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
    for (const { cidr, port } of GKE_METADATA_SERVER) {
      rules.push({ to: [{ ipBlock: { cidr } }], ports: [{ protocol: "TCP", port }] });
    }
  }
  return rules;
}

/** Whether a model URI carries a credential: user info, or a query string (a presigned URL). */
export function carriesCredentials(uri: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(uri) || /[?#]/.test(uri);
}

/** The URI with user info, query string and fragment cut out, fit for messages and logs. */
export function redactUri(uri: string): string {
  return uri
    .replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, "$1…@")
    .replace(/[?#].*$/s, (rest) => (rest.startsWith("?") ? "?…" : "#…"));
}

/** Host names that never resolve to a public address. */
const INTERNAL_NAMES = /(^|\.)(localhost|local|internal|svc|cluster\.local)$/i;

/**
 * Why the pods could never fetch an `https://` model from this host, or undefined when they can
 * try: its egress policy opens HTTPS to public IPv4 addresses only, so a private, link-local or
 * loopback address, an IPv6 literal or a cluster-internal name is blocked. (A public name that
 * resolves to a private address cannot be seen here; the service's own error names it.)
 */
export function blockedHostReason(uri: string): string | undefined {
  const host = /^https:\/\/(?:[^/?#]*@)?(\[[^\]]*\]|[^/:?#]*)/i.exec(uri)?.[1];
  if (host === undefined) {
    return undefined;
  }
  if (host.startsWith("[")) {
    return `its host ${host} is an IPv6 address`;
  }
  const address = ipv4(host);
  if (address !== undefined) {
    const range = [...PRIVATE_RANGES, "127.0.0.0/8", "0.0.0.0/8"].find((cidr) =>
      cidrContains(cidr, address),
    );
    return range === undefined ? undefined : `its host ${host} is in the private range ${range}`;
  }
  return INTERNAL_NAMES.test(host)
    ? `its host ${host} is a cluster- or host-local name`
    : undefined;
}
