/** Config as a real stack sees it: Pulumi.yaml's defaults under the stack file's values. */
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";

/** The Pulumi project name every recorded run uses, as declared in Pulumi.yaml. */
export const PROJECT = "mlscore";

/** The repository root, where Pulumi.yaml and the stack files live. */
export const REPO_ROOT = path.resolve(__dirname, "..", "..", "..");

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

/** A project key namespaced (`replicas` → `mlscore:replicas`); namespaced keys are kept. */
export function namespaced(key: string): string {
  return key.includes(":") ? key : `${PROJECT}:${key}`;
}

/** A config value as the CLI passes it: strings as they are, anything else as JSON. */
export function encodeConfigValue(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
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
