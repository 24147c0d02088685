/**
 * Names of the program's Istio that the policy pack needs too. No imports: the pack loads this
 * without the Kubernetes SDK.
 */

/** The Istio component's name in the program; its children's names start with it. */
export const ISTIO_COMPONENT_NAME = "istio";

/** The Pulumi name of an Istio component's gateway Service, derived from the component's name. */
export function gatewayServiceResourceName(istioName: string): string {
  return `${istioName}-gateway-service`;
}

/**
 * The Pulumi name of the program's ingress gateway Service: its one public entry point, and the
 * load balancer the policy pack allows when a stack's policy config names none.
 */
export const GATEWAY_SERVICE_RESOURCE_NAME = gatewayServiceResourceName(ISTIO_COMPONENT_NAME);
