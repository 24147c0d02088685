/**
 * The cluster sections: which target, and the keys of each (kind, gke, an existing cluster). Each
 * section is read whatever the target, so a key set for another target is still checked; which
 * keys a target allows is {@link checkAcrossSections}'s business.
 */
import { addressRangeProblem } from "../ipv4";
import { DNS_LABEL, PROJECT, RELEASE_VERSION, type ConfigReader, type RawConfig } from "./reader";

/** A local Kind cluster made by `npm run kind:up`, with MetalLB for LoadBalancer Services. */
export interface KindSettings {
  readonly target: "kind";
  readonly clusterName: string;
  readonly metallbVersion: string;
  /** Undefined: derived from the `kind` Docker network's subnet. */
  readonly metallbAddressRange?: string;
  /** Version of the metrics-server chart, which Kind lacks and the autoscalers need. */
  readonly metricsServerVersion: string;
}

/** A GKE cluster the stack creates. */
export interface GkeSettings {
  readonly target: "gke";
  readonly project: string;
  readonly region: string;
  readonly zone: string;
  readonly nodeCount: number;
  readonly minNodes: number;
  readonly maxNodes: number;
  readonly machineType: string;
}

/** Any existing cluster, reached through a kubeconfig context, running an image built elsewhere. */
export interface ExistingClusterSettings {
  readonly target: "cluster";
  /** Undefined: the kubeconfig's current context. */
  readonly kubeContext?: string;
  /** The service's image, pinned by digest. */
  readonly image: string;
}

/** The targets, by the value of `target`. */
export type ClusterSettings = KindSettings | GkeSettings | ExistingClusterSettings;
export type Target = ClusterSettings["target"];

/** The gke section as read: the settings, and the project as this project's key gave it. */
export interface GkeSection {
  readonly settings: Omit<GkeSettings, "target">;
  /** `mlscore:gcpProject`; empty when the project comes from `gcp:project` (or nowhere). */
  readonly ownProject: string;
}

/** The cluster section as read: `image` empty when not set. */
export type ExistingClusterSection = Omit<ExistingClusterSettings, "target">;

/** A kubeconfig context name: anything without whitespace (kind-x, gke_p_z_c, arn:aws:eks:...). */
const KUBE_CONTEXT = /^\S{1,253}$/;
const GCP_PROJECT = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
const GCP_REGION = /^[a-z]+-[a-z]+[0-9]+$/;
const MACHINE_TYPE = /^[a-z][a-z0-9]*-[a-z0-9-]*[a-z0-9]$/;
/** How the config errors show a pinned image. */
export const IMAGE_EXAMPLE = "registry.example.com/mlscore@sha256:<64 hex digits>";

/** The target; on a problem, a stand-in (kind) so the other sections are still read. */
export function readTarget(read: ConfigReader, raw: RawConfig): Target {
  const value = raw[`${PROJECT}:target`];
  if (value === undefined || value === "") {
    read.fail(
      "target",
      "is required: kind (a local Kind cluster), gke (Google Cloud) or cluster (an existing cluster)",
      "kind",
    );
  } else if (value === "kind" || value === "gke" || value === "cluster") {
    return value;
  } else {
    read.fail("target", `must be kind, gke or cluster (got "${value}")`, "kind");
  }
  return "kind";
}

export function readKind(read: ConfigReader): Omit<KindSettings, "target"> {
  const clusterName = read.text("kindClusterName", "a lowercase DNS label", DNS_LABEL, "mlscore");
  const metallbVersion = read.text(
    "metallbVersion",
    "a release version such as 0.14.9",
    RELEASE_VERSION,
    "0.14.9",
  );
  const metallbAddressRange =
    read.value("metallbAddressRange", "172.18.255.200-172.18.255.250") ?? "";
  if (metallbAddressRange !== "" && addressRangeProblem(metallbAddressRange) !== undefined) {
    read.fail(
      "metallbAddressRange",
      "must be empty (derived from the kind Docker network), an IPv4 range first-last " +
        `or an IPv4 CIDR (got "${metallbAddressRange}")`,
      "172.18.255.200-172.18.255.250",
    );
  }
  const metricsServerVersion = read.text(
    "metricsServerVersion",
    "a release version such as 3.13.1",
    RELEASE_VERSION,
    "3.13.1",
  );
  return {
    clusterName,
    metallbVersion,
    metallbAddressRange: metallbAddressRange || undefined,
    metricsServerVersion,
  };
}

