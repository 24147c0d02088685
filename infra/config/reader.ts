/** Project config keys and the reader that validates them, collecting every problem. */

/** The project name from Pulumi.yaml; project config keys are namespaced with it. */
export const PROJECT = "mlscore";

/**
 * Every project config key. Each is declared in Pulumi.yaml's `config:` block with its type and
 * default (only `target` has no default, so the CLI makes every stack set it).
 */
export const CONFIG_KEYS = [
  "target",
  "namespace",
  "replicas",
  "minReplicas",
  "maxReplicas",
  "targetCpuUtilization",
  "cpuRequest",
  "cpuLimit",
  "memoryRequest",
  "memoryLimit",
  "modelUri",
  "modelName",
  "modelVersion",
  "modelSha256",
  "modelMaxSize",
  "mlflowTrackingUri",
  "mlflowTrackingToken",
  "s3Endpoint",
  "s3Region",
  "s3AccessKeyId",
  "s3SecretAccessKey",
  "canaryModelUri",
  "canaryModelName",
  "canaryModelVersion",
  "canaryModelSha256",
  "canaryWeight",
  "canaryGoldenRequests",
  "istioEnabled",
  "istioVersion",
  "istioInstall",
  "istioGatewayNamespace",
  "metallbVersion",
  "metallbAddressRange",
  "metricsServerVersion",
  "loadBalancerSourceRanges",
  "tlsSecretName",
  "monitoringNamespace",
  "kindClusterName",
  "gcpProject",
  "gcpRegion",
  "gcpZone",
  "nodeCount",
  "minNodes",
  "maxNodes",
  "machineType",
  "kubeContext",
  "image",
] as const;

/** A project config key, without its `mlscore:` namespace. */
export type ConfigKey = (typeof CONFIG_KEYS)[number];

/** A Kubernetes name (a namespace, a Kind cluster): a lowercase DNS label. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** A chart or release version, `major.minor.patch`. */
export const RELEASE_VERSION = /^\d+\.\d+\.\d+$/;

/** Raw config as the engine hands it over: namespaced keys (`mlscore:replicas`, `gcp:project`). */
export type RawConfig = Readonly<Record<string, string | undefined>>;

/** Reads project keys, collecting every problem instead of stopping at the first. */
export class ConfigReader {
  readonly problems: string[] = [];
  /** Keys already reported: a check that compares them would compare a stand-in value. */
  private readonly failed = new Set<ConfigKey>();

  constructor(private readonly raw: RawConfig) {}

  /** The raw value, or undefined (with a problem recorded) when the key is not set at all. */
  value(key: ConfigKey, example: string): string | undefined {
    const value = this.raw[`${PROJECT}:${key}`];
    if (value === undefined) {
      this.fail(key, "is not set (Pulumi.yaml declares its default)", example);
    }
    return value;
  }

  /** Whether `key` is already reported: its value is then only a stand-in. */
  reported(key: ConfigKey): boolean {
    return this.failed.has(key);
  }

  /** A key that is set where it does not apply: the fix is to remove it. */
  remove(key: ConfigKey, problem: string): void {
    this.problems.push(`${PROJECT}:${key} ${problem}; remove it with: pulumi config rm ${key}`);
  }

  fail(key: ConfigKey, problem: string, example: string): void {
    this.failed.add(key);
    this.problems.push(
      `${PROJECT}:${key} ${problem}; set it with: pulumi config set ${key} ${example}`,
    );
  }

  /** A string that must match `pattern`; empty is allowed only when `optional`. */
  text(key: ConfigKey, what: string, pattern: RegExp, example: string, optional = false): string {
    const value = this.value(key, example);
    if (value === undefined || (optional && value === "")) {
      return "";
    }
    if (!pattern.test(value)) {
      this.fail(key, `must be ${what} (got "${value}")`, example);
    }
    return value;
  }

  integer(key: ConfigKey, min: number, max: number, example: number): number {
    const value = this.value(key, String(example));
    if (value === undefined) {
      return example;
    }
    const parsed = Number(value);
    if (!/^\d+$/.test(value) || parsed < min || parsed > max) {
      this.fail(
        key,
        `must be a whole number from ${min} to ${max} (got "${value}")`,
        String(example),
      );
      return example;
    }
    return parsed;
  }

  boolean(key: ConfigKey, example: boolean): boolean {
    const value = this.value(key, String(example));
    if (value === "true" || value === "false") {
      return value === "true";
    }
    if (value !== undefined) {
      this.fail(key, `must be true or false (got "${value}")`, String(example));
    }
    return example;
  }

  /** `low` <= `middle` <= `high`, each pair as {@link ordered} checks it; the fix moves low or high. */
  between(
    low: { key: ConfigKey; value: number },
    middle: { key: ConfigKey; value: number },
    high: { key: ConfigKey; value: number },
  ): void {
    this.ordered(low, middle, low.key);
    this.ordered(middle, high, high.key);
  }

  /**
   * `small` must not exceed `large`; the fix raises or lowers `fixKey` to the other's value.
   * Skipped when either key is already reported, whose value here is only a stand-in.
   */
  ordered(
    small: { key: ConfigKey; value: number; shown?: string },
    large: { key: ConfigKey; value: number; shown?: string },
    fixKey: ConfigKey,
  ): void {
    if (this.failed.has(small.key) || this.failed.has(large.key)) {
      return;
    }
    if (small.value > large.value) {
      const smallShown = small.shown ?? String(small.value);
      const largeShown = large.shown ?? String(large.value);
      this.problems.push(
        `${PROJECT}:${small.key} (${smallShown}) must not exceed ${PROJECT}:${large.key} (${largeShown}); ` +
          `set it with: pulumi config set ${fixKey} ${fixKey === small.key ? largeShown : smallShown}`,
      );
    }
  }
}
