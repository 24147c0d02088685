import * as gcp from "@pulumi/gcp";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { SERVICE_ACCOUNT_NAME, ScoringApp } from "./app/scoring-app";
import { GkeCluster } from "./cluster/gke";
import { KIND_REGISTRY, KindCluster } from "./cluster/kind";
import { gcsBucket, ModelReader } from "./cluster/model-reader";
import {
  type AppSettings,
  type ExistingClusterSettings,
  type GkeSettings,
  type KindSettings,
  loadConfig,
  type StackConfig,
} from "./config";
import { ArtifactRegistry, gitRevision, ServiceImage } from "./image";
import { IngressRoute } from "./platform/ingress-route";
import { Istio } from "./platform/istio";
import { MetalLb } from "./platform/metallb";

/** Where service/Dockerfile puts the built-in iris model; the pods load it when modelUri is empty. */
const BUILTIN_MODEL_PATH = "/app/models/iris.onnx";

/** What the rest of the program needs from a cluster target. */
interface Target {
  readonly provider: k8s.Provider;
  /** The image the pods run, pinned by digest. */
  readonly image: pulumi.Input<string>;
  /** Undefined: the kubeconfig's current context, whichever it is at `pulumi up`. */
  readonly kubeContext?: pulumi.Input<string>;
  readonly kubeconfig?: pulumi.Output<string>;
  /** Add-ons a LoadBalancer Service needs first (MetalLB on Kind). */
  readonly loadBalancer: pulumi.Resource[];
  /** The Google identity the pods read a gs:// model with (GKE only); undefined when none. */
  readonly modelReader?: ModelReader;
}

function kindTarget(settings: KindSettings, revision: string): Target {
  const cluster = new KindCluster("kind", {
    clusterName: settings.clusterName,
    addressRange: settings.metallbAddressRange,
  });
  const image = new ServiceImage("service", {
    repository: `${KIND_REGISTRY}/mlscore-scoring`,
    revision,
  });
  const metallb = new MetalLb(
    "metallb",
    { addressRange: cluster.addressRange, version: settings.metallbVersion },
    { providers: [cluster.provider] },
  );
  return {
    provider: cluster.provider,
    image: image.ref,
    kubeContext: cluster.contextName,
    loadBalancer: [metallb],
  };
}

function gkeTarget(settings: GkeSettings, app: AppSettings, revision: string): Target {
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
  });
  // A short-lived token of whoever runs `pulumi up`: Artifact Registry accepts it as a password.
  const token = gcp.organizations.getClientConfigOutput().accessToken;
  const image = new ServiceImage("service", {
    repository: pulumi.interpolate`${registry.repositoryUrl}/scoring`,
    revision,
    registryServer: registry.server,
    registryUsername: "oauth2accesstoken",
    registryPassword: pulumi.secret(token),
  });
  // Only a gs:// model needs a Google identity; other models are read without credentials.
  const bucket = gcsBucket(app.modelUri);
  const modelReader =
    bucket === undefined
      ? undefined
      : new ModelReader("model-reader", {
          project: settings.project,
          bucket,
          workloadPool: cluster.workloadPool,
          namespace: app.namespace,
          serviceAccountName: SERVICE_ACCOUNT_NAME,
        });
  return {
    provider: cluster.provider,
    image: image.ref,
    kubeContext: cluster.contextName,
    kubeconfig: cluster.kubeconfig,
    loadBalancer: [],
    modelReader,
  };
}

/**
 * An existing cluster: nothing but a provider for its context. The image was built elsewhere and
 * the cluster brings its own load balancer, so no image is built and MetalLB is not installed.
 */
function existingClusterTarget(settings: ExistingClusterSettings): Target {
  const provider = new k8s.Provider("cluster-provider", { context: settings.kubeContext });
  return { provider, image: settings.image, kubeContext: settings.kubeContext, loadBalancer: [] };
}

function targetFor(config: StackConfig, revision: string): Target {
  switch (config.cluster.target) {
    case "kind":
      return kindTarget(config.cluster, revision);
    case "gke":
      return gkeTarget(config.cluster, config.app, revision);
    case "cluster":
      return existingClusterTarget(config.cluster);
  }
}

export = async () => {
  const config = loadConfig();
  const revision = gitRevision();
  const target = targetFor(config, revision);
  const providers = [target.provider];

  // The gateway's own LoadBalancer Service needs the address pool as much as the app's would.
  const istio = config.istio.enabled
    ? new Istio(
        "istio",
        { version: config.istio.version },
        { providers, dependsOn: target.loadBalancer },
      )
    : undefined;

  // Waiting for every add-on also orders `destroy`: the app goes before the charts under it.
  // The pods fetch a gs:// model as they start, so its grants come first too.
  const app = new ScoringApp(
    "scoring",
    {
      ...config.app,
      image: target.image,
      serviceType: istio ? "ClusterIP" : "LoadBalancer",
      ingressFromNamespace: istio?.gatewayNamespace,
      gcpServiceAccount: target.modelReader?.email,
    },
    {
      providers,
      dependsOn: [
        ...target.loadBalancer,
        ...(istio ? [istio] : []),
        ...(target.modelReader ? [target.modelReader] : []),
      ],
    },
  );

  if (istio) {
    new IngressRoute(
      "ingress",
      { namespace: app.namespace, serviceHost: app.serviceHost, servicePort: app.servicePort },
      { providers, dependsOn: [istio.crds] },
    );
  }

  const address = istio ? istio.gatewayAddress : app.endpoint;
  return {
    endpoint: address.apply((ip) => (ip ? `http://${ip}` : "pending: no load balancer address")),
    image: target.image,
    namespace: app.namespace,
    ...(target.kubeContext ? { kubeContext: target.kubeContext } : {}),
    ...(target.kubeconfig ? { kubeconfig: target.kubeconfig } : {}),
    modelUri: config.app.modelUri ?? BUILTIN_MODEL_PATH,
    gitRevision: revision,
  };
};
