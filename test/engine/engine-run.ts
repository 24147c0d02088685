import { execFile, spawn } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import {
  LocalWorkspace,
  PulumiCommand,
  type InlineProgramArgs,
  type Stack,
} from "@pulumi/pulumi/automation";
import program from "../../infra/index";

/** The repository root: Pulumi.yaml, infra/ and the policy pack. */
export const REPO_ROOT = path.resolve(__dirname, "..", "..");
export const POLICY_PACK = path.join(REPO_ROOT, "infra", "policy");

/**
 * The policy pack as this engine can start it. Given a folder (`--policy-pack infra/policy`),
 * Pulumi 3.274 starts a pack only through the Node.js language host's RunPlugin, which cannot be
 * built here (pkg/resource/plugin/analyzer_plugin.go). Given an executable, it starts that as the
 * analyzer plugin with the engine's address; this one runs infra/policy with @pulumi/pulumi's
 * run-policy-pack, as the language host would. The policies and their config are the real ones.
 */
export function policyPackLauncher(work: string): string {
  const launcher = path.join(work, "mlscore-policy-pack");
  writeFileSync(
    launcher,
    [
      "#!/bin/sh",
      `cd '${POLICY_PACK}' || exit 1`,
      `exec node "$(node -e "console.log(require.resolve('@pulumi/pulumi/cmd/run-policy-pack'))")" "$1" .`,
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  return launcher;
}

/** What the engine writes, line by line, goes to the test's log on stderr. */
export function log(text: string): void {
  process.stderr.write(text.endsWith("\n") ? text : `${text}\n`);
}

/**
 * Runs test/engine/toolchain.sh, which builds or reuses every binary, with its progress shown
 * live; resolves to the folder holding them.
 */
export function toolchain(): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [path.join(__dirname, "toolchain.sh")], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve(out.trim()) : reject(new Error(`toolchain.sh exited with ${code}`)),
    );
  });
}

/** The @pulumi/kubernetes version in node_modules: the provider plugin version it asks for. */
export function kubernetesSdkVersion(): string {
  const manifest = path.join(REPO_ROOT, "node_modules", "@pulumi", "kubernetes", "package.json");
  return (JSON.parse(readFileSync(manifest, "utf8")) as { version: string }).version;
}

/**
 * The engine's environment: its own PULUMI_HOME, state in a local folder, no update check, no
 * plugin download, and no plugin taken from PATH: the provider is the one installed in
 * PULUMI_HOME under the version the SDK asks for.
 */
export function engineEnvironment(
  work: string,
  kubeconfig: string | undefined,
): Record<string, string> {
  const state = path.join(work, "state");
  mkdirSync(state, { recursive: true });
  return {
    PULUMI_IGNORE_AMBIENT_PLUGINS: "true",
    PULUMI_HOME: path.join(work, "pulumi-home"),
    PULUMI_BACKEND_URL: `file://${state}`,
    PULUMI_CONFIG_PASSPHRASE: "mlscore-engine-test",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    ...(kubeconfig ? { KUBECONFIG: kubeconfig } : {}),
  };
}

/**
 * Runs `up` of `stackName` in a process of its own (test/engine/up-in-own-process.ts); resolves to
 * its exit code and output.
 */
export function upInOwnProcess(
  binDir: string,
  work: string,
  stackName: string,
  env: Record<string, string>,
  options: object,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", path.join(__dirname, "up-in-own-process.ts"), binDir, work, stackName],
      {
        cwd: REPO_ROOT,
        env: {
          ...process.env,
          MLSCORE_ENGINE_ENV: JSON.stringify(env),
          MLSCORE_ENGINE_UP_OPTIONS: JSON.stringify(options),
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let output = "";
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      log(chunk.toString().replace(/\n$/, ""));
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, output }));
  });
}

/** Runs the pulumi CLI itself, outside the Automation API; resolves to its stdout. */
export function pulumiCli(
  binDir: string,
  env: Record<string, string>,
  args: string[],
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      path.join(binDir, "pulumi"),
      args,
      { env: { ...process.env, ...env }, cwd: REPO_ROOT },
      (error, stdout, stderr) => {
        log(`$ pulumi ${args.join(" ")}\n${stdout}${stderr}`);
        return error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout);
      },
    );
  });
}

/**
 * A stack of this project (the repository's Pulumi.yaml, copied into `work` so the stack's
 * config file is written there and not into the checkout) whose program is infra/index.ts,
 * run in this process: the Node.js language host cannot be built here (see toolchain.sh).
 */
export async function inlineStack(
  stackName: string,
  binDir: string,
  work: string,
  env: Record<string, string>,
): Promise<Stack> {
  const projectDir = path.join(work, "project");
  mkdirSync(projectDir, { recursive: true });
  copyFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), path.join(projectDir, "Pulumi.yaml"));
  const args: InlineProgramArgs = { stackName, projectName: "mlscore", program };
  return LocalWorkspace.createOrSelectStack(args, {
    workDir: projectDir,
    pulumiHome: env.PULUMI_HOME,
    envVars: env,
    pulumiCommand: await PulumiCommand.get({ root: path.dirname(binDir) }),
  });
}
