import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { modelStoreEgress, namespacePeer } from "./model-store";

/** What {@link declareNetworkPolicies} needs to know about the app. */
export interface NetworkPolicyArgs {
  /** Namespace the policies live in; they select pods there. */
  readonly namespace: pulumi.Input<string>;
  /** Labels selecting the scoring pods. */
  readonly podLabels: Record<string, string>;
  /** Labels put on every policy. */
  readonly labels: Record<string, string>;
  /** The container port clients, the gateway and Prometheus connect to. */
  readonly port: number;
  /** Namespace of the ingress gateway; undefined: the port is open to any source. */
  readonly gatewayNamespace?: pulumi.Input<string>;
  /** Namespace of the Prometheus that scrapes the pods; undefined: none. */
  readonly monitoringNamespace?: pulumi.Input<string>;
  /** The model's URI (possibly secret): its scheme decides the egress to the model store. */
  readonly modelUri?: pulumi.Input<string>;
  /** The S3-compatible store an `s3://` model is read from; undefined: AWS S3. */
  readonly s3Endpoint?: string;
}

/** DNS lookups to the cluster's DNS pods in kube-system, over UDP and TCP. */
export const DNS_EGRESS: k8s.types.input.networking.v1.NetworkPolicyEgressRule = {
  to: [
    { ...namespacePeer("kube-system"), podSelector: { matchLabels: { "k8s-app": "kube-dns" } } },
  ],
  ports: [
    { protocol: "UDP", port: 53 },
    { protocol: "TCP", port: 53 },
  ],
};

/**
 * Denies every pod of the namespace all traffic; the other policies then admit what each needs.
 * Declared as a child of `parent`, named after `name`.
 */
export function declareDenyAll(
  parent: pulumi.Resource,
  name: string,
  metadata: { namespace: pulumi.Input<string>; labels: Record<string, string> },
): void {
  new k8s.networking.v1.NetworkPolicy(
    `${name}-deny-all`,
    { metadata, spec: { podSelector: {}, policyTypes: ["Ingress", "Egress"] } },
    { parent },
  );
}

/**
 * What one set of scoring pods needs beside the namespace's deny-all: the gateway (or, without
 * one, any source), the pods' own namespace and the configured monitoring namespace on the
 * container port, DNS to kube-system, and the model store. Declared as children of `parent`,
 * named after `name`.
 */
export function declareNetworkPolicies(
  parent: pulumi.Resource,
  name: string,
  args: NetworkPolicyArgs,
): void {
  const opts = { parent };
  const metadata = { namespace: args.namespace, labels: args.labels };
  const appPort = [{ protocol: "TCP", port: args.port }];
  const podSelector = { matchLabels: args.podLabels };

  // Without a gateway, clients come straight through the load balancer: any source.
  const from =
    args.gatewayNamespace === undefined
      ? undefined
      : [
          namespacePeer(args.gatewayNamespace),
          { podSelector: {} },
          ...(args.monitoringNamespace === undefined
            ? []
            : [namespacePeer(args.monitoringNamespace)]),
        ];
  new k8s.networking.v1.NetworkPolicy(
    `${name}-allow-ingress`,
    {
      metadata,
      spec: { podSelector, policyTypes: ["Ingress"], ingress: [{ from, ports: appPort }] },
    },
    opts,
  );

  new k8s.networking.v1.NetworkPolicy(
    `${name}-allow-dns`,
    {
      metadata,
      spec: { podSelector, policyTypes: ["Egress"], egress: [DNS_EGRESS] },
    },
    opts,
  );

  // Declared for every model URI so the resource set does not depend on a value; for local
  // models its rule list is empty and it opens nothing. The rules hold only what the URI's scheme
  // implies, so they need not inherit a secret URI's secrecy.
  new k8s.networking.v1.NetworkPolicy(
    `${name}-allow-model-store`,
    {
      metadata,
      spec: {
        podSelector,
        policyTypes: ["Egress"],
        egress: pulumi
          .unsecret(pulumi.output(args.modelUri))
          .apply((uri) => modelStoreEgress(uri, args.s3Endpoint)),
      },
    },
    opts,
  );
}
