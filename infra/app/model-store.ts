import type * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
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

/** Model URIs the pods fetch over the network, and so need egress for. */
export function isRemoteModelUri(uri: string | undefined): boolean {
  return uri !== undefined && /^(https|gs|s3):\/\//.test(uri);
}

/** A peer matching every pod of one namespace, by the label Kubernetes puts on each namespace. */
export function namespacePeer(namespace: pulumi.Input<string>) {
  return { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": namespace } } };
}

type EgressRule = k8s.types.input.networking.v1.NetworkPolicyEgressRule;

/**
 * The rule that lets the pods reach the host of an `https://` model or an S3 endpoint: the pods
 * of its namespace for a cluster Service name, else public addresses; on the URL's port.
 */
function storeRule(url: string): EgressRule {
  const host = storeHost(url);
  const ports = [{ protocol: "TCP", port: host.port }];
  return host.namespace === undefined
    ? { to: [{ ipBlock: { cidr: "0.0.0.0/0", except: PRIVATE_RANGES } }], ports }
    : { to: [namespacePeer(host.namespace)], ports };
}

/**
 * Egress rules the pods need to fetch their model: its store's host (HTTPS to public addresses,
 * or the store's namespace in the cluster) for `https://` and `s3://` (AWS S3 itself unless
 * `s3Endpoint` names another store), HTTPS to public addresses plus the GKE metadata server
 * (Workload Identity tokens) for `gs://`. Local and built-in models need none.
 */
export function modelStoreEgress(uri: string | undefined, s3Endpoint?: string): EgressRule[] {
  if (uri === undefined || !isRemoteModelUri(uri)) {
    return [];
  }
  if (uri.startsWith("https://")) {
    return [storeRule(uri)];
  }
  if (uri.startsWith("s3://")) {
    return [storeRule(s3Endpoint ?? "https://s3.amazonaws.com")];
  }
  return [
    storeRule("https://storage.googleapis.com"),
    ...GKE_METADATA_SERVER.map(({ cidr, port }) => ({
      to: [{ ipBlock: { cidr } }],
      ports: [{ protocol: "TCP", port }],
    })),
  ];
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
/** A Service's cluster DNS name: `<service>.<namespace>.svc`, optionally `.cluster.local`. */
const SERVICE_NAME =
  /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc(\.cluster\.local)?$/;

/** Where a store's host is, as the pods' egress policy sees it. */
interface StoreHost {
  /** The port the pods connect to. */
  readonly port: number;
  /** The namespace of a cluster Service the host names; undefined: a public host. */
  readonly namespace?: string;
  /** Why the pods could never reach it; undefined when they can. */
  readonly blocked?: string;
}

/**
 * Where the host of an `https://` model or an S3 endpoint is for the pods' egress policy, which
 * opens public IPv4 addresses, or the namespace of a cluster Service
 * (`<service>.<namespace>.svc[.cluster.local]`, a store such as MinIO in the cluster), on the
 * URL's port. A private, link-local or loopback address, an IPv6 literal or another local name
 * is blocked. (A public name that resolves to a private address cannot be seen here; the
 * service's own error names it.)
 */
export function storeHost(url: string): StoreHost {
  const match = /^(https?):\/\/(?:[^/?#]*@)?(\[[^\]]*\]|[^/:?#]*)(?::(\d+))?/i.exec(url);
  const host = (match?.[2] ?? "").toLowerCase();
  const port = match?.[3] ? Number(match[3]) : match?.[1] === "http" ? 80 : 443;
  if (host.startsWith("[")) {
    return { port, blocked: `its host ${host} is an IPv6 address` };
  }
  const address = ipv4(host);
  if (address !== undefined) {
    const range = [...PRIVATE_RANGES, "127.0.0.0/8", "0.0.0.0/8"].find((cidr) =>
      cidrContains(cidr, address),
    );
    return range === undefined
      ? { port }
      : { port, blocked: `its host ${host} is in the private range ${range}` };
  }
  const service = SERVICE_NAME.exec(host);
  if (service) {
    return { port, namespace: service[2] };
  }
  return INTERNAL_NAMES.test(host) || !host.includes(".")
    ? { port, blocked: `its host ${host} is a host-local name` }
    : { port };
}
