import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { PROJECT_DIR } from "./project-dir";

/** The Dockerfile, relative to the build context. */
export const DOCKERFILE = "service/Dockerfile";

/**
 * What `.dockerignore` lets into the build context, plus the Dockerfile: the files whose
 * content decides the image, and so its tag. Directories are walked.
 */
export const BUILD_INPUTS = [
  "package.json",
  "package-lock.json",
  ".npmrc",
  "tsconfig.json",
  "service/package.json",
  "service/tsconfig.json",
  "service/src",
  "service/models",
  DOCKERFILE,
] as const;

/** Files under the inputs that `.dockerignore` keeps out again. */
const EXCLUDED = /^service\/src\/.*\.test\.ts$/;

/**
 * A tag derived from the content of every build input (paths and bytes), so an unchanged
 * service keeps its tag and digest and a changed one gets new ones. Never `latest`.
 */
export function contentTag(root: string = PROJECT_DIR): string {
  const hash = createHash("sha256");
  for (const file of buildInputFiles(root)) {
    hash
      .update(file)
      .update("\0")
      .update(readFileSync(path.join(root, file)))
      .update("\0");
  }
  return `src-${hash.digest("hex").slice(0, 20)}`;
}

/** The build input files under `root`, as sorted POSIX paths relative to it. */
export function buildInputFiles(root: string = PROJECT_DIR): string[] {
  const files: string[] = [];
  const visit = (relative: string): void => {
    const absolute = path.join(root, relative);
    if (!existsSync(absolute)) {
      return;
    }
    if (statSync(absolute).isDirectory()) {
      for (const entry of readdirSync(absolute)) {
        visit(`${relative}/${entry}`);
      }
    } else if (!EXCLUDED.test(relative)) {
      files.push(relative);
    }
  };
  BUILD_INPUTS.forEach(visit);
  return files.sort();
}

/** The checked-out commit, or "unknown" outside a git checkout (or without git). */
export function gitRevision(root: string = PROJECT_DIR): string {
  try {
    const revision = execFileSync("git", ["rev-parse", "HEAD"], {
      cwd: root,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
    return /^[0-9a-f]{40}$/.test(revision) ? revision : "unknown";
  } catch {
    return "unknown";
  }
}

/** Arguments of {@link ServiceImage}. */
export interface ServiceImageArgs {
  /** Image repository without a tag, e.g. `localhost:5001/mlscore-scoring`. Required. */
  readonly repository: pulumi.Input<string>;
  /** Build context, read at program run to compute the tag; default {@link PROJECT_DIR}. */
  readonly context?: string;
  /** Target platform, `linux/<arch>` of the nodes that run it; default "linux/amd64". */
  readonly platform?: pulumi.Input<string>;
  /** Registry to log in to before pushing; default none (the Kind registry needs no login). */
  readonly registryServer?: pulumi.Input<string>;
  /** User for {@link registryServer}; default none. */
  readonly registryUsername?: pulumi.Input<string>;
  /** Password or token for {@link registryServer}; default none. */
  readonly registryPassword?: pulumi.Input<string>;
}

/**
 * The scoring service's image: built from `service/Dockerfile` with the repository root as
 * context, tagged by the content of its inputs, pushed, and referenced by digest.
 */
export class ServiceImage extends pulumi.ComponentResource {
  /** The pushed image by digest, `<repository>@sha256:...`: what the Deployment runs. */
  readonly ref: pulumi.Output<string>;
  /** The content tag the image was pushed under. */
  readonly tag: string;
  /** `<repository>:<tag>`. */
  readonly imageName: pulumi.Output<string>;

  constructor(name: string, args: ServiceImageArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("mlscore:index:ServiceImage", name, {}, opts);

    const root = args.context ?? PROJECT_DIR;
    // Relative to the working directory, so the state does not record one machine's absolute
    // paths. Under the CLI that is the folder of Pulumi.yaml, which therefore sets no `main`: the
    // language host runs the program from `main` when it names a folder.
    const context = path.relative(process.cwd(), root) || ".";
    this.tag = contentTag(root);
    this.imageName = pulumi.interpolate`${args.repository}:${this.tag}`;

    const image = new docker.Image(
      `${name}-image`,
      {
        imageName: this.imageName,
        build: {
          context,
          dockerfile: path.join(context, DOCKERFILE),
          platform: args.platform ?? "linux/amd64",
        },
        registry:
          args.registryServer === undefined
            ? undefined
            : {
                server: args.registryServer,
                username: args.registryUsername,
                password: args.registryPassword,
              },
        skipPush: false,
      },
      { parent: this },
    );

    this.ref = image.repoDigest;
    this.registerOutputs({ ref: this.ref, tag: this.tag, imageName: this.imageName });
  }
}
