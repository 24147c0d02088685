import { createHash } from "node:crypto";
import { readFileSync, existsSync } from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { specialSecretSig, specialSigKey } from "@pulumi/pulumi/runtime/rpc";
import { parse as parseYaml } from "yaml";

/** The Pulumi project name every recorded run uses, as declared in Pulumi.yaml. */
export const PROJECT = "mlscore";

/** The repository root, where Pulumi.yaml and the stack files live. */
export const REPO_ROOT = path.resolve(__dirname, "..", "..");

/** One resource registration (or `.get` read) the engine mock saw. */
export interface RecordedResource {
  /** Type token, e.g. `kubernetes:apps/v1:Deployment` or `mlscore:index:ScoringApp`. */
  readonly type: string;
  /** Logical (Pulumi) name. */
  readonly name: string;
  readonly urn: string;
  /** True for provider-managed resources, false for components. */
  readonly custom: boolean;
  /** True when the program read an existing object (`Resource.get`) instead of declaring one. */
  readonly read: boolean;
  /** The id passed to `.get` or the import id; undefined for plain registrations. */
  readonly importId?: string;
  /** Inputs as the engine received them (secrets still in their wire wrapper, unknowns absent). */
  readonly inputs: Record<string, unknown>;
  /** Outputs the mock answered with. */
  readonly state: Record<string, unknown>;
  /** URN of the parent resource; undefined only for the stack itself. */
  readonly parent?: string;
  /** URN of the explicit provider resource, when one applies. */
  readonly provider?: string;
  /** URNs this resource waits for: explicit dependsOn plus dependencies carried by its inputs. */
  readonly dependencies: readonly string[];
  /** Custom timeouts (`create`/`update`/`delete`, empty string for one not set); undefined when none is. */
  readonly customTimeouts?: {
    readonly create: string;
    readonly update: string;
    readonly delete: string;
  };
  readonly deleteBeforeReplace: boolean;
  readonly ignoreChanges: readonly string[];
  readonly replaceOnChanges: readonly string[];
  readonly protect: boolean;
  readonly retainOnDelete: boolean;
  /** URN of the resource this one is deleted with, if any. */
  readonly deletedWith?: string;
}

/** A declared Kubernetes object and the registration it came from. */
export interface KubernetesObjectRecord {
  readonly resource: RecordedResource;
  readonly object: {
    readonly apiVersion: string;
    readonly kind: string;
    readonly metadata?: { readonly name?: string; readonly namespace?: string };
    readonly [field: string]: unknown;
  };
}

/** One provider function call (invoke) the program made. */
export interface RecordedInvoke {
  readonly token: string;
  readonly inputs: Record<string, unknown>;
  readonly provider?: string;
}

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

/** How to run a program under the mocks. */
export interface RecordOptions {
  /** Stack name seen by the program (`pulumi.getStack()`); default "test". */
  readonly stack?: string;
  /**
   * Config values. Bare keys get the project namespace (`replicas` → `mlscore:replicas`);
   * namespaced keys (`gcp:project`) are kept. Non-string values are JSON-encoded, as the CLI does.
   * Use {@link readStackConfig} to start from a real stack file. Default: no config at all.
   */
  readonly config?: Readonly<Record<string, unknown>>;
  /** Config keys to mark secret. */
  readonly secretKeys?: readonly string[];
  /** Run as `pulumi preview` instead of `pulumi up`; default false. */
  readonly preview?: boolean;
  /** Answers for invokes and resources the defaults do not cover. */
  readonly mocks?: MockOverrides;
}

/** A program: what `infra/index.ts` exports, or a closure that instantiates components. */
export type Program = () =>
  Promise<Record<string, unknown> | void> | Record<string, unknown> | void;

/** The declared resource graph of one run, with lookups tests need. */
export class RecordedRun {
  constructor(
    /** Every registration and read, in the order the mock monitor received them. */
    readonly resources: readonly RecordedResource[],
    /** Every invoke, in call order. */
    readonly invokes: readonly RecordedInvoke[],
    /** Stack outputs, fully resolved (secrets unwrapped). */
    readonly outputs: Readonly<Record<string, unknown>>,
    /** Top-level output keys whose value was a secret. */
    readonly secretOutputs: ReadonlySet<string>,
  ) {}

