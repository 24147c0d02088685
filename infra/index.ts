import * as pulumi from "@pulumi/pulumi";
import { CanaryGate } from "./app/canary-gate";
import { isRemoteModelUri } from "./app/model-store";
import { canaryIdentity, ScoringApp, type S3StoreArgs } from "./app/scoring-app";
import { type AppSettings, loadConfig } from "./config";
import { gitRevision } from "./image";
import { pinModel } from "./model-source";
import { IngressRoute } from "./platform/ingress-route";
import { Istio } from "./platform/istio";
import { ISTIO_COMPONENT_NAME } from "./platform/istio-names";
import type { ResolvedModel } from "./registry/registered-model";
import { targetFor } from "./targets";

/** Where service/Dockerfile puts the built-in iris model; the pods load it when modelUri is empty. */
const BUILTIN_MODEL_PATH = "/app/models/iris.onnx";

/** A model URI as the program passes it on: secret when it holds a credential. */
function secretIfCredential(uri: string, secret: boolean): pulumi.Input<string> {
  return secret ? pulumi.secret(uri) : uri;
}

/** The pods' S3 store: its keys travel as secrets (the config check made sure both are set). */
function s3Store(settings: AppSettings): S3StoreArgs {
  const { region, endpoint, accessKeyId, secretAccessKey } = settings.s3;
  return {
    region,
    endpoint,
    accessKeyId: accessKeyId ?? "",
    secretAccessKey: pulumi.secret(secretAccessKey ?? ""),
  };
}

/** Which registered model version the pods serve, and where it came from. */
function provenance(model: ResolvedModel) {
  return {
    name: model.name,
    version: model.version,
    ...(model.alias === undefined ? {} : { alias: model.alias }),
    ...(model.runId === undefined ? {} : { runId: model.runId }),
    sha256: model.sha256,
  };
}

