import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { CONTEXT, ControlPlane } from "./control-plane";
import {
  engineEnvironment,
  kubernetesSdkVersion,
  log,
  POLICY_PACK,
  policyPackLauncher,
  pulumiCli,
  toolchain,
} from "./engine-run";
import { KubectlClient, type KubeClient } from "./kube-api";

/** Never pulled: kwok runs no containers. Well formed and pinned, as the program requires. */
const FAKE_IMAGE = `registry.example.com/mlscore@sha256:${createHash("sha256").update("mlscore engine test").digest("hex")}`;

/** What every engine test file runs against. */
export interface Engine {
  /** The toolchain's binaries. */
  readonly binDir: string;
  /** A temporary folder: the control plane's data, the state backend, the project copy. */
  readonly work: string;
  /** The control plane this test started; undefined on a cluster the user already has. */
  readonly plane?: ControlPlane;
  readonly kube: KubeClient;
  readonly context: string;
  /** The image the stack deploys, by digest. */
  readonly image: string;
  /** The engine's environment (see engineEnvironment). */
  readonly env: Record<string, string>;
  /** `--policy-pack` (through the launcher) and the cluster stack's policy config. */
  readonly policy: { policyPacks: string[]; policyPackConfigs: string[] };
}

/**
 * Builds or reuses the toolchain, starts a control plane with three fake nodes (or takes the
 * cluster of MLSCORE_ENGINE_KUBECONTEXT, whose image MLSCORE_ENGINE_IMAGE is really pulled and
 * run), and installs the provider under the version the SDK asks for.
 */
export async function startEngine(): Promise<Engine> {
  const binDir = await toolchain();
  const work = mkdtempSync(path.join(tmpdir(), "mlscore-engine-"));
  log(`engine test: binaries in ${binDir}, work folder ${work}`);
  const external = process.env.MLSCORE_ENGINE_KUBECONTEXT;
  let engine: Omit<Engine, "policy">;
  if (external) {
    const image = process.env.MLSCORE_ENGINE_IMAGE ?? "";
    if (!image) {
      throw new Error(
        "MLSCORE_ENGINE_IMAGE (the service's image, by digest) is needed on a real cluster",
      );
    }
    engine = {
      binDir,
      work,
      kube: new KubectlClient(external),
      context: external,
      image,
      env: engineEnvironment(work, process.env.KUBECONFIG),
    };
  } else {
    const plane = await ControlPlane.start(binDir, path.join(work, "control-plane"), log);
    log(`nodes: ${(await plane.registerNodes(3)).join(", ")}`);
    engine = {
      binDir,
      work,
      plane,
      kube: plane.api,
      context: CONTEXT,
      image: FAKE_IMAGE,
      env: engineEnvironment(work, plane.kubeconfigPath),
    };
  }
  try {
    // The proxy serves an older provider than the SDK asks for: install it under the SDK's version.
    await pulumiCli(binDir, engine.env, [
      "plugin",
      "install",
      "resource",
      "kubernetes",
      kubernetesSdkVersion(),
      "--file",
      path.join(binDir, "pulumi-resource-kubernetes"),
    ]);
    await pulumiCli(binDir, engine.env, ["version"]);
  } catch (error) {
    await engine.plane?.stop();
    throw error;
  }
  return {
    ...engine,
    policy: {
      policyPacks: [policyPackLauncher(work)],
      policyPackConfigs: [path.join(POLICY_PACK, "config", "cluster.json")],
    },
  };
}

/** Stops the control plane (showing the log of any component that died early) and cleans up. */
export async function stopEngine(engine: Engine | undefined): Promise<void> {
  if (engine === undefined) {
    return;
  }
  for (const name of engine.plane?.exited() ?? []) {
    const text = readFileSync(path.join(engine.work, "control-plane", `${name}.log`), "utf8");
    log(`--- ${name} exited early; the end of its log:\n${text.slice(-4000)}`);
  }
  await engine.plane?.stop();
  rmSync(engine.work, { recursive: true, force: true });
}
