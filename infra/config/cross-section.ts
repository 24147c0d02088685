/**
 * The one check across sections: which keys a target allows or needs, what the mesh asks of the
 * app, and bounds that span two sections. Each section's own checks are in its reader.
 */
import { ISTIO_GATEWAY_NAMESPACE } from "../platform/istio";
import { isPinnedImage } from "../policy/workloads";
import type { AppSection } from "./app";
import {
  IMAGE_EXAMPLE,
  type ExistingClusterSection,
  type GkeSection,
  type KindSettings,
  type Target,
} from "./cluster";
import type { IstioSettings } from "./mesh";
import { PROJECT, type ConfigKey, type ConfigReader } from "./reader";

/** Every section as read. */
export interface Sections {
  readonly target: Target;
  readonly app: AppSection;
  readonly mesh: IstioSettings;
  readonly kind: Omit<KindSettings, "target">;
  readonly gke: GkeSection;
  readonly existing: ExistingClusterSection;
}

/** A key set on a target that does not read it; `why` in parentheses, or empty. */
function notOnTarget(read: ConfigReader, key: ConfigKey, only: Target, why = ""): void {
  read.remove(key, `applies only when ${PROJECT}:target is ${only}${why && ` ${why}`}`);
}

/**
 * The cluster target needs an image pinned by digest and may name a context; kind and gke build
 * the image and choose the context themselves, so there both must stay empty.
 */
function checkExistingCluster(read: ConfigReader, target: Target, section: ExistingClusterSection) {
  const { image, kubeContext } = section;
  if (target === "cluster" && !isPinnedImage(image)) {
    const problem =
      image === ""
        ? `is required when ${PROJECT}:target is cluster`
        : `must be pinned by digest (got "${image}")`;
    read.fail(
      "image",
      `${problem}: the cluster target builds no image, so give one built elsewhere as ` +
        "repository@sha256:<64 hex digits>",
      IMAGE_EXAMPLE,
    );
  }
  if (target !== "cluster") {
    const why = `(${target} builds the image from service/ and chooses its own context)`;
    if (kubeContext !== undefined) {
      notOnTarget(read, "kubeContext", "cluster", why);
    }
    if (image !== "") {
      notOnTarget(read, "image", "cluster", why);
    }
  }
}

/** The keys of kind and gke, on other targets or missing on their own. */
function checkTargetKeys(read: ConfigReader, { target, app, kind, gke }: Sections): void {
  if (target === "gke" && gke.settings.project === "") {
    read.problems.push(
      `${PROJECT}:gcpProject (or gcp:project) is required when ${PROJECT}:target is gke; ` +
        `set it with: pulumi config set gcp:project my-project-id`,
    );
  }
  if (target !== "kind" && kind.metallbAddressRange !== undefined) {
    notOnTarget(read, "metallbAddressRange", "kind", "(MetalLB is installed nowhere else)");
  }
  if (target === "gke") {
    // The pods spread one per node until minReplicas nodes exist, and the autoscaler adds no more
    // than maxNodes: more replicas than that would wait for a node forever.
    read.ordered(
      { key: "minReplicas", value: app.minReplicas },
      { key: "maxNodes", value: gke.settings.maxNodes },
      "maxNodes",
    );
  }
  if (target !== "gke" && gke.ownProject !== "") {
    notOnTarget(read, "gcpProject", "gke");
  }
}

/**
 * The cluster's own Istio (istioInstall false) exists only on a cluster made elsewhere, and then
 * its gateway and its load balancer are not the stack's: only its namespace may be named. TLS is
 * the gateway's, and the app cannot share the gateway's namespace.
 */
function checkMesh(read: ConfigReader, { target, app, mesh }: Sections): void {
  if (mesh.tlsSecretName !== undefined && !mesh.enabled) {
    read.remove("tlsSecretName", `needs ${PROJECT}:istioEnabled true: the gateway terminates TLS`);
  }
  if (!mesh.install && !mesh.enabled) {
    read.remove(
      "istioInstall",
      `false says which Istio to use and needs ${PROJECT}:istioEnabled true`,
    );
  } else if (!mesh.install && target !== "cluster") {
    read.remove(
      "istioInstall",
      `false applies only when ${PROJECT}:target is cluster: ` +
        `${target} makes a cluster that runs no Istio of its own`,
    );
  } else if (!mesh.install && app.loadBalancerSourceRanges.length > 0) {
    read.remove(
      "loadBalancerSourceRanges",
      "has no load balancer to apply to: the cluster's own Istio gateway and its Service are " +
        "not the stack's",
    );
  }
  if (mesh.gatewayNamespace !== ISTIO_GATEWAY_NAMESPACE && mesh.install) {
    read.remove(
      "istioGatewayNamespace",
      `applies only to the cluster's own Istio (${PROJECT}:istioInstall false); the stack ` +
        `installs its gateway in ${ISTIO_GATEWAY_NAMESPACE}`,
    );
  }
  if (app.namespace === mesh.gatewayNamespace && !read.reported("namespace")) {
    read.fail(
      "namespace",
      `must not be "${app.namespace}", the Istio ingress gateway's namespace`,
      "mlscore",
    );
  }
}

/** Checks what no single section can; problems go to `read`. */
export function checkAcrossSections(read: ConfigReader, sections: Sections): void {
  checkExistingCluster(read, sections.target, sections.existing);
  checkTargetKeys(read, sections);
  checkMesh(read, sections);
}
