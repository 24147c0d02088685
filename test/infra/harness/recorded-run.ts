/**
 * The record of one run under the mocks: every resource with its parent, provider, dependencies
 * and options, every invoke, the outputs each component registered, and the stack's outputs; and
 * the lookups the tests make in it.
 */
import type * as pulumi from "@pulumi/pulumi";
import { specialSecretSig, specialSigKey } from "@pulumi/pulumi/runtime/rpc";

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
    private readonly components: {
      /** By component, the keys it passed to `registerOutputs`. */
      readonly registeredOutputs: ReadonlyMap<pulumi.Resource, readonly string[]>;
      /** Every resource object the program constructed, by `<type> <name>`. */
      readonly instances: ReadonlyMap<string, pulumi.Resource>;
    },
  ) {}

  /** The keys of the outputs a component registered; throws when it registered none. */
  registeredOutputs(resource: RecordedResource): readonly string[] {
    const keys = this.components.registeredOutputs.get(this.instanceOf(resource));
    if (keys === undefined) {
      throw new Error(`${resource.type} ${resource.name} registered no outputs`);
    }
    return keys;
  }

  /** The object the program constructed for a recorded resource. */
  instanceOf(resource: RecordedResource): pulumi.Resource {
    const instance = this.components.instances.get(`${resource.type} ${resource.name}`);
    if (instance === undefined) {
      throw new Error(`no instance of ${resource.type} ${resource.name} was constructed`);
    }
    return instance;
  }

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