/** The project and region: this project's keys, which must agree with the gcp provider's. */
function readGcpLocation(read: ConfigReader, raw: RawConfig) {
  const ownProject = read.value("gcpProject", "my-project-id") ?? "";
  const providerProject = raw["gcp:project"] ?? "";
  const projectWhat = "a Google Cloud project ID: 6-30 lowercase letters, digits or hyphens";
  if (ownProject !== "" && !GCP_PROJECT.test(ownProject)) {
    read.fail("gcpProject", `must be ${projectWhat} (got "${ownProject}")`, "my-project-id");
  }
  if (ownProject !== "" && providerProject !== "" && ownProject !== providerProject) {
    read.problems.push(
      `${PROJECT}:gcpProject ("${ownProject}") and gcp:project ("${providerProject}") name ` +
        `different projects; remove one with: pulumi config rm gcpProject`,
    );
  }
  const region = read.text(
    "gcpRegion",
    "a Google Cloud region such as us-central1",
    GCP_REGION,
    "us-central1",
  );
  const providerRegion = raw["gcp:region"] ?? "";
  if (providerRegion !== "" && providerRegion !== region) {
    read.problems.push(
      `gcp:region ("${providerRegion}") differs from ${PROJECT}:gcpRegion ("${region}"), which ` +
        `this program uses; set it with: pulumi config set gcpRegion ${providerRegion}`,
    );
  }
  const zone = read.value("gcpZone", `${region}-a`) ?? "";
  // A zone is its region plus a letter; checked only once the region itself is valid.
  if (GCP_REGION.test(region) && !new RegExp(`^${region}-[a-z]$`).test(zone)) {
    read.fail(
      "gcpZone",
      `must be a zone of ${PROJECT}:gcpRegion ${region}, such as ${region}-a (got "${zone}")`,
      `${region}-a`,
    );
  }
  return { ownProject, location: { project: ownProject || providerProject, region, zone } };
}

export function readGke(read: ConfigReader, raw: RawConfig): GkeSection {
  const { ownProject, location } = readGcpLocation(read, raw);
  const nodeCount = read.integer("nodeCount", 1, 100, 3);
  const minNodes = read.integer("minNodes", 0, 100, 1);
  const maxNodes = read.integer("maxNodes", 1, 100, 5);
  read.between(
    { key: "minNodes", value: minNodes },
    { key: "nodeCount", value: nodeCount },
    { key: "maxNodes", value: maxNodes },
  );
  const machineType = read.text(
    "machineType",
    "a Compute Engine machine type such as e2-standard-2",
    MACHINE_TYPE,
    "e2-standard-2",
  );
  return { ownProject, settings: { ...location, nodeCount, minNodes, maxNodes, machineType } };
}

/** The cluster target's keys: an optional kubeconfig context and the image (checked across). */
export function readExistingCluster(read: ConfigReader): ExistingClusterSection {
  const kubeContext = read.text(
    "kubeContext",
    "a kubeconfig context name (no spaces)",
    KUBE_CONTEXT,
    "my-context",
    true,
  );
  const image = read.value("image", IMAGE_EXAMPLE) ?? "";
  return { kubeContext: kubeContext || undefined, image };
}

/** The settings of `target`, from its section. */
export function clusterSettings(
  target: Target,
  sections: {
    readonly kind: Omit<KindSettings, "target">;
    readonly gke: GkeSection;
    readonly existing: ExistingClusterSection;
  },
): ClusterSettings {
  switch (target) {
    case "kind":
      return { target, ...sections.kind };
    case "gke":
      return { target, ...sections.gke.settings };
    case "cluster":
      return { target, ...sections.existing };
  }
}
