import * as gcp from "@pulumi/gcp";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

/** Primary range of the subnet: node addresses. */
export const NODE_RANGE = "10.10.0.0/20";
/** Secondary range the cluster gives pods (VPC-native), named {@link POD_RANGE_NAME}. */
export const POD_RANGE = "10.20.0.0/14";
/** Secondary range the cluster gives Services, named {@link SERVICE_RANGE_NAME}. */
export const SERVICE_RANGE = "10.24.0.0/20";
export const POD_RANGE_NAME = "pods";
export const SERVICE_RANGE_NAME = "services";

/** The Google APIs a GKE cluster in its own VPC, with its own node service account, needs enabled. */
export const GKE_APIS = [
  "compute.googleapis.com",
  "container.googleapis.com",
  "iam.googleapis.com",
] as const;

/**
 * The least-privileged role Google made for node service accounts: logs, metrics and the other
 * node-level tasks. Organisations created after 3 May 2024 no longer hand the Compute Engine
 * default account Editor, so nodes running as it may not even pull images; a dedicated account
 * with this role (and read access to the image repository) works everywhere.
 */
export const NODE_ROLE = "roles/container.defaultNodeServiceAccount";

/** Arguments of {@link GkeCluster}. */
export interface GkeClusterArgs {
  /** Google Cloud project. Required. */
  readonly project: pulumi.Input<string>;
  /** Region of the network's subnet. Required. */
  readonly region: pulumi.Input<string>;
  /** Zone of the (zonal) cluster and its nodes, inside `region`. Required. */
  readonly zone: pulumi.Input<string>;
  /** Nodes the pool starts with. Required. */
  readonly nodeCount: pulumi.Input<number>;
  /** Fewest nodes the cluster autoscaler keeps. Required. */
  readonly minNodes: pulumi.Input<number>;
  /** Most nodes the cluster autoscaler adds. Required. */
  readonly maxNodes: pulumi.Input<number>;
  /** Compute Engine machine type of the nodes. Required. */
  readonly machineType: pulumi.Input<string>;
  /** GKE release channel; default "REGULAR". */
  readonly releaseChannel?: pulumi.Input<"RAPID" | "REGULAR" | "STABLE">;
}

/**
 * A zonal, VPC-native GKE cluster in its own network: the default node pool replaced by one this
 * stack manages, nodes running as their own least-privileged service account, Workload Identity
 * on, Dataplane V2 enforcing NetworkPolicies, managed Prometheus on, deletion protection off so
 * `pulumi destroy` works. Exposes a secret kubeconfig that authenticates with
 * `gke-gcloud-auth-plugin` and a `k8s.Provider` built from it.
 */
export class GkeCluster extends pulumi.ComponentResource {
  /** Name GKE knows the cluster by. */
  readonly clusterName: pulumi.Output<string>;
  /** Kubeconfig for the cluster (secret), using the `gke-gcloud-auth-plugin` exec credential. */
  readonly kubeconfig: pulumi.Output<string>;
  /** The kubeconfig context name, as `gcloud container clusters get-credentials` names it. */
  readonly contextName: pulumi.Output<string>;
  /** Provider for Kubernetes resources in this cluster; usable once the node pool exists. */
  readonly provider: k8s.Provider;
  /** Workload Identity pool of the cluster, `<project>.svc.id.goog`; known once it exists. */
  readonly workloadPool: pulumi.Output<string>;
  /** IAM member of the nodes' service account, to grant it read access to the images. */
  readonly nodeServiceAccountMember: pulumi.Output<string>;
  /** Name of the VPC network, for cleaning up what a failed `destroy` leaves on it. */
  readonly networkName: pulumi.Output<string>;

