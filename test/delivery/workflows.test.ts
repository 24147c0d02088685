import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";
import { REPO_ROOT } from "../infra/harness/stack-config";

const WORKFLOW_DIR = path.join(REPO_ROOT, ".github", "workflows");
const TSX = path.join(REPO_ROOT, "node_modules", ".bin", "tsx");
const VALIDATOR = path.join(__dirname, "support", "validate-workflows.mjs");

/** The repository secrets the README lists; the workflows must reference exactly these. */
const README_SECRETS = ["PULUMI_ACCESS_TOKEN"];
/** The repository variables the README lists; the workflows must reference exactly these. */
const README_VARIABLES = ["GCP_PROJECT", "GCP_SERVICE_ACCOUNT", "GCP_WORKLOAD_IDENTITY_PROVIDER"];

/** GitHub's own per-run token: not a repository secret anyone sets. */
const BUILT_IN_SECRETS = ["GITHUB_TOKEN"];

interface Step {
  readonly id?: string;
  readonly name?: string;
  readonly uses?: string;
  readonly run?: string;
  readonly if?: string;
  readonly with?: Record<string, unknown>;
  readonly env?: Record<string, string>;
}
interface Job {
  readonly permissions?: Record<string, string>;
  readonly needs?: string[];
  readonly if?: string;
  readonly steps: Step[];
}
interface Workflow {
  readonly on: Record<string, unknown>;
  readonly permissions?: Record<string, string>;
  readonly concurrency?: { group: string; "cancel-in-progress": boolean };
  readonly jobs: Record<string, Job>;
}

function validate(files: string[]): Record<string, string[]> {
  return JSON.parse(
    execFileSync(TSX, [VALIDATOR, ...files], { encoding: "utf8", cwd: REPO_ROOT }),
  ) as Record<string, string[]>;
}

function text(name: string): string {
  return readFileSync(path.join(WORKFLOW_DIR, name), "utf8");
}

function workflow(name: string): Workflow {
  return parseYaml(text(name)) as Workflow;
}

function steps(w: Workflow): Step[] {
  return Object.values(w.jobs).flatMap((job) => job.steps);
}

function pulumiSteps(w: Workflow): Step[] {
  return steps(w).filter((s) => s.uses?.startsWith("pulumi/actions@"));
}

const FILES = ["deploy.yml", "destroy.yml", "pull-request.yml", "registry.yml"];

