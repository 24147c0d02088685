import type * as k8s from "@pulumi/kubernetes";

/**
 * The address a LoadBalancer Service got: its first ingress's IP, or its hostname where the cloud
 * hands out names; undefined until one is assigned.
 */
export function loadBalancerAddress(
  status: k8s.types.output.core.v1.ServiceStatus | undefined,
): string | undefined {
  const ingress = status?.loadBalancer?.ingress?.[0];
  return ingress?.ip || ingress?.hostname || undefined;
}
