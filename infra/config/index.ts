/**
 * The stack's config, read once and validated: one reader per section (app, model and canary,
 * mesh, kind, gke, an existing cluster) and one check across them. Defaults live in Pulumi.yaml
 * alone; a key missing here means Pulumi.yaml was not merged, and is reported as such.
 */
import * as pulumi from "@pulumi/pulumi";
import * as runtimeConfig from "@pulumi/pulumi/runtime/config";
import {
  BUILTIN_MODEL_URI,
  DEFAULT_MODEL_VERSION,
  defaultModelName,
} from "../../service/src/config";
import { readApp, type AppSection } from "./app";
import {
  readCanary,
  readFromProject,
  type CanarySettings,
  type ProjectFileReader,
  type ServedModel,
} from "./canary";
import {
  clusterSettings,
  readExistingCluster,
  readGke,
  readKind,
  readTarget,
  type ClusterSettings,
  type Target,
} from "./cluster";
import { checkAcrossSections } from "./cross-section";
import { readMesh, type IstioSettings } from "./mesh";
import { CANARY_MODEL, readModelKeys, readModelSettings, type ModelSettings } from "./model";
import { CONFIG_KEYS, ConfigReader, PROJECT, type RawConfig } from "./reader";

export { CONFIG_KEYS, PROJECT, type ConfigKey, type RawConfig } from "./reader";
export type { ModelSettings, RegistrySettings, S3StoreSettings } from "./model";
export type { CanarySettings, ProjectFileReader, ServedModel } from "./canary";
export type { IstioSettings } from "./mesh";
export type {
  ClusterSettings,
  ExistingClusterSettings,
  GkeSettings,
  KindSettings,
} from "./cluster";

/** The application's settings, the same on every target. */
export interface AppSettings extends AppSection, ModelSettings {
  /** The name and version the stable model answers as (a registered model's come at `up`). */
  readonly servedModel: ServedModel;
  /** A new model beside the stable one, taking a share of traffic once it passed its gate. */
  readonly canary?: CanarySettings;
}

/** The whole, validated configuration of one stack. */
export interface StackConfig {
  readonly cluster: ClusterSettings;
  readonly app: AppSettings;
  readonly istio: IstioSettings;
}

/**
 * Config the program cannot run with. One line per problem, each naming the key and the command
 * that fixes it. A RunError, so the CLI shows the message without a stack trace.
 */
export class ConfigError extends pulumi.RunError {
  constructor(readonly problems: readonly string[]) {
    super(problems.join("\n"));
    this.name = "ConfigError";
  }
}

/** What the model section needs from the others. */
interface ModelContext {
  readonly target: Target;
  readonly istioEnabled: boolean;
  readonly secretKeys: ReadonlySet<string>;
  readonly readProjectFile: ProjectFileReader;
}

/** The stable model, the name and version it answers as, and the canary beside it. */
function readModels(read: ConfigReader, context: ModelContext) {
  const { target, secretKeys } = context;
  const canaryModel = readModelKeys(read, CANARY_MODEL);
  const model = readModelSettings(read, target, secretKeys, canaryModel.uri);
  const servedModel: ServedModel = {
    name: model.modelName ?? defaultModelName(model.modelUri ?? BUILTIN_MODEL_URI),
    version: model.modelVersion ?? DEFAULT_MODEL_VERSION,
  };
  const canary = readCanary(read, canaryModel, {
    ...context,
    stableUri: model.modelUri ?? "",
    stableServed: servedModel,
    s3: model.s3,
  });
  return { ...model, servedModel, canary };
}

/**
 * Validates raw config (namespaced keys, values as the CLI passes them: strings) into a
 * {@link StackConfig}. Throws one {@link ConfigError} listing every problem. Files the config
 * names (the canary's golden requests) are read with `readProjectFile`.
 */
export function parseConfig(
  raw: RawConfig,
  secretKeys: ReadonlySet<string> = new Set(),
  readProjectFile: ProjectFileReader = readFromProject,
): StackConfig {
  const read = new ConfigReader(raw);
  const target = readTarget(read, raw);
  const app = readApp(read);
  const mesh = readMesh(read);
  const models = readModels(read, {
    target,
    istioEnabled: mesh.enabled,
    secretKeys,
    readProjectFile,
  });
  const kind = readKind(read);
  const gke = readGke(read, raw);
  const existing = readExistingCluster(read);
  checkAcrossSections(read, { target, app, mesh, kind, gke, existing });
  if (read.problems.length > 0) {
    throw new ConfigError(read.problems);
  }
  return {
    cluster: clusterSettings(target, { kind, gke, existing }),
    app: { ...app, ...models },
    istio: mesh,
  };
}

/**
 * Whether the engine holds a config key as a secret (`pulumi config set --secret`). The SDK marks
 * this function internal and declares no type for it; the version is pinned and the infra tests
 * prove it answers for a secret modelUri.
 */
function isConfigSecret(key: string): boolean {
  const sdk = runtimeConfig as unknown as { isConfigSecret?: (key: string) => boolean };
  if (typeof sdk.isConfigSecret !== "function") {
    throw new Error(
      "@pulumi/pulumi no longer has runtime isConfigSecret; update infra/config/index.ts",
    );
  }
  return sdk.isConfigSecret(key);
}

/**
 * Reads the stack's config from the engine once and validates it. Call it at program run, never
 * at import time.
 */
export function loadConfig(): StackConfig {
  const project = new pulumi.Config(PROJECT);
  const gcp = new pulumi.Config("gcp");
  const raw: Record<string, string | undefined> = {
    "gcp:project": gcp.get("project"),
    "gcp:region": gcp.get("region"),
  };
  for (const key of CONFIG_KEYS) {
    raw[`${PROJECT}:${key}`] = project.get(key);
  }
  return parseConfig(raw, new Set(Object.keys(raw).filter(isConfigSecret)));
}