  /**
   * Every Kubernetes object the program declares (not reads), as the API server would receive it:
   * its inputs, with the name the provider autonames it with when the program gives none.
   * Helm releases and providers are not Kubernetes objects and are left out.
   */
  kubernetesObjects(): KubernetesObjectRecord[] {
    return this.resources
      .filter(
        (r) => r.type.startsWith("kubernetes:") && !r.type.startsWith("kubernetes:helm") && !r.read,
      )
      .map((r) => ({
        resource: r,
        object: {
          ...(unwrapSecrets(r.inputs) as Record<string, unknown>),
          metadata: r.state.metadata,
        } as KubernetesObjectRecord["object"],
      }));
  }

  /** Resources of one type token, in registration order. */
  ofType(type: string): RecordedResource[] {
    return this.resources.filter((r) => r.type === type);
  }

  /** The single resource with this type and name; throws naming what exists otherwise. */
  one(type: string, name: string): RecordedResource {
    const found = this.resources.filter((r) => r.type === type && r.name === name);
    if (found.length !== 1) {
      const names = this.ofType(type).map((r) => r.name);
      throw new Error(
        `expected exactly one ${type} named "${name}", found ${found.length}; ` +
          `names of that type: [${names.join(", ")}]`,
      );
    }
    return found[0];
  }

  /** The resource with this URN; throws when unknown. */
  byUrn(urn: string): RecordedResource {
    const found = this.resources.find((r) => r.urn === urn);
    if (!found) {
      throw new Error(`no recorded resource has urn ${urn}`);
    }
    return found;
  }

  /** Direct children of a resource (those whose parent is it). */
  childrenOf(resource: RecordedResource): RecordedResource[] {
    return this.resources.filter((r) => r.parent === resource.urn);
  }

  /**
   * The provider a resource will really use: its own explicit provider, or the nearest ancestor's
   * (children inherit the provider of their parent component).
   */
  effectiveProvider(resource: RecordedResource): RecordedResource | undefined {
    let current: RecordedResource | undefined = resource;
    while (current) {
      if (current.provider) {
        return this.byUrn(current.provider);
      }
      current = current.parent ? this.resources.find((r) => r.urn === current?.parent) : undefined;
    }
    return undefined;
  }

  /**
   * Whether `dependent` waits for `dependency`, directly or through a chain of dependencies.
   * A dependency on a component counts as a dependency on every resource under it (the SDK
   * expands it so), and a resource also waits for its ancestors' dependencies: a child cannot
   * register before its parent's URN resolves, which happens only once the parent's
   * dependencies are done.
   */
  waitsFor(dependent: RecordedResource, dependency: RecordedResource): boolean {
    const targets = new Set([dependency.urn, ...this.descendantsOf(dependency).map((r) => r.urn)]);
    const seen = new Set<string>();
    const queue = [dependent, ...this.ancestorsOf(dependent)].flatMap((r) => r.dependencies);
    while (queue.length > 0) {
      const urn = queue.shift() as string;
      if (targets.has(urn)) {
        return true;
      }
      if (seen.has(urn)) {
        continue;
      }
      seen.add(urn);
      const next = this.resources.find((r) => r.urn === urn);
      if (next) {
        queue.push(
          ...[next, ...this.ancestorsOf(next)].flatMap((r) => r.dependencies),
          ...this.descendantsOf(next).map((r) => r.urn),
        );
      }
    }
    return false;
  }

  /** The parent chain of a resource, nearest first. */
  ancestorsOf(resource: RecordedResource): RecordedResource[] {
    const out: RecordedResource[] = [];
    let parentUrn = resource.parent;
    while (parentUrn) {
      const parent = this.byUrn(parentUrn);
      out.push(parent);
      parentUrn = parent.parent;
    }
    return out;
  }

  /** Every resource below this one in the parent tree. */
  descendantsOf(resource: RecordedResource): RecordedResource[] {
    const out: RecordedResource[] = [];
    const queue = [resource.urn];
    while (queue.length > 0) {
      const parentUrn = queue.shift() as string;
      for (const child of this.resources.filter((r) => r.parent === parentUrn)) {
        out.push(child);
        queue.push(child.urn);
      }
    }
    return out;
  }
}