  constructor(name: string, args: GkeClusterArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("mlscore:index:GkeCluster", name, {}, opts);
    const releaseChannel = args.releaseChannel ?? "REGULAR";

    // Left enabled on destroy: other workloads in the project may rely on these APIs.
    const apis = GKE_APIS.map(
      (service) =>
        new gcp.projects.Service(
          `${name}-${service.split(".")[0]}-api`,
          { project: args.project, service, disableOnDestroy: false },
          { parent: this },
        ),
    );

    const network = new gcp.compute.Network(
      `${name}-network`,
      { project: args.project, autoCreateSubnetworks: false },
      { parent: this, dependsOn: apis },
    );

    const subnet = new gcp.compute.Subnetwork(
      `${name}-subnet`,
      {
        project: args.project,
        region: args.region,
        network: network.id,
        ipCidrRange: NODE_RANGE,
        // Nodes without public addresses still reach Artifact Registry and Cloud Storage.
        privateIpGoogleAccess: true,
        secondaryIpRanges: [
          { rangeName: POD_RANGE_NAME, ipCidrRange: POD_RANGE },
          { rangeName: SERVICE_RANGE_NAME, ipCidrRange: SERVICE_RANGE },
        ],
      },
      { parent: this },
    );

    const nodeAccount = new gcp.serviceaccount.Account(
      `${name}-node-account`,
      {
        project: args.project,
        accountId: "mlscore-nodes",
        displayName: "mlscore GKE nodes",
        description: "Runs the nodes of the mlscore cluster",
      },
      { parent: this, dependsOn: apis },
    );
    const nodeRole = new gcp.projects.IAMMember(
      `${name}-node-role`,
      { project: args.project, role: NODE_ROLE, member: nodeAccount.member },
      { parent: this },
    );
    const nodeConfig = {
      serviceAccount: nodeAccount.email,
      oauthScopes: ["https://www.googleapis.com/auth/cloud-platform"],
    };

    const cluster = new gcp.container.Cluster(
      `${name}-cluster`,
      {
        project: args.project,
        location: args.zone,
        network: network.id,
        subnetwork: subnet.id,
        networkingMode: "VPC_NATIVE",
        ipAllocationPolicy: {
          clusterSecondaryRangeName: POD_RANGE_NAME,
          servicesSecondaryRangeName: SERVICE_RANGE_NAME,
        },
        // A cluster cannot be created without nodes; the default pool is dropped right after
        // so the managed pool below can change machine type or size without a new cluster.
        removeDefaultNodePool: true,
        initialNodeCount: 1,
        // Only the default pool reads this; it must register with the same account as the
        // managed pool, or cluster creation waits for nodes that never come up.
        nodeConfig,
        deletionProtection: false,
        releaseChannel: { channel: releaseChannel },
        workloadIdentityConfig: { workloadPool: pulumi.interpolate`${args.project}.svc.id.goog` },
        // Dataplane V2: without it GKE accepts NetworkPolicies but does not enforce them.
        datapathProvider: "ADVANCED_DATAPATH",
        // Managed Prometheus collects what the app's PodMonitoring names.
        monitoringConfig: {
          enableComponents: ["SYSTEM_COMPONENTS"],
          managedPrometheus: { enabled: true },
        },
      },
      // The default pool is gone once the cluster exists; its nodeConfig is history.
      { parent: this, dependsOn: [...apis, nodeRole], ignoreChanges: ["nodeConfig"] },
    );

    const nodePool = new gcp.container.NodePool(
      `${name}-nodes`,
      {
        project: args.project,
        location: args.zone,
        cluster: cluster.name,
        // initialNodeCount, not nodeCount: the autoscaler owns the size after creation, and
        // nodeCount would fight it on every `up`.
        initialNodeCount: args.nodeCount,
        autoscaling: { minNodeCount: args.minNodes, maxNodeCount: args.maxNodes },
        management: { autoRepair: true, autoUpgrade: true },
        nodeConfig: {
          ...nodeConfig,
          machineType: args.machineType,
          diskSizeGb: 50,
          // Pods get Workload Identity tokens instead of the node's service account.
          workloadMetadataConfig: { mode: "GKE_METADATA" },
          shieldedInstanceConfig: { enableSecureBoot: true, enableIntegrityMonitoring: true },
          labels: { "app.kubernetes.io/part-of": "mlscore" },
        },
      },
      { parent: this, dependsOn: [nodeRole] },
    );

    this.clusterName = cluster.name;
    this.nodeServiceAccountMember = nodeAccount.member;
    this.networkName = network.name;
    // Read from the cluster, not the args: IAM rejects members of a pool that does not exist
    // yet, and the project's pool comes into being with its first Workload Identity cluster.
    this.workloadPool = pulumi.interpolate`${cluster.project}.svc.id.goog`;
    this.contextName = pulumi.interpolate`gke_${cluster.project}_${cluster.location}_${cluster.name}`;
    this.kubeconfig = pulumi.secret(
      gkeKubeconfig(this.contextName, cluster.endpoint, cluster.masterAuth.clusterCaCertificate),
    );

    // Waits for the node pool: workloads applied to a cluster without nodes never schedule.
    this.provider = new k8s.Provider(
      `${name}-provider`,
      { kubeconfig: this.kubeconfig },
      { parent: this, dependsOn: [nodePool] },
    );

    this.registerOutputs({
      clusterName: this.clusterName,
      contextName: this.contextName,
      kubeconfig: this.kubeconfig,
      provider: this.provider,
      workloadPool: this.workloadPool,
      nodeServiceAccountMember: this.nodeServiceAccountMember,
      networkName: this.networkName,
    });
  }
}

/**
 * A kubeconfig with one context that authenticates through `gke-gcloud-auth-plugin`, so no
 * long-lived credential is written into it: the plugin asks gcloud for a fresh token.
 */
export function gkeKubeconfig(
  contextName: pulumi.Input<string>,
  endpoint: pulumi.Input<string>,
  caCertificate: pulumi.Input<string>,
): pulumi.Output<string> {
  return pulumi.interpolate`apiVersion: v1
kind: Config
clusters:
  - name: ${contextName}
    cluster:
      certificate-authority-data: ${caCertificate}
      server: https://${endpoint}
contexts:
  - name: ${contextName}
    context:
      cluster: ${contextName}
      user: ${contextName}
current-context: ${contextName}
users:
  - name: ${contextName}
    user:
      exec:
        apiVersion: client.authentication.k8s.io/v1beta1
        command: gke-gcloud-auth-plugin
        installHint: Install gke-gcloud-auth-plugin (gcloud components install gke-gcloud-auth-plugin)
        provideClusterInfo: true
        interactiveMode: Never
`;
}
