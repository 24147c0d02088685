import type { StoreSettings } from "../service/src/model/stores";
import { ConfigError, PROJECT, type AppSettings, type ClusterSettings } from "./config";
import { unreadableStore } from "./config/model";
import { resolveRegisteredModel, type ResolvedModel } from "./registry/registered-model";

/** The model the pods load, with everything that pins it. */
export interface PinnedModel {
  /** Undefined: the image's built-in iris model. */
  readonly uri?: string;
  readonly uriSecret: boolean;
  readonly name?: string;
  readonly version?: string;
  readonly sha256?: string;
  /** The registry's answer, when modelUri named a registered model. */
  readonly registered?: ResolvedModel;
}

/** A model name the service accepts (its MODEL_NAME). */
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** How the program itself reads the artifact store: the stack's S3 keys, or the SDK's own chain. */
function programStores(settings: AppSettings): StoreSettings {
  const { region, endpoint, accessKeyId, secretAccessKey } = settings.s3;
  const keys =
    accessKeyId === undefined || secretAccessKey === undefined
      ? undefined
      : async () => ({ accessKeyId, secretAccessKey });
  return { s3: { region, endpoint, credentials: keys } };
}

/**
 * The model as configured, or, for a `models:/` URI, the one version the registry resolves it to
 * now, with its artifact URI, version and digest: so a new registry version is a change of the
 * Deployment's inputs that `pulumi preview` shows, and nothing changes while the registry does
 * not. Call it at program run, never at import: it asks the registry and reads the model.
 */
export async function pinModel(
  settings: AppSettings,
  target: ClusterSettings["target"],
): Promise<PinnedModel> {
  const ref = settings.registeredModel;
  if (ref === undefined || settings.registry === undefined) {
    return {
      uri: settings.modelUri,
      uriSecret: settings.modelUriSecret,
      name: settings.modelName,
      version: settings.modelVersion,
      sha256: settings.modelSha256,
    };
  }
  const where = `${PROJECT}:modelUri ${ref.uri}`;
  let resolved: ResolvedModel;
  try {
    resolved = await resolveRegisteredModel(ref, {
      trackingUri: settings.registry.trackingUri,
      token: settings.registry.token,
      stores: programStores(settings),
      maxBytes: settings.modelMaxBytes,
    });
  } catch (error) {
    throw new ConfigError([`${where} cannot be resolved: ${(error as Error).message}`]);
  }
  const problems: string[] = [];
  const unreadable = unreadableStore(resolved.uri, target, settings.s3);
  if (unreadable !== undefined) {
    problems.push(
      `${where} is version ${resolved.version} at ${resolved.uri}, but ${PROJECT}:` +
        `${unreadable.key} ${unreadable.problem}; set it with: pulumi config set ${unreadable.key} ${unreadable.example}`,
    );
  }
  const name = settings.modelName ?? resolved.name;
  if (!MODEL_NAME.test(name)) {
    problems.push(
      `${where}: the registered name "${resolved.name}" cannot be served as a model name ` +
        '(1-64 letters, digits, "_", "." or "-"); set one with: pulumi config set modelName iris',
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    uri: resolved.uri,
    uriSecret: false,
    name,
    version: resolved.version,
    sha256: resolved.sha256,
    registered: resolved,
  };
}
