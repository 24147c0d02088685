import { parse as parseYaml } from "yaml";
import { measureModel, readStoredText, type StoreSettings } from "../../service/src/model/stores";
import { MlflowClient, RegistryError, type ModelVersion } from "./mlflow-client";

export { RegistryError } from "./mlflow-client";

/** A registered model as modelUri names it: `models:/<name>@<alias>` or `models:/<name>/<version>`. */
export interface RegisteredModelRef {
  /** The `models:/...` URI itself. */
  readonly uri: string;
  readonly name: string;
  readonly alias?: string;
  readonly version?: string;
}

/** The registered model a `models:/` URI names; undefined for any other URI. */
export function parseRegisteredModelUri(uri: string): RegisteredModelRef | undefined {
  const match = /^models:\/([^/@\s]{1,256})(?:@([A-Za-z0-9_-]{1,255})|\/([1-9]\d{0,9}))$/.exec(uri);
  if (!match) return undefined;
  return { uri, name: match[1], alias: match[2], version: match[3] };
}

/** One version of a registered model, pinned: where its ONNX file is and what its bytes are. */
export interface ResolvedModel {
  readonly name: string;
  readonly version: string;
  /** The alias that pointed at the version, when modelUri named one. */
  readonly alias?: string;
  /** The run that logged it, when the registry knows. */
  readonly runId?: string;
  /** The ONNX file as the pods read it: `s3://`, `gs://` or `https://`. */
  readonly uri: string;
  readonly sha256: string;
  readonly bytes: number;
}

/** How to reach the registry and the artifact store, and the largest model the pods accept. */
export interface ResolveOptions {
  readonly trackingUri: string;
  readonly token?: string;
  /** The program's own access to the artifact store (S3's endpoint and keys). */
  readonly stores: StoreSettings;
  readonly maxBytes: number;
}

/** The MLmodel file is a few hundred bytes; anything near this is not one. */
const MLMODEL_MAX_BYTES = 1024 * 1024;

/**
 * Where the pods can read a version's files from. Stores they read directly stay as they are;
 * files the tracking server proxies (`mlflow-artifacts:`) are read through its artifact API over
 * HTTPS. A store the pods cannot read (the server's disk, DBFS, HDFS) is refused.
 */
function readableLocation(location: string, options: ResolveOptions): string {
  if (/^(s3|gs|https):\/\//.test(location)) return location.replace(/\/$/, "");
  const proxied = /^mlflow-artifacts:(?:\/\/[^/]*)?\/(.*)$/.exec(location);
  if (proxied) {
    if (!options.trackingUri.startsWith("https://") || options.token !== undefined) {
      throw new RegistryError(
        `its files are proxied by the tracking server (${location}), which the pods could only ` +
          `read over HTTPS without a token (mlflowTrackingUri is ${options.trackingUri}` +
          `${options.token === undefined ? "" : ", with a token"}); run the server with ` +
          "--artifacts-destination or --default-artifact-root s3://... or gs://... and " +
          "--no-serve-artifacts, so the pods read the store itself",
      );
    }
    return `${options.trackingUri}/api/2.0/mlflow-artifacts/artifacts/${proxied[1].replace(/\/$/, "")}`;
  }
  throw new RegistryError(
    `its files are at ${location}, which the pods cannot read; keep artifacts in s3://, gs:// or ` +
      "https:// (mlflow server --default-artifact-root or --artifacts-destination)",
  );
}

/** The ONNX file the `MLmodel` file of an onnx-flavor model names, relative to its folder. */
function onnxFileOf(mlmodel: string, version: ModelVersion): string {
  const parsed = parseYaml(mlmodel) as { flavors?: Record<string, { data?: unknown }> } | null;
  const flavors = parsed?.flavors ?? {};
  const data = flavors.onnx?.data;
  if (typeof data !== "string") {
    throw new RegistryError(
      `version ${version.version} has no ONNX file: its MLmodel lists the flavors ` +
        `${Object.keys(flavors).join(", ") || "(none)"}, not onnx; log it with ` +
        "mlflow.onnx.log_model, or point modelUri at a version that was",
    );
  }
  if (data.startsWith("/") || data.split("/").includes("..")) {
    throw new RegistryError(
      `version ${version.version}'s MLmodel names the ONNX file "${data}" outside its folder`,
    );
  }
  return data;
}

/**
 * Resolves a registered model through MLflow's REST API to one version, the ONNX file inside its
 * onnx-flavor model folder, and that file's SHA-256, read from the artifact store with the same
 * code the pods download it with. Throws a {@link RegistryError} (or the store's ModelLoadError)
 * that says what to fix.
 */
export async function resolveRegisteredModel(
  ref: RegisteredModelRef,
  options: ResolveOptions,
): Promise<ResolvedModel> {
  const client = new MlflowClient(options.trackingUri, options.token, ref.uri);
  const version =
    ref.alias === undefined
      ? await client.version(ref.name, ref.version as string)
      : await client.versionByAlias(ref.name, ref.alias);
  if (version.status !== undefined && version.status !== "READY") {
    throw new RegistryError(
      `version ${version.version} is ${version.status}, not READY; wait for its registration to finish or register it again`,
    );
  }
  const folder = readableLocation(
    await client.artifactLocation(ref.name, version.version),
    options,
  );
  const source = (uri: string, maxBytes: number) => ({
    uri,
    name: ref.name,
    version: version.version,
    maxBytes,
  });
  const mlmodel = await readStoredText(
    source(`${folder}/MLmodel`, MLMODEL_MAX_BYTES),
    options.stores,
  );
  const uri = `${folder}/${onnxFileOf(mlmodel, version)}`;
  const measured = await measureModel(source(uri, options.maxBytes), options.stores);
  return {
    name: ref.name,
    version: version.version,
    alias: ref.alias,
    runId: version.run_id || undefined,
    uri,
    sha256: measured.sha256,
    bytes: measured.bytes,
  };
}