/**
 * Config a real stack sees: the defaults declared in Pulumi.yaml's `config:` block, overlaid by
 * Pulumi.<stack>.yaml, as the CLI merges them. Keys come back namespaced (`mlscore:replicas`).
 * Encrypted (`secure:`) values cannot be decrypted here and make this throw.
 */
export function readStackConfig(stack: string, root: string = REPO_ROOT): Record<string, string> {
  const project = readYamlObject(path.join(root, "Pulumi.yaml"));
  const merged: Record<string, string> = {};
  const declared = asObject(project.config ?? {}, "Pulumi.yaml config");
  for (const [key, declaration] of Object.entries(declared)) {
    const isSchema =
      typeof declaration === "object" && declaration !== null && !Array.isArray(declaration);
    const value = isSchema ? (declaration as Record<string, unknown>).default : declaration;
    if (value !== undefined) {
      merged[namespaced(key)] = encodeConfigValue(value);
    }
  }
  const stackFile = path.join(root, `Pulumi.${stack}.yaml`);
  if (existsSync(stackFile)) {
    const stackConfig = asObject(readYamlObject(stackFile).config ?? {}, `${stackFile} config`);
    for (const [key, value] of Object.entries(stackConfig)) {
      if (typeof value === "object" && value !== null && "secure" in value) {
        throw new Error(`${stackFile}: ${key} is encrypted; tests cannot decrypt it`);
      }
      merged[namespaced(key)] = encodeConfigValue(value);
    }
  }
  return merged;
}

let running = false;

/**
 * Runs a program under `pulumi.runtime.setMocks` as stack `options.stack` of project
 * {@link PROJECT}, and returns every resource and invoke the mocked engine saw plus the resolved
 * outputs. Runs must not overlap: the Pulumi runtime keeps one global state per module registry.
 */
export async function recordResources(
  program: Program,
  options: RecordOptions = {},
): Promise<RecordedRun> {
  if (running) {
    throw new Error("recordResources runs must not overlap; await the previous run first");
  }
  running = true;
  try {
    return await run(program, options);
  } finally {
    running = false;
  }
}

async function run(program: Program, options: RecordOptions): Promise<RecordedRun> {
  const stack = options.stack ?? "test";
  const config: Record<string, string> = {};
  for (const [key, value] of Object.entries(options.config ?? {})) {
    config[namespaced(key)] = encodeConfigValue(value);
  }
  pulumi.runtime.setAllConfig(config, (options.secretKeys ?? []).map(namespaced));

  const invokes: RecordedInvoke[] = [];
  const mocks: pulumi.runtime.Mocks = {
    call: (args) => {
      invokes.push({ token: args.token, inputs: args.inputs, provider: args.provider });
      return options.mocks?.call?.(args) ?? defaultCall(args);
    },
    newResource: (args) => options.mocks?.newResource?.(args) ?? defaultNewResource(args),
  };
  await pulumi.runtime.setMocks(mocks, PROJECT, stack, options.preview ?? false);
  const resources = interceptRegistrations();

  let returned: Record<string, unknown> = {};
  // A program that throws must not reject inside the stack: the stack's outputs would then
  // reject in promises nobody awaits and crash the test process. Hold the error until every
  // resource declared before it has landed, then rethrow it.
  let programError: { readonly error: unknown } | undefined;
  const resolved = await failOnRejectedInputs(async (watch) => {
    const outputs = await pulumi.runtime.runInPulumiStack(async () => {
      watch();
      try {
        returned = (await program()) ?? {};
      } catch (error) {
        programError = { error };
      }
      return returned;
    });
    await waitForPendingRegistrations();
    return outputs;
  });
  if (programError) {
    throw programError.error;
  }

  const secretOutputs = new Set<string>();
  for (const [key, value] of Object.entries(returned)) {
    if (pulumi.Output.isInstance(value) && (await pulumi.isSecret(value))) {
      secretOutputs.add(key);
    }
  }
  return new RecordedRun(resources, invokes, resolved ?? {}, secretOutputs);
}