export = async () => {
  const config = loadConfig();
  const { app: settings } = config;
  // A registered model is resolved to one version and digest before anything is declared.
  const model = await pinModel(settings, config.cluster.target);
  const revision = gitRevision();
  const target = targetFor(config, model);
  const providers = [target.provider];
  // A URI that holds a credential stays secret in the state, the outputs and the cluster.
  const modelUri =
    model.uri === undefined ? undefined : secretIfCredential(model.uri, model.uriSecret);
  if (isRemoteModelUri(model.uri) && model.sha256 === undefined) {
    void pulumi.log.warn(
      "mlscore:modelSha256 is not set: pods started later serve whatever bytes then sit at " +
        "modelUri; pin them with: pulumi config set modelSha256 $(sha256sum model.onnx | cut -c1-64)",
    );
  }

  // The gateway's own LoadBalancer Service needs the address pool as much as the app's would.
  const istio =
    config.istio.enabled && config.istio.install
      ? new Istio(
          ISTIO_COMPONENT_NAME,
          {
            version: config.istio.version,
            loadBalancerSourceRanges: [...settings.loadBalancerSourceRanges],
            https: config.istio.tlsSecretName !== undefined,
          },
          { providers, dependsOn: target.loadBalancer },
        )
      : undefined;
  const meshed = config.istio.enabled;

  const canary = settings.canary;
  const canaryUri =
    canary === undefined ? undefined : secretIfCredential(canary.modelUri, canary.modelUriSecret);
  const identity =
    canary === undefined
      ? undefined
      : canaryIdentity({ uri: canary.modelUri, sha256: canary.modelSha256, ...canary.servedModel });

  // Waiting for every add-on also orders `destroy`: the app goes before the charts under it.
  // The pods pull the image and fetch a gs:// model as they start, so those grants come first.
  const app = new ScoringApp(
    "scoring",
    {
      namespace: settings.namespace,
      image: target.image,
      replicas: settings.replicas,
      minReplicas: settings.minReplicas,
      maxReplicas: settings.maxReplicas,
      targetCpuUtilization: settings.targetCpuUtilization,
      cpuRequest: settings.cpuRequest,
      cpuLimit: settings.cpuLimit,
      memoryRequest: settings.memoryRequest,
      memoryLimit: settings.memoryLimit,
      modelUri,
      modelUriSecret: model.uriSecret,
      modelName: model.name,
      modelVersion: model.version,
      modelSha256: model.sha256,
      s3Store: model.uri?.startsWith("s3://") ? s3Store(settings) : undefined,
      modelMaxBytes: settings.modelMaxBytes,
      revision,
      serviceType: meshed ? "ClusterIP" : "LoadBalancer",
      loadBalancerSourceRanges: meshed ? undefined : [...settings.loadBalancerSourceRanges],
      ingressFromNamespace: meshed ? config.istio.gatewayNamespace : undefined,
      gcpServiceAccount: target.modelReader?.email,
      spreadMinNodes: target.spreadMinNodes,
      monitoringNamespace: settings.monitoringNamespace,
      podMonitoring: target.managedPrometheus,
      canary:
        canary === undefined || canaryUri === undefined || identity === undefined
          ? undefined
          : {
              identity,
              modelUri: canaryUri,
              modelUriSecret: canary.modelUriSecret,
              modelName: canary.servedModel.name,
              modelVersion: canary.servedModel.version,
              modelSha256: canary.modelSha256,
              s3Store: canary.modelUri.startsWith("s3://") ? s3Store(settings) : undefined,
            },
    },
    {
      providers,
      dependsOn: [...target.loadBalancer, ...(istio ? [istio] : []), ...target.appPrerequisites],
    },
  );

  // The canary's pods are ready (Pulumi waited for them) before the gate asks them anything.
  const gate =
    canary === undefined || app.canary === undefined || identity === undefined
      ? undefined
      : new CanaryGate(
          "canary-gate",
          {
            namespace: app.namespace,
            image: target.image,
            serviceHost: app.canary.serviceHost,
            servicePort: app.servicePort,
            canaryPodLabels: app.canary.podLabels,
            identity,
            model: canary.servedModel,
            golden: canary.golden,
          },
          { providers, dependsOn: [app.canary.deployment, app.canary.service] },
        );

  if (meshed) {
    new IngressRoute(
      "ingress",
      {
        namespace: app.namespace,
        serviceHost: app.serviceHost,
        servicePort: app.servicePort,
        maxPods: settings.maxReplicas,
        tlsSecretName: config.istio.tlsSecretName,
        canary:
          canary === undefined || app.canary === undefined || gate === undefined
            ? undefined
            : {
                serviceHost: app.canary.serviceHost,
                weight: canary.weight,
                maxPods: settings.maxReplicas,
                gate: gate.job,
              },
      },
      // The cluster's own Istio has its CRDs already.
      { providers, dependsOn: istio ? [istio.crds] : [] },
    );
  }

  const scheme = config.istio.tlsSecretName === undefined ? "http" : "https";
  // The cluster's own gateway is not the stack's: its address is not known here.
  const address = istio ? istio.gatewayAddress : meshed ? undefined : app.endpoint;
  return {
    ...(address
      ? {
          endpoint: address.apply((ip) =>
            ip ? `${scheme}://${ip}` : "pending: no load balancer address",
          ),
        }
      : {}),
    image: target.image,
    namespace: app.namespace,
    ...(target.kubeContext ? { kubeContext: target.kubeContext } : {}),
    ...(target.kubeconfig ? { kubeconfig: target.kubeconfig } : {}),
    ...(target.network ? { network: target.network } : {}),
    modelUri: modelUri ?? BUILTIN_MODEL_PATH,
    ...(model.registered ? { registeredModel: provenance(model.registered) } : {}),
    servedModels: {
      // A registered model's name and version come from the registry.
      stable: {
        name: model.name ?? settings.servedModel.name,
        version: model.version ?? settings.servedModel.version,
      },
      ...(canary ? { canary: canary.servedModel } : {}),
    },
    ...(canary && gate
      ? {
          canaryModelUri: canaryUri,
          trafficWeights: { stable: 100 - canary.weight, canary: canary.weight },
          canaryGate: gate.result,
        }
      : {}),
    gitRevision: revision,
  };
};
