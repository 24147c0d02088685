/**
 * What the mocked engine answers for the clouds and clusters that cannot exist on this machine:
 * provider functions (invokes) and the state of each resource it is asked to create or read.
 */
import { createHash } from "node:crypto";
import type * as pulumi from "@pulumi/pulumi";

/**
 * Mock overrides tried before the harness's defaults. Returning undefined falls through to the
 * defaults, so a test only answers what it cares about.
 */
export interface MockOverrides {
  readonly call?: (args: pulumi.runtime.MockCallArgs) => Record<string, unknown> | undefined;
  readonly newResource?: (
    args: pulumi.runtime.MockResourceArgs,
  ) => pulumi.runtime.MockResourceResult | undefined;
}

/** The `kind` Docker network as `docker network inspect kind` shows it on a default install. */
export const KIND_NETWORK = {
  name: "kind",
  driver: "bridge",
  ipv4Subnet: "172.18.0.0/16",
  ipv4Gateway: "172.18.0.1",
  ipv6Subnet: "fc00:f853:ccd:e793::/64",
} as const;

/** The architecture a mocked Kind node reports, as on an x86-64 laptop. */
export const KIND_NODE_ARCHITECTURE = "amd64";

/** When a mocked Job started and completed, as its status reports. */
export const FAKE_JOB_START = "2026-01-01T00:00:00Z";
export const FAKE_JOB_COMPLETION = "2026-01-01T00:00:20Z";

/** The fake access token gcp's getClientConfig answers with. */
export const FAKE_GCP_ACCESS_TOKEN = "ya29.fake-access-token-for-tests";

/** The address a mocked LoadBalancer Service reports, derived from its name for stable asserts. */
export function fakeLoadBalancerIp(resourceName: string): string {
  const digest = createHash("sha256").update(resourceName).digest();
  return `172.18.255.${200 + (digest[0] % 50)}`;
}

/** The invokes the programs make, answered as Docker and Google Cloud would. */
export function defaultCall(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
  switch (args.token) {
    case "docker:index/getNetwork:getNetwork":
      if (args.inputs.name !== KIND_NETWORK.name) {
        throw new Error(`harness knows only the "kind" Docker network, not "${args.inputs.name}"`);
      }
      return {
        id: "kind-network-id",
        name: KIND_NETWORK.name,
        driver: KIND_NETWORK.driver,
        internal: false,
        scope: "local",
        options: { "com.docker.network.bridge.enable_ip_masquerade": "true" },
        ipamConfigs: [
          { subnet: KIND_NETWORK.ipv6Subnet },
          { subnet: KIND_NETWORK.ipv4Subnet, gateway: KIND_NETWORK.ipv4Gateway },
        ],
      };
    case "gcp:organizations/getClientConfig:getClientConfig":
      return {
        id: "client-config",
        accessToken: FAKE_GCP_ACCESS_TOKEN,
        project: "",
        region: "",
        zone: "",
        defaultLabels: {},
      };
    default:
      throw new Error(
        `harness has no mock for invoke ${args.token}; answer it with options.mocks.call`,
      );
  }
}

/** The state a resource gets: its inputs and what the provider would add. */
export function defaultNewResource(
  args: pulumi.runtime.MockResourceArgs,
): pulumi.runtime.MockResourceResult {
  const inputs = args.inputs as Record<string, unknown>;
  const id = args.id || `${args.name}-id`;
  const state: Record<string, unknown> = {
    ...inputs,
    ...typeSpecificState(args.type, args.name, inputs, args.id),
  };
  if (args.type.startsWith("kubernetes:") && !args.type.startsWith("kubernetes:helm")) {
    state.metadata = kubernetesMetadata(args.name, state.metadata);
  }
  return { id, state };
}

/**
 * The name a Google Cloud provider gives a resource the program does not name: its logical name
 * and a random suffix, which the mock keeps stable, so names flow on as they would for real.
 */
export function cloudAutoname(resourceName: string): string {
  return `${resourceName}-${shortHash(resourceName).slice(0, 7)}`;
}

/** Kubernetes autonames an unnamed object `<resource name>-<random suffix>`; the mock keeps it stable. */
function kubernetesMetadata(resourceName: string, metadata: unknown): Record<string, unknown> {
  const given = typeof metadata === "object" && metadata !== null ? { ...metadata } : {};
  const named = given as Record<string, unknown>;
  if (typeof named.name !== "string" || named.name === "") {
    named.name = `${resourceName}-${shortHash(resourceName)}`;
  }
  return named;
}

function typeSpecificState(
  type: string,
  name: string,
  inputs: Record<string, unknown>,
  readId: string | undefined,
): Record<string, unknown> {
  switch (type) {
    case "docker:index/image:Image": {
      const imageName = text(inputs.imageName, name);
      const repository = imageName.replace(/:[^:/]+$/, "");
      return { imageName, repoDigest: `${repository}@sha256:${sha256(imageName)}` };
    }
    case "gcp:compute/network:Network":
      return { name: cloudAutoname(name) };
    case "gcp:container/cluster:Cluster":
      return {
        name: cloudAutoname(name),
        endpoint: "203.0.113.10",
        masterAuth: {
          clusterCaCertificate: Buffer.from("fake-cluster-ca").toString("base64"),
        },
        selfLink: `https://container.googleapis.com/v1/clusters/${name}`,
      };
    case "gcp:artifactregistry/repository:Repository": {
      const location = text(inputs.location, "us-central1");
      const project = text(inputs.project, "test-project");
      const repositoryId = text(inputs.repositoryId, name);
      return {
        name: repositoryId,
        registryUri: `${location}-docker.pkg.dev/${project}/${repositoryId}`,
      };
    }
    case "gcp:serviceaccount/account:Account": {
      const project = text(inputs.project, "test-project");
      const email = `${text(inputs.accountId, name)}@${project}.iam.gserviceaccount.com`;
      return {
        email,
        member: `serviceAccount:${email}`,
        name: `projects/${project}/serviceAccounts/${email}`,
        uniqueId: "100000000000000000001",
      };
    }
    case "kubernetes:core/v1:Service": {
      const spec = (inputs.spec ?? {}) as Record<string, unknown>;
      if (spec.type === "LoadBalancer") {
        return { status: { loadBalancer: { ingress: [{ ip: fakeLoadBalancerIp(name) }] } } };
      }
      return { status: { loadBalancer: {} } };
    }
    case "kubernetes:batch/v1:Job":
      // Pulumi waits for a Job to complete; its state is then what the cluster reports.
      return {
        status: {
          startTime: FAKE_JOB_START,
          completionTime: FAKE_JOB_COMPLETION,
          succeeded: 1,
          conditions: [{ type: "Complete", status: "True" }],
        },
      };
    case "kubernetes:core/v1:Node":
      // The programs read only Kind's control-plane node, for its architecture.
      return {
        metadata: { name: readId },
        status: { nodeInfo: { architecture: KIND_NODE_ARCHITECTURE, osImage: "Debian" } },
      };
    case "kubernetes:helm.sh/v3:Release": {
      const releaseName = text(inputs.name, `${name}-${shortHash(name)}`);
      return {
        name: releaseName,
        status: {
          name: releaseName,
          namespace: inputs.namespace ?? "default",
          chart: inputs.chart,
          version: inputs.version,
          status: "deployed",
          revision: 1,
        },
      };
    }
    default:
      return {};
  }
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function shortHash(text: string): string {
  return sha256(text).slice(0, 8);
}

/** A string input as the engine passed it, or `fallback` when it was not given. */
function text(value: unknown, fallback: string): string {
  return typeof value === "string" ? value : fallback;
}