describe("workflow files", () => {
  it("are exactly the delivery workflows and the registry drift check", () => {
    expect(readdirSync(WORKFLOW_DIR).sort()).toEqual(FILES);
  });

  it("parse without errors in GitHub's workflow parser (schema, keys, expressions)", () => {
    const report = validate(FILES.map((f) => path.join(WORKFLOW_DIR, f)));
    expect(report).toEqual(Object.fromEntries(FILES.map((f) => [path.join(WORKFLOW_DIR, f), []])));
  });

  it("fail the validator on a typo'd key, an unknown key and a broken expression", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "workflows-"));
    try {
      const broken = path.join(dir, "broken.yml");
      writeFileSync(
        broken,
        text("deploy.yml")
          .replace("branches: [main]", "branchez: [main]")
          .replace("      - run: npm ci", "      - run: npm ci\n        timeout: 5")
          .replace("${{ secrets.PULUMI_ACCESS_TOKEN }}", "${{ secrets.PULUMI_ACCESS_TOKEN && }}"),
      );
      const errors = validate([broken])[broken];
      expect(errors).toEqual([
        expect.stringContaining("Unexpected value 'branchez'"),
        expect.stringContaining("Unexpected value 'timeout'"),
        expect.stringContaining("Unexpected end of expression: '&&'"),
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("triggers, permissions and concurrency", () => {
  it("previews on pull requests to main, deploys on pushes to main, destroys only by hand", () => {
    expect(workflow("pull-request.yml").on).toEqual({ pull_request: { branches: ["main"] } });
    // By hand too: a promotion in the registry (a moved alias) comes with no commit.
    expect(workflow("deploy.yml").on).toEqual({
      push: { branches: ["main"] },
      workflow_dispatch: null,
    });
    expect(workflow("registry.yml").on).toEqual({
      schedule: [{ cron: "17 6 * * *" }],
      workflow_dispatch: null,
    });
    const destroy = workflow("destroy.yml").on as {
      workflow_dispatch: { inputs: Record<string, { type: string; options?: string[] }> };
    };
    expect(Object.keys(destroy)).toEqual(["workflow_dispatch"]);
    // Only stacks whose cluster a runner reaches: dev's Kind cluster is on a laptop, and the
    // Kubernetes provider cannot delete a Helm release on an unreachable cluster
    // (pulumi/pulumi-kubernetes#2675), whatever PULUMI_K8S_DELETE_UNREACHABLE says.
    expect(destroy.workflow_dispatch.inputs.stack).toMatchObject({
      type: "choice",
      options: ["gke"],
    });
    expect(text("destroy.yml")).not.toContain("PULUMI_K8S_DELETE_UNREACHABLE");
    const stackFiles = readdirSync(REPO_ROOT).filter((f) => /^Pulumi\.[^.]+\.yaml$/.test(f));
    expect(stackFiles).toContain("Pulumi.gke.yaml");
  });

  it("destroys only when the confirmation repeats the stack name", () => {
    expect(workflow("destroy.yml").jobs.destroy.if).toBe("inputs.confirm == inputs.stack");
  });

  it.each(FILES)("%s grants only contents: read at the top and widens per job", (file) => {
    const w = workflow(file);
    expect(w.permissions).toEqual({ contents: "read" });
    const allowed: Record<string, string[]> = {
      contents: ["read"],
      "id-token": ["write"],
      "pull-requests": ["write"],
    };
    for (const job of Object.values(w.jobs)) {
      for (const [scope, level] of Object.entries(job.permissions ?? {})) {
        expect(allowed[scope]).toContain(level);
      }
    }
    // Only the preview job comments on pull requests.
    const commenting = Object.entries(w.jobs).filter(
      ([, job]) => job.permissions?.["pull-requests"],
    );
    expect(commenting.map(([name]) => name)).toEqual(
      file === "pull-request.yml" ? ["preview"] : [],
    );
  });

  it("gives id-token: write to exactly the jobs that authenticate to Google Cloud", () => {
    for (const file of FILES) {
      for (const job of Object.values(workflow(file).jobs)) {
        const authenticates = job.steps.some((s) =>
          s.uses?.startsWith("google-github-actions/auth@"),
        );
        expect(job.permissions?.["id-token"] === "write").toBe(authenticates);
      }
    }
  });

  it("runs one deploy or destroy per stack at a time and never cancels one", () => {
    expect(workflow("deploy.yml").concurrency).toEqual({
      group: "pulumi-gke",
      "cancel-in-progress": false,
    });
    // The same group name as deploy's for the same stack, so a destroy queues behind a deploy.
    expect(workflow("destroy.yml").concurrency).toEqual({
      group: "pulumi-${{ inputs.stack }}",
      "cancel-in-progress": false,
    });
    expect(workflow("pull-request.yml").concurrency?.group).not.toMatch(/^pulumi-/);
    // Outside the deploy group: a queued preview must never replace a queued deploy.
    expect(workflow("registry.yml").concurrency).toEqual({
      group: "registry-drift",
      "cancel-in-progress": true,
    });
  });
});

describe("steps", () => {
  it("pins every action to a major version tag of a known publisher", () => {
    const uses = FILES.flatMap((f) => steps(workflow(f)).flatMap((s) => s.uses ?? []));
    expect(uses.length).toBeGreaterThan(0);
    for (const ref of uses) {
      expect(ref).toMatch(
        /^(actions\/checkout|actions\/setup-node|google-github-actions\/auth|google-github-actions\/setup-gcloud|pulumi\/actions)@v\d+$/,
      );
    }
  });

  it("installs with npm ci and runs npm run check before any preview", () => {
    const pr = workflow("pull-request.yml");
    const runs = pr.jobs.check.steps.map((s) => s.run).filter(Boolean);
    expect(runs).toEqual(["npm ci", "npm run check"]);
    expect(pr.jobs.preview.needs).toEqual(["check", "stacks"]);
  });

  it("previews with --diff, comments on the PR and applies the stack's policy config", () => {
    const [preview] = pulumiSteps(workflow("pull-request.yml"));
    expect(preview.with).toMatchObject({
      command: "preview",
      "stack-name": "${{ env.STACK }}",
      upsert: true,
      diff: true,
      "comment-on-pr": true,
      policyPacks: "infra/policy",
      policyPackConfigs: "infra/policy/config/${{ matrix.stack }}.json",
    });
  });

  it("previews dev as a throwaway stack with dev's config, removed even when the preview fails", () => {
    const job = workflow("pull-request.yml").jobs.preview as Job & { env: Record<string, string> };
    expect(job.env.STACK).toBe(
      "${{ matrix.stack == 'dev' && format('dev-pr-{0}', github.event.pull_request.number) || matrix.stack }}",
    );
    const names = job.steps.map((step) => step.name ?? step.uses ?? step.run);
    const create = job.steps.find((step) => step.run?.includes("infra/kind/up.sh"));
    expect(create?.if).toBe("matrix.stack == 'dev'");
    expect(create?.run).toContain('cp Pulumi.dev.yaml "Pulumi.$STACK.yaml"');
    const remove = job.steps.find((step) => step.run?.includes("pulumi stack rm"));
    expect(remove).toMatchObject({
      if: "always() && matrix.stack == 'dev'",
      run: 'pulumi stack rm --yes --stack "$STACK"',
      env: { PULUMI_ACCESS_TOKEN: "${{ secrets.PULUMI_ACCESS_TOKEN }}" },
    });
    const preview = job.steps.findIndex((step) => step.uses?.startsWith("pulumi/actions@"));
    expect(job.steps.indexOf(create as Step)).toBeLessThan(preview);
    expect(job.steps.indexOf(remove as Step)).toBeGreaterThan(preview);
    expect(names.length).toBe(new Set(names).size);
  });

  it("installs gke-gcloud-auth-plugin before every Pulumi step that reads the gke cluster", () => {
    const jobs: Array<[string, Job, string | undefined]> = [
      ["pull-request.yml", workflow("pull-request.yml").jobs.preview, "matrix.stack == 'gke'"],
      ["deploy.yml", workflow("deploy.yml").jobs.deploy, undefined],
      ["destroy.yml", workflow("destroy.yml").jobs.destroy, undefined],
      ["registry.yml", workflow("registry.yml").jobs.preview, undefined],
    ];
    for (const [file, job, condition] of jobs) {
      const plugin = job.steps.findIndex(
        (step) =>
          step.uses?.startsWith("google-github-actions/setup-gcloud@") &&
          String(step.with?.install_components)
            .split(/[\s,]+/)
            .includes("gke-gcloud-auth-plugin"),
      );
      const pulumiStep = job.steps.findIndex((step) => step.uses?.startsWith("pulumi/actions@"));
      expect([file, plugin >= 0 && plugin < pulumiStep]).toEqual([file, true]);
      expect([file, job.steps[plugin].if]).toEqual([file, condition]);
    }
  });

  it("creates a missing stack where that is safe: the gke deploy and the previews, never destroy", () => {
    expect(pulumiSteps(workflow("deploy.yml"))[0].with?.upsert).toBe(true);
    expect(pulumiSteps(workflow("pull-request.yml"))[0].with?.upsert).toBe(true);
    expect(pulumiSteps(workflow("destroy.yml"))[0].with).not.toHaveProperty("upsert");
    // A drift check of a stack that was never deployed has nothing to compare with.
    expect(pulumiSteps(workflow("registry.yml"))[0].with).not.toHaveProperty("upsert");
  });

  it("previews gke against the registry and fails when the stack would change", () => {
    const [preview] = pulumiSteps(workflow("registry.yml"));
    expect(preview.with).toEqual({
      command: "preview",
      "stack-name": "gke",
      diff: true,
      "expect-no-changes": true,
      "comment-on-summary": true,
      policyPacks: "infra/policy",
      policyPackConfigs: "infra/policy/config/gke.json",
      "config-map": pulumiSteps(workflow("deploy.yml"))[0].with?.["config-map"],
    });
    expect(preview).not.toHaveProperty("continue-on-error");
  });

  it("deploys gke with the policy pack, then smoke-tests the stack's endpoint", () => {
    const deploy = workflow("deploy.yml").jobs.deploy.steps;
    const up = deploy.findIndex((s) => s.uses?.startsWith("pulumi/actions@"));
    expect(deploy[up].with).toMatchObject({
      command: "up",
      "stack-name": "gke",
      policyPacks: "infra/policy",
      policyPackConfigs: "infra/policy/config/gke.json",
    });
    const smoke = deploy[up + 1];
    expect(smoke.run).toMatch(/^npm run smoke -- --stack gke\b/);
    // No continue-on-error or `|| true`: a failed smoke test fails the run.
    expect(smoke).not.toHaveProperty("continue-on-error");
    expect(smoke.run).not.toMatch(/\|\|/);
  });

  it("runs only npm scripts that package.json defines", () => {
    const scripts = Object.keys(
      (
        JSON.parse(readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as {
          scripts: object;
        }
      ).scripts,
    );
    const used = FILES.flatMap((f) =>
      steps(workflow(f)).flatMap((s) =>
        [...(s.run ?? "").matchAll(/npm run (\S+)/g)].map((m) => m[1]),
      ),
    );
    expect(used).toContain("smoke");
    expect(scripts).toEqual(expect.arrayContaining(used));
  });

  it("uses policy config files that exist", () => {
    for (const stack of ["dev", "gke"]) {
      expect(() =>
        readFileSync(path.join(REPO_ROOT, "infra", "policy", "config", `${stack}.json`)),
      ).not.toThrow();
    }
  });
});

describe("credentials", () => {
  const all = FILES.map(text).join("\n");

  it("references no long-lived key: workload identity federation only", () => {
    expect(all).not.toMatch(
      /credentials_json|GOOGLE_APPLICATION_CREDENTIALS|_KEY\b|private[_-]key/i,
    );
    for (const file of FILES) {
      for (const step of steps(workflow(file)).filter((s) =>
        s.uses?.startsWith("google-github-actions/auth@"),
      )) {
        expect(step.with).toEqual({
          workload_identity_provider: "${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}",
          service_account: "${{ vars.GCP_SERVICE_ACCOUNT }}",
        });
      }
    }
  });

  it("references exactly the secrets and variables the README lists", () => {
    const names = (context: string) =>
      [
        ...new Set(
          [...all.matchAll(new RegExp(`\\b${context}\\.([A-Za-z0-9_]+)`, "g"))].map((m) => m[1]),
        ),
      ].sort();
    expect(names("secrets").filter((n) => !BUILT_IN_SECRETS.includes(n))).toEqual(README_SECRETS);
    expect(names("vars")).toEqual(README_VARIABLES);
  });

  it("hands the Pulumi token to every step that talks to Pulumi Cloud", () => {
    for (const file of FILES) {
      for (const step of steps(workflow(file))) {
        const talksToPulumi =
          step.uses?.startsWith("pulumi/actions@") || /npm run smoke/.test(step.run ?? "");
        if (talksToPulumi) {
          expect(step.env?.PULUMI_ACCESS_TOKEN).toBe("${{ secrets.PULUMI_ACCESS_TOKEN }}");
        }
      }
    }
  });
});

describe("which stacks a pull request previews", () => {
  /** Runs the workflow's own script with `git diff` answering `changed`; returns its output. */
  function touchedStacks(changed: string[]): string {
    const script = workflow("pull-request.yml").jobs.stacks.steps.find(
      (s) => s.id === "touched",
    )?.run;
    expect(script).toBeDefined();
    const dir = mkdtempSync(path.join(tmpdir(), "stacks-"));
    try {
      const git = path.join(dir, "git");
      writeFileSync(git, `#!/bin/sh\nprintf '%s\\n' ${changed.map((f) => `'${f}'`).join(" ")}\n`);
      chmodSync(git, 0o755);
      const output = path.join(dir, "output");
      writeFileSync(output, "");
      execFileSync("bash", ["-c", script as string], {
        env: {
          PATH: `${dir}:${process.env.PATH}`,
          GITHUB_OUTPUT: output,
          BASE_SHA: "a",
          HEAD_SHA: "b",
        },
        stdio: "ignore",
      });
      return readFileSync(output, "utf8").trim();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it.each([
    [["Pulumi.dev.yaml"], '["dev"]'],
    [["Pulumi.gke.yaml"], '["gke"]'],
    [["infra/kind/up.sh"], '["dev"]'],
    [["infra/app/scoring-app.ts"], '["dev","gke"]'],
    [["service/src/app.ts", "README.md"], '["dev","gke"]'],
    [["package-lock.json"], '["dev","gke"]'],
    [["README.md", "test/smoke/smoke.ts"], "[]"],
  ])("%j touches %s", (changed, stacks) => {
    expect(touchedStacks(changed)).toBe(`stacks=${stacks}`);
  });
});
