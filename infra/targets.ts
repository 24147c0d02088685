/**
 * The cluster targets: for each, the cluster (made or reached), the image the pods run and the
 * add-ons the app needs under it. infra/index.ts picks one with {@link targetFor}.
 */
import * as gcp from "@pulumi/gcp";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { SERVICE_ACCOUNT_NAME } from "./app/scoring-app";
import { GkeCluster } from "./cluster/gke";
import { KIND_REGISTRY, KindCluster } from "./cluster/kind";
import type {
  AppSettings,
  ExistingClusterSettings,
  GkeSettings,
  KindSettings,
  StackConfig,
} from "./config";
import { ArtifactRegistry } from "./gcp/artifact-registry";
import { gcsBucket, ModelReader } from "./gcp/model-reader";
import { ServiceImage } from "./image";
import type { PinnedModel } from "./model-source";
import { MetalLb } from "./platform/metallb";
import { MetricsServer } from "./platform/metrics-server";

/** What the rest of the program needs from a cluster target. */
export interface Target {
  readonly provider: k8s.Provider;
  /** The image the pods run, pinned by digest. */
  readonly image: pulumi.Input<string>;
  /** Undefined: the kubeconfig's current context, whichever it is at `pulumi up`. */
  readonly kubeContext?: pulumi.Input<string>;
  readonly kubeconfig?: pulumi.Output<string>;
  /** Add-ons a LoadBalancer Service needs first (MetalLB on Kind). */
  readonly loadBalancer: pulumi.Resource[];
  /** What must exist before the pods start: grants to pull the image and read the model. */
  readonly appPrerequisites: pulumi.Resource[];
  /** The Google identity the pods read a gs:// model with (GKE only); undefined when none. */
  readonly modelReader?: ModelReader;
  /** Spread the pods over at least this many nodes as a rule; undefined: as a preference. */
  readonly spreadMinNodes?: number;
  /** Whether GKE's managed Prometheus (and its PodMonitoring kind) is there. */
  readonly managedPrometheus: boolean;
  /** The VPC network the stack made (GKE only). */
  readonly network?: pulumi.Output<string>;
}

function kindTarget(settings: KindSettings): Target {
  const cluster = new KindCluster("kind", {
    clusterName: settings.clusterName,
    addressRange: settings.metallbAddressRange,
  });
  const image = new ServiceImage("service", {
    repository: `${KIND_REGISTRY}/mlscore-scoring`,
    platform: cluster.platform,
  });
  const providers = [cluster.provider];
  const metallb = new MetalLb(
    "metallb",
    { addressRange: cluster.addressRange, version: settings.metallbVersion },
    { providers },
  );
  new MetricsServer("metrics-server", { version: settings.metricsServerVersion }, { providers });
  return {
    provider: cluster.provider,
    image: image.ref,
    kubeContext: cluster.contextName,
    loadBalancer: [metallb],
    appPrerequisites: [],
    managedPrometheus: false,
  };
}

function gkeTarget(settings: GkeSettings, app: AppSettings, model: PinnedModel): Target {
  const cluster = new GkeCluster("gke", {
    project: settings.project,
    region: settings.region,
    zone: settings.zone,
    nodeCount: settings.nodeCount,
    minNodes: settings.minNodes,
    maxNodes: settings.maxNodes,
    machineType: settings.machineType,
  });
  const registry = new ArtifactRegistry("registry", {
    project: settings.project,
    location: settings.region,
    reader: cluster.nodeServiceAccountMember,
  });
  // A short-lived token of whoever runs `pulumi up`: Artifact Registry accepts it as a password.
  const token = gcp.organizations.getClientConfigOutput().accessToken;
  const image = new ServiceImage("service", {
    repository: pulumi.interpolate`${registry.repositoryUrl}/scoring`,
    registryServer: registry.server,
    registryUsername: "oauth2accesstoken",
    registryPassword: pulumi.secret(token),
  });
  // Only a gs:// model needs a Google identity; other models are read without credentials. A
  // gs:// canary is in the stable model's bucket (the config says so) or the only gs:// model.
  const bucket = gcsBucket(model.uri) ?? gcsBucket(app.canary?.modelUri);
  const modelReader =
    bucket === undefined
      ? undefined
      : new ModelReader(
          "model-reader",
          {
            project: settings.project,
            bucket,
            workloadPool: cluster.workloadPool,
            namespace: app.namespace,
            serviceAccountName: SERVICE_ACCOUNT_NAME,
          },
          { dependsOn: [cluster] },
        );
  return {
    provider: cluster.provider,
    image: image.ref,
    kubeContext: cluster.contextName,
    kubeconfig: cluster.kubeconfig,
    loadBalancer: [],
    appPrerequisites: [registry, ...(modelReader ? [modelReader] : [])],
    modelReader,
    // The autoscaler adds nodes for pods the spread holds back, up to maxNodes.
    spreadMinNodes: app.minReplicas,
    managedPrometheus: true,
    network: cluster.networkName,
  };
}

/**
 * An existing cluster: nothing but a provider for its context. The image was built elsewhere and
 * the cluster brings its own load balancer, so no image is built and MetalLB is not installed.
 */
function existingClusterTarget(settings: ExistingClusterSettings): Target {
  const provider = new k8s.Provider("cluster-provider", { context: settings.kubeContext });
  return {
    provider,
    image: settings.image,
    kubeContext: settings.kubeContext,
    loadBalancer: [],
    appPrerequisites: [],
    managedPrometheus: false,
  };
}

/** The cluster, image and add-ons of the stack's target. */
export function targetFor(config: StackConfig, model: PinnedModel): Target {
  switch (config.cluster.target) {
    case "kind":
      return kindTarget(config.cluster);
    case "gke":
      return gkeTarget(config.cluster, config.app, model);
    case "cluster":
      return existingClusterTarget(config.cluster);
  }
}
