/** The canary's config keys: a second model beside the stable one, its weight and its gate. */
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { DEFAULT_MODEL_VERSION } from "../../service/src/config";
import { parseGoldenRequests } from "../../service/src/gate/golden";
import { carriesCredentials } from "../app/model-store";
import { gcsBucket } from "../gcp/model-reader";
import { PROJECT_DIR } from "../project-dir";
import { PROJECT, type ConfigReader } from "./reader";
import { checkReadable, type S3StoreSettings } from "./model";

/** The name and version a model answers as (v2 metadata, `model_info`, logs). */
export interface ServedModel {
  readonly name: string;
  readonly version: string;
}

/** The canary: its model, pinned as the stable one is, its share of traffic and its gate. */
export interface CanarySettings {
  readonly modelUri: string;
  /** Whether canaryModelUri must stay secret, by the rule modelUriSecret follows. */
  readonly modelUriSecret: boolean;
  /** Lowercase hex SHA-256 the canary's bytes must have; undefined: not verified. */
  readonly modelSha256?: string;
  /**
   * The name and version it answers as: canaryModelName or the stable model's name (clients
   * name the model in v2 and KServe paths), and a version that tells it from the stable one.
   */
  readonly servedModel: ServedModel;
  /** Percent of the requests without a variant header that it gets. */
  readonly weight: number;
  /** The golden requests file, relative to the project folder. */
  readonly goldenFile: string;
  /** Its text, checked by the gate's own parser. */
  readonly golden: string;
}

/** Reads a file of the project by its path relative to the project folder; throws when it cannot. */
export type ProjectFileReader = (relativePath: string) => string;

export function readFromProject(relativePath: string): string {
  return readFileSync(path.join(PROJECT_DIR, relativePath), "utf8");
}

/** A path inside the project folder: relative, without `..` segments. */
const PROJECT_PATH = /^(?!\/)(?!(.*\/)?\.\.(\/|$))[\w./-]{1,200}$/;
const GOLDEN_EXAMPLE = "service/models/iris.golden.json";

/** What {@link readCanary} checks the canary against. */
export interface CanaryContext {
  readonly target: string;
  readonly stableUri: string;
  readonly stableServed: ServedModel;
  readonly istioEnabled: boolean;
  readonly secretKeys: ReadonlySet<string>;
  readonly s3: S3StoreSettings;
  readonly readProjectFile: ProjectFileReader;
}

/**
 * The canary, when canaryModelUri is set: its model (read by the stable model's rules), its share
 * of traffic and its golden requests. The other canary keys wait for the next canary while
 * canaryModelUri is empty, so clearing it alone rolls back.
 */
export function readCanary(
  read: ConfigReader,
  model: { uri: string; name: string; version: string; sha256: string },
  context: CanaryContext,
): CanarySettings | undefined {
  const weight = read.integer("canaryWeight", 0, 100, 10);
  const goldenFile = read.text(
    "canaryGoldenRequests",
    "empty or a path inside the project folder, such as service/models/iris.golden.json",
    PROJECT_PATH,
    GOLDEN_EXAMPLE,
    true,
  );
  if (model.uri === "") {
    return undefined;
  }
  if (!context.istioEnabled) {
    read.problems.push(
      `${PROJECT}:canaryModelUri needs ${PROJECT}:istioEnabled true: Istio's route splits the ` +
        "traffic between the stable model and the canary, and without it no request could " +
        "reach the canary; set it with: pulumi config set istioEnabled true",
    );
  }
  // A registered model is promoted by moving its alias; a canary is promoted by config. Mixing
  // them would let the registry move one side of a split the gate checked.
  if (model.uri.startsWith("models:") || context.stableUri.startsWith("models:")) {
    read.fail(
      "canaryModelUri",
      "cannot be used with a registered model (models:/...) on either side: a canary is " +
        "promoted by config, a registered model by its alias; give both sides artifact URIs",
      "s3://my-bucket/model-v2.onnx",
    );
  }
  checkReadable(read, "canaryModelUri", model.uri, context.target, context.s3);
  const golden = readGolden(read, goldenFile, context.readProjectFile);
  const servedModel: ServedModel = {
    name: model.name || context.stableServed.name,
    version: model.version || DEFAULT_MODEL_VERSION,
  };
  if (
    servedModel.name === context.stableServed.name &&
    servedModel.version === context.stableServed.version
  ) {
    const next = /^\d+$/.test(servedModel.version) ? String(Number(servedModel.version) + 1) : "2";
    read.fail(
      "canaryModelVersion",
      `must differ from the stable model's version ("${servedModel.version}") while both ` +
        `answer as "${servedModel.name}": clients, metrics and the smoke test tell them apart by it`,
      next,
    );
  }
  const buckets = [gcsBucket(context.stableUri), gcsBucket(model.uri)];
  if (buckets[0] !== undefined && buckets[1] !== undefined && buckets[0] !== buckets[1]) {
    read.fail(
      "canaryModelUri",
      `is in bucket "${buckets[1]}" and the stable model in "${buckets[0]}": the pods' Google ` +
        "identity may read one bucket; put the canary beside the stable model",
      `gs://${buckets[0]}/model-v2.onnx`,
    );
  }
  return {
    modelUri: model.uri,
    modelUriSecret:
      context.secretKeys.has(`${PROJECT}:canaryModelUri`) || carriesCredentials(model.uri),
    modelSha256: model.sha256 || undefined,
    servedModel,
    weight,
    goldenFile,
    golden,
  };
}

/** The golden requests' text, checked by the gate's own parser; "" with a problem recorded. */
function readGolden(read: ConfigReader, goldenFile: string, readFile: ProjectFileReader): string {
  if (goldenFile === "") {
    read.fail(
      "canaryGoldenRequests",
      "is required with a canary: the gate checks the canary's answers to these requests " +
        "before it gets any traffic",
      GOLDEN_EXAMPLE,
    );
    return "";
  }
  if (!PROJECT_PATH.test(goldenFile)) {
    return "";
  }
  try {
    const golden = readFile(goldenFile);
    parseGoldenRequests(golden);
    return golden;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const problem = code ? `cannot be read (${code})` : (error as Error).message;
    read.fail("canaryGoldenRequests", `(${goldenFile}) ${problem}`, GOLDEN_EXAMPLE);
    return "";
  }
}