/**
 * A resource whose inputs fail to resolve (a throwing `apply`, a rejected invoke) is never
 * registered, everything depending on it waits forever, and the error surfaces only as an
 * unhandled rejection, on which the Pulumi language host fails the program. Jest's sandbox does
 * not let a test listen for those, so watch every resource's inputs instead and fail the run on
 * the first one that rejects.
 */
async function failOnRejectedInputs<T>(work: (watch: () => void) => Promise<T>): Promise<T> {
  let fail: (reason: unknown) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => {
    fail = reject;
  });
  const watch = () =>
    pulumi.runtime.registerStackTransformation((args) => {
      watchInputs(args.props, fail);
      return undefined;
    });
  return Promise.race([work(watch), failed]);
}

function watchInputs(value: unknown, onError: (reason: unknown) => void): void {
  if (pulumi.Output.isInstance(value)) {
    // Output's promise() is internal but stable; it is the only way to observe a rejection.
    (value as unknown as { promise(): Promise<unknown> }).promise().catch(onError);
  } else if (value instanceof Promise) {
    value.catch(onError);
  } else if (Array.isArray(value)) {
    value.forEach((item) => watchInputs(item, onError));
  } else if (
    typeof value === "object" &&
    value !== null &&
    !pulumi.Resource.isInstance(value) &&
    !pulumi.asset.Asset.isInstance(value) &&
    !pulumi.asset.Archive.isInstance(value)
  ) {
    Object.values(value).forEach((item) => watchInputs(item, onError));
  }
}

/** A protobuf Struct as the runtime's deserializer takes it. */
type PropertyStruct = Parameters<typeof pulumi.runtime.deserializeProperties>[0];

/** The subset of the generated RegisterResourceRequest/ReadResourceRequest getters we read. */
interface RegistrationRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getProvider(): string;
  getDependenciesList(): string[];
  getCustom?(): boolean;
  getObject?(): PropertyStruct | undefined;
  getProperties?(): PropertyStruct | undefined;
  getId?(): string;
  getImportid?(): string;
  getCustomtimeouts?():
    { getCreate(): string; getUpdate(): string; getDelete(): string } | undefined;
  getDeletebeforereplace?(): boolean;
  getIgnorechangesList?(): string[];
  getReplaceonchangesList?(): string[];
  getProtect?(): boolean;
  getRetainondelete?(): boolean;
  getDeletedwith?(): string;
}

interface RegistrationResponse {
  getUrn(): string;
  getObject?(): PropertyStruct | undefined;
  getProperties?(): PropertyStruct | undefined;
}

type MonitorCallback = (err: unknown, response: RegistrationResponse | undefined) => void;
type MonitorMethod = (req: RegistrationRequest, callback: MonitorCallback) => Promise<void>;

/**
 * The mock monitor hands `newResource` only type, name and inputs; parents, providers,
 * dependencies and options are on the raw request, so wrap the monitor's two entry points.
 */
function interceptRegistrations(): RecordedResource[] {
  const monitor = pulumi.runtime.getMonitor() as unknown as Record<string, MonitorMethod>;
  const recorded: RecordedResource[] = [];
  for (const method of ["registerResource", "readResource"] as const) {
    const original = monitor[method].bind(monitor);
    monitor[method] = (req, callback) =>
      original(req, (err, response) => {
        if (!err && response) {
          recorded.push(toRecord(req, response, method === "readResource"));
        }
        callback(err, response);
      });
  }
  return recorded;
}

