import * as docker from "@pulumi/docker";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { dotted, ipv4Cidr } from "../ipv4";

/**
 * The registry `npm run kind:up` runs beside the cluster, as Kind's local-registry guide sets it
 * up: the host pushes to localhost:5001 and every node resolves the same name to it.
 */
export const KIND_REGISTRY = "localhost:5001";
/** The Docker network Kind puts its nodes on. */
export const KIND_NETWORK = "kind";

/** Arguments of {@link KindCluster}. */
export interface KindClusterArgs {
  /** Name the cluster was created with (`kind create cluster --name`). Required. */
  readonly clusterName: pulumi.Input<string>;
  /**
   * Addresses for MetalLB; default derived from the `kind` Docker network's IPv4 subnet with
   * {@link loadBalancerRange}.
   */
  readonly addressRange?: pulumi.Input<string>;
}

/**
 * A Kind cluster made outside Pulumi (`npm run kind:up`): the Kubernetes provider for its
 * `kind-<name>` context in the default kubeconfig, the local registry, the platform of its nodes
 * (read from its control-plane Node) and the address range MetalLB can hand out on the `kind`
 * Docker network.
 */
export class KindCluster extends pulumi.ComponentResource {
  /** The kubeconfig context Kind wrote, `kind-<clusterName>`. */
  readonly contextName: pulumi.Output<string>;
  /** Registry the image is pushed to; nodes pull from it under the same name. */
  readonly registry: pulumi.Output<string>;
  /** Addresses for MetalLB's pool, reachable from the host on Linux. */
  readonly addressRange: pulumi.Output<string>;
  /** Provider for Kubernetes resources in this cluster. */
  readonly provider: k8s.Provider;
  /**
   * The platform images must be built for, `linux/<arch>` of the cluster's nodes: Kind runs its
   * nodes on the Docker host's own architecture, arm64 on Apple silicon.
   */
  readonly platform: pulumi.Output<string>;

  constructor(name: string, args: KindClusterArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("mlscore:index:KindCluster", name, {}, opts);

    this.contextName = pulumi.interpolate`kind-${args.clusterName}`;
    this.registry = pulumi.output(KIND_REGISTRY);
    this.addressRange =
      args.addressRange !== undefined
        ? pulumi.output(args.addressRange)
        : docker.getNetworkOutput({ name: KIND_NETWORK }, { parent: this }).apply((network) =>
            loadBalancerRange(
              (network.ipamConfigs ?? []).map((ipam) => ipam.subnet ?? ""),
              this,
            ),
          );

    // No kubeconfig given: the provider reads KUBECONFIG or ~/.kube/config, where kind wrote it.
    this.provider = new k8s.Provider(
      `${name}-provider`,
      { context: this.contextName },
      { parent: this },
    );

    // Kind names the control-plane node `<cluster>-control-plane`; every node shares its arch.
    const node = k8s.core.v1.Node.get(
      `${name}-control-plane`,
      pulumi.interpolate`${args.clusterName}-control-plane`,
      { parent: this, provider: this.provider },
    );
    this.platform = node.status.apply((status) =>
      imagePlatform(status?.nodeInfo?.architecture, this),
    );

    this.registerOutputs({
      contextName: this.contextName,
      registry: this.registry,
      addressRange: this.addressRange,
      provider: this.provider,
      platform: this.platform,
    });
  }
}

/** Node architectures the service's image builds for: onnxruntime-node ships these two. */
const IMAGE_ARCHITECTURES = ["amd64", "arm64"];

/**
 * The image platform for nodes of `architecture` (as a Node's `nodeInfo` reports it); throws,
 * as an error of `resource` when given, for one the image cannot be built for.
 */
export function imagePlatform(
  architecture: string | undefined,
  resource?: pulumi.Resource,
): string {
  if (architecture === undefined || !IMAGE_ARCHITECTURES.includes(architecture)) {
    throw new pulumi.ResourceError(
      `the Kind nodes run on "${architecture ?? "an unknown architecture"}"; the service's image ` +
        `builds for ${IMAGE_ARCHITECTURES.join(" and ")} only`,
      resource,
    );
  }
  return `linux/${architecture}`;
}

/** Addresses kept at the top of the subnet: Docker hands out container addresses from the bottom. */
const RANGE_SIZE = 51;
const RANGE_GAP_BELOW_BROADCAST = 5;

/**
 * The MetalLB range for a Docker network: 51 addresses just below the top of its IPv4 subnet,
 * far from the addresses Docker gives containers (172.18.0.0/16 → 172.18.255.200-172.18.255.250).
 * `subnets` are the network's IPAM subnets; IPv6 ones are skipped. Throws, as an error of
 * `resource` when given, for a network without a fitting IPv4 subnet.
 */
export function loadBalancerRange(subnets: readonly string[], resource?: pulumi.Resource): string {
  const subnet = subnets.find((candidate) => ipv4Cidr(candidate) !== undefined);
  const block = subnet === undefined ? undefined : ipv4Cidr(subnet);
  if (subnet === undefined || block === undefined) {
    throw new pulumi.ResourceError(
      `the "${KIND_NETWORK}" Docker network has no IPv4 subnet (found [${subnets.join(", ")}]); ` +
        "set a MetalLB range with: pulumi config set metallbAddressRange <first>-<last>",
      resource,
    );
  }
  if (block.prefix < 8 || block.prefix > 24) {
    throw new pulumi.ResourceError(
      `the "${KIND_NETWORK}" Docker network's subnet ${subnet} is not an IPv4 network of /8 to /24; ` +
        "set a MetalLB range with: pulumi config set metallbAddressRange <first>-<last>",
      resource,
    );
  }
  const broadcast = block.base + 2 ** (32 - block.prefix) - 1;
  const last = broadcast - RANGE_GAP_BELOW_BROADCAST;
  const first = last - RANGE_SIZE + 1;
  return `${dotted(first)}-${dotted(last)}`;
}
