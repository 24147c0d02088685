/**
 * Runs a program under Pulumi's mocks and records what the engine would see (a {@link RecordedRun}).
 */
import * as pulumi from "@pulumi/pulumi";
import { defaultCall, defaultNewResource } from "./mocks";
import { RecordedRun, type RecordedInvoke, type RecordedResource } from "./recorded-run";
import type { MockOverrides } from "./mocks";
import { encodeConfigValue, namespaced, PROJECT } from "./stack-config";

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
  const instances = new Map<string, pulumi.Resource>();
  const registeredOutputs = new Map<pulumi.Resource, readonly string[]>();
  const restoreRegisterOutputs = interceptRegisterOutputs(registeredOutputs);

  let returned: Record<string, unknown> = {};
  // A program that throws must not reject inside the stack: the stack's outputs would then
  // reject in promises nobody awaits and crash the test process. Hold the error until every
  // resource declared before it has landed, then rethrow it.
  let programError: { readonly error: unknown } | undefined;
  const resolved = await failOnRejectedInputs(instances, async (watch) => {
    const outputs = await pulumi.runtime.runInPulumiStack(async () => {
      watch();
      try {
        returned = (await program()) ?? {};
      } catch (error) {
        programError = { error };
      } finally {
        restoreRegisterOutputs();
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
  return new RecordedRun(resources, invokes, resolved ?? {}, secretOutputs, {
    registeredOutputs,
    instances,
  });
}

/**
 * A resource whose inputs fail to resolve (a throwing `apply`, a rejected invoke) is never
 * registered, everything depending on it waits forever, and the error surfaces only as an
 * unhandled rejection, on which the Pulumi language host fails the program. Jest's sandbox does
 * not let a test listen for those, so watch every resource's inputs instead and fail the run on
 * the first one that rejects.
 */
async function failOnRejectedInputs<T>(
  instances: Map<string, pulumi.Resource>,
  work: (watch: () => void) => Promise<T>,
): Promise<T> {
  let fail: (reason: unknown) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => {
    fail = reject;
  });
  const watch = () =>
    pulumi.runtime.registerStackTransformation((args) => {
      // Kept so tests can hold a component's public fields to what it registered.
      instances.set(`${args.type} ${args.name}`, args.resource);
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

/**
 * Records the keys each component passes to `registerOutputs`, undefined values included (the
 * engine never sees those), until the returned function restores the SDK's method. Only the first
 * call counts, as in the SDK, which calls it again (with nothing) once the component is built.
 */
function interceptRegisterOutputs(
  registeredOutputs: Map<pulumi.Resource, readonly string[]>,
): () => void {
  const prototype = pulumi.ComponentResource.prototype as unknown as {
    registerOutputs(this: pulumi.ComponentResource, outputs?: unknown): void;
  };
  // Put back as it was, and called with .call(this): never separated from its object.
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const original = prototype.registerOutputs;
  prototype.registerOutputs = function (this: pulumi.ComponentResource, outputs?: unknown) {
    if (!registeredOutputs.has(this)) {
      const keys = typeof outputs === "object" && outputs !== null ? Object.keys(outputs) : [];
      registeredOutputs.set(this, keys);
    }
    original.call(this, outputs);
  };
  return () => {
    prototype.registerOutputs = original;
  };
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
    inputs: rawInputs ? pulumi.runtime.deserializeProperties(rawInputs) : {},
    state: rawState ? pulumi.runtime.deserializeProperties(rawState) : {},
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
