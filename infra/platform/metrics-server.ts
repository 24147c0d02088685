import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

/** Where metrics-server publishes its Helm chart. */
export const METRICS_SERVER_CHART_REPO = "https://kubernetes-sigs.github.io/metrics-server/";

/** Arguments of {@link MetricsServer}. */
export interface MetricsServerArgs {
  /** Chart version (Pulumi.yaml's `metricsServerVersion`). Required. */
  readonly version: pulumi.Input<string>;
}

/**
 * metrics-server, which serves the resource metrics API the HorizontalPodAutoscalers read CPU use
 * from. GKE runs its own; Kind ships none, and without it every CPU target stays `<unknown>`.
 */
export class MetricsServer extends pulumi.ComponentResource {
  /** The Helm release. */
  readonly release: k8s.helm.v3.Release;

  constructor(name: string, args: MetricsServerArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("mlscore:index:MetricsServer", name, {}, opts);

    this.release = new k8s.helm.v3.Release(
      `${name}-release`,
      {
        name: "metrics-server",
        chart: "metrics-server",
        version: args.version,
        repositoryOpts: { repo: METRICS_SERVER_CHART_REPO },
        namespace: "kube-system",
        skipAwait: false,
        atomic: true,
        cleanupOnFail: true,
        timeout: 300,
        // Kind's kubelets serve self-signed certificates that no CA in the cluster signed.
        values: { args: ["--kubelet-insecure-tls"] },
      },
      { parent: this },
    );

    this.registerOutputs({ release: this.release });
  }
}
