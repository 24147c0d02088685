/** The mesh section: whether Istio fronts the app, which Istio, and how its gateway serves. */
import { ISTIO_GATEWAY_NAMESPACE } from "../platform/istio";
import { DNS_LABEL, RELEASE_VERSION, type ConfigReader } from "./reader";

/** Istio, installed from its Helm charts when enabled, or the cluster's own. */
export interface IstioSettings {
  readonly enabled: boolean;
  readonly version: string;
  /** False: the cluster already runs Istio; the stack installs none and owns no gateway. */
  readonly install: boolean;
  /** Namespace of the ingress gateway pods the Gateway selects. */
  readonly gatewayNamespace: string;
  /** kubernetes.io/tls Secret in the gateway's namespace for HTTPS; undefined: HTTP only. */
  readonly tlsSecretName?: string;
}

const DNS_SUBDOMAIN =
  /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Reads the mesh section; problems go to `read`. */
export function readMesh(read: ConfigReader): IstioSettings {
  const enabled = read.boolean("istioEnabled", true);
  const version = read.text(
    "istioVersion",
    "a release version such as 1.31.1",
    RELEASE_VERSION,
    "1.31.1",
  );
  const install = read.boolean("istioInstall", true);
  const gatewayNamespace = read.text(
    "istioGatewayNamespace",
    "a lowercase DNS label",
    DNS_LABEL,
    ISTIO_GATEWAY_NAMESPACE,
  );
  const tlsSecretName = read.text(
    "tlsSecretName",
    "empty or the name of a kubernetes.io/tls Secret (a lowercase DNS subdomain)",
    DNS_SUBDOMAIN,
    "mlscore-tls",
    true,
  );
  return { enabled, version, install, gatewayNamespace, tlsSecretName: tlsSecretName || undefined };
}