function toRecord(
  req: RegistrationRequest,
  response: RegistrationResponse,
  read: boolean,
): RecordedResource {
  const timeouts = req.getCustomtimeouts?.();
  const rawInputs = read ? req.getProperties?.() : req.getObject?.();
  const rawState = read ? response.getProperties?.() : response.getObject?.();
  const importId = read ? req.getId?.() : req.getImportid?.();
  return {
    type: req.getType(),
    name: req.getName(),
    urn: response.getUrn(),
    custom: read || (req.getCustom?.() ?? false),
    read,
    importId: importId || undefined,
    inputs: rawInputs
      ? (pulumi.runtime.deserializeProperties(rawInputs) as Record<string, unknown>)
      : {},
    state: rawState
      ? (pulumi.runtime.deserializeProperties(rawState) as Record<string, unknown>)
      : {},
    parent: req.getParent() || undefined,
    provider: providerUrn(req.getProvider()),
    dependencies: req.getDependenciesList(),
    customTimeouts:
      timeouts && (timeouts.getCreate() || timeouts.getUpdate() || timeouts.getDelete())
        ? {
            create: timeouts.getCreate(),
            update: timeouts.getUpdate(),
            delete: timeouts.getDelete(),
          }
        : undefined,
    deleteBeforeReplace: req.getDeletebeforereplace?.() ?? false,
    ignoreChanges: req.getIgnorechangesList?.() ?? [],
    replaceOnChanges: req.getReplaceonchangesList?.() ?? [],
    protect: req.getProtect?.() ?? false,
    retainOnDelete: req.getRetainondelete?.() ?? false,
    deletedWith: req.getDeletedwith?.() || undefined,
  };
}

/** A provider reference is `<urn>::<id>`; URNs contain `::` themselves, so cut at the last one. */
function providerUrn(reference: string): string | undefined {
  if (!reference) {
    return undefined;
  }
  const cut = reference.lastIndexOf("::");
  return cut > 0 ? reference.slice(0, cut) : reference;
}

/**
 * Resources whose outputs the program never awaited may still be registering when the stack's
 * outputs resolve; the runtime counts them until they land.
 */
async function waitForPendingRegistrations(): Promise<void> {
  const settings = pulumi.runtime as unknown as { waitForRPCs?: () => Promise<void> };
  if (!settings.waitForRPCs) {
    throw new Error("@pulumi/pulumi no longer exposes runtime.waitForRPCs; update the harness");
  }
  await settings.waitForRPCs();
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

function defaultCall(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
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

function defaultNewResource(
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
 * A value with Pulumi's secret wrappers replaced by what they wrap: what the provider sends the
 * API server (a Secret's `stringData` is always wrapped, by the Kubernetes SDK).
 */
export function unwrapSecrets(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(unwrapSecrets);
  }
  if (typeof value !== "object" || value === null) {
    return value;
  }
  const record = value as Record<string, unknown>;
  if (record[specialSigKey] === specialSecretSig) {
    return unwrapSecrets(record.value);
  }
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, unwrapSecrets(v)]));
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
      const imageName = String(inputs.imageName ?? name);
      const repository = imageName.replace(/:[^:/]+$/, "");
      return { imageName, repoDigest: `${repository}@sha256:${sha256(imageName)}` };
    }
    case "gcp:compute/network:Network":
      // Autonamed like the provider does: the logical name and a random suffix.
      return { name: `${name}-${shortHash(name).slice(0, 7)}` };
    case "gcp:container/cluster:Cluster":
      return {
        endpoint: "203.0.113.10",
        masterAuth: {
          clusterCaCertificate: Buffer.from("fake-cluster-ca").toString("base64"),
        },
        selfLink: `https://container.googleapis.com/v1/clusters/${name}`,
      };
    case "gcp:artifactregistry/repository:Repository": {
      const location = String(inputs.location ?? "us-central1");
      const project = String(inputs.project ?? "test-project");
      const repositoryId = String(inputs.repositoryId ?? name);
      return {
        name: repositoryId,
        registryUri: `${location}-docker.pkg.dev/${project}/${repositoryId}`,
      };
    }
    case "gcp:serviceaccount/account:Account": {
      const project = String(inputs.project ?? "test-project");
      const email = `${String(inputs.accountId ?? name)}@${project}.iam.gserviceaccount.com`;
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
      const releaseName = String(inputs.name ?? `${name}-${shortHash(name)}`);
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

function namespaced(key: string): string {
  return key.includes(":") ? key : `${PROJECT}:${key}`;
}

function encodeConfigValue(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function shortHash(text: string): string {
  return sha256(text).slice(0, 8);
}

function readYamlObject(file: string): Record<string, unknown> {
  return asObject(parseYaml(readFileSync(file, "utf8")) ?? {}, file);
}

function asObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`${what} must be a mapping`);
  }
  return value as Record<string, unknown>;
}
