/**
 * Builds the service image from service/Dockerfile and runs it the way a cluster would:
 * read-only root, no capabilities, no privilege escalation, an unprivileged user, SIGTERM to stop.
 *
 * Needs a Docker engine and the two base images the Dockerfile names (made without a registry by
 * test/container/make-base-images.sh; test/container/docker-up.sh does both). Without Docker the suite is
 * skipped locally, but fails under CI=true so a broken engine cannot turn it green.
 */
import { execFile, execFileSync } from "node:child_process";
import path from "node:path";
import { performance } from "node:perf_hooks";

const REPO_ROOT = path.resolve(__dirname, "..", "..");
const IMAGE = "mlscore-service:test";
const BASE_IMAGES = ["node:22-bookworm-slim", "gcr.io/distroless/nodejs22-debian12:nonroot"];
const MAX_IMAGE_BYTES = 250 * 1000 * 1000;
const NONROOT_UID = "65532";
/** A setosa flower from the iris dataset; the classifier's first class. */
const SETOSA = [5.1, 3.5, 1.4, 0.2];

const BUILD_TIMEOUT_MS = 15 * 60 * 1000;
const START_TIMEOUT_MS = 60 * 1000;
const STOP_WITHIN_MS = 5 * 1000;

/** Every container a test started, removed in afterAll whatever the tests' outcome. */
const startedContainers: string[] = [];

interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs docker without a shell; never rejects, so callers decide what a failure means. */
function docker(args: readonly string[], timeoutMs = 120_000): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(
      "docker",
      args,
      { cwd: REPO_ROOT, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolve({ code, stdout, stderr: stderr || (error && code !== 0 ? error.message : "") });
      },
    );
  });
}

/** Runs docker and returns its trimmed stdout, or throws with what it printed. */
async function dockerOk(args: readonly string[], timeoutMs?: number): Promise<string> {
  const result = await docker(args, timeoutMs);
  if (result.code !== 0) {
    throw new Error(
      `docker ${args.join(" ")} failed (${result.code}):\n${tail(result.stderr + result.stdout)}`,
    );
  }
  return result.stdout.trim();
}

function tail(text: string, lines = 40): string {
  return text.trim().split("\n").slice(-lines).join("\n");
}

/** Why Docker cannot be used here, or undefined when `docker info` answers. */
function dockerUnavailableReason(): string | undefined {
  try {
    execFileSync("docker", ["info", "--format", "{{.ServerVersion}}"], {
      stdio: "pipe",
      timeout: 20_000,
    });
    return undefined;
  } catch (error) {
    const { stderr, message } = error as Error & { stderr?: Buffer };
    return (stderr?.toString().trim() || message).split("\n")[0];
  }
}

function gitRevision(): string {
  try {
    return execFileSync("git", ["rev-parse", "HEAD"], { cwd: REPO_ROOT, stdio: "pipe" })
      .toString()
      .trim();
  } catch {
    return "unknown";
  }
}

/** Starts a detached, locked-down container and returns its id and the host port for 8080. */
async function startContainer(
  env: Readonly<Record<string, string>>,
): Promise<{ id: string; url: string }> {
  const envArgs = Object.entries(env).flatMap(([key, value]) => ["-e", `${key}=${value}`]);
  const id = await dockerOk([
    "run",
    "--detach",
    "--read-only",
    "--tmpfs",
    "/tmp",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--publish",
    "127.0.0.1::8080",
    ...envArgs,
    IMAGE,
  ]);
  startedContainers.push(id);
  const mapping = await dockerOk(["port", id, "8080/tcp"]);
  const port = /127\.0\.0\.1:(\d+)/.exec(mapping)?.[1];
  if (!port) throw new Error(`container ${id} published no port on 127.0.0.1: "${mapping}"`);
  return { id, url: `http://127.0.0.1:${port}` };
}

/** Polls /readyz until it answers 200; fails early, with the logs, if the container exits. */
async function waitUntilReady(id: string, url: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const ready = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) }).then(
      (response) => response.status === 200,
      () => false,
    );
    if (ready) return;
    const running = await dockerOk(["inspect", "--format", "{{.State.Running}}", id]);
    if (running !== "true") {
      const logs = await docker(["logs", id]);
      throw new Error(`container exited before it was ready:\n${tail(logs.stdout + logs.stderr)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${url}/readyz did not answer 200 within ${START_TIMEOUT_MS} ms`);
}

async function postJson(url: string, body: string): Promise<{ status: number; json: unknown }> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: response.status, json };
}

const unavailable = dockerUnavailableReason();
const mustRun = process.env.CI === "true";
if (unavailable && !mustRun) {
  console.warn(
    `test/container skipped: Docker is not available (${unavailable}). CI=true makes this a failure.`,
  );
}
const describeWithDocker = unavailable && !mustRun ? describe.skip : describe;

describeWithDocker("service image", () => {
  const revision = gitRevision();

  beforeAll(async () => {
    if (unavailable) throw new Error(`CI=true needs a Docker engine: ${unavailable}`);
    for (const base of BASE_IMAGES) {
      if ((await docker(["image", "inspect", base])).code !== 0) {
        throw new Error(
          `base image ${base} is missing: run test/container/make-base-images.sh as root`,
        );
      }
    }
    const startedAt = performance.now();
    const build = await docker(
      [
        "build",
        "--force-rm",
        "--file",
        "service/Dockerfile",
        "--tag",
        IMAGE,
        "--build-arg",
        `REVISION=${revision}`,
        ".",
      ],
      BUILD_TIMEOUT_MS,
    );
    if (build.code !== 0) {
      throw new Error(
        `docker build failed (${build.code}):\n${tail(build.stdout + build.stderr, 60)}`,
      );
    }
    const context = /Sending build context to Docker daemon\s+(\S+)/.exec(build.stdout)?.[1];
    console.log(
      `built ${IMAGE} in ${((performance.now() - startedAt) / 1000).toFixed(1)} s` +
        (context ? ` (build context ${context})` : ""),
    );
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    // Containers go even when an assertion failed half-way through a test.
    if (startedContainers.length > 0) await docker(["rm", "--force", ...startedContainers]);
  });

  describe("image", () => {
    it("image: inspected: is under 250 MB and runs node as uid 65532 with the service as its command", async () => {
      const [config] = JSON.parse(await dockerOk(["image", "inspect", IMAGE])) as Array<{
        Size: number;
        Config: {
          User: string;
          Entrypoint: string[] | null;
          Cmd: string[] | null;
          Env: string[];
          ExposedPorts: Record<string, unknown>;
          Labels: Record<string, string>;
        };
      }>;
      console.log(`${IMAGE} is ${(config.Size / 1e6).toFixed(1)} MB`);
      expect(config.Size).toBeLessThan(MAX_IMAGE_BYTES);
      expect(config.Config.User).toBe(`${NONROOT_UID}:${NONROOT_UID}`);
      expect(config.Config.Entrypoint).toEqual(["/nodejs/bin/node"]);
      expect(config.Config.Cmd).toEqual(["dist/server.js"]);
      expect(config.Config.Env).toEqual(
        expect.arrayContaining(["NODE_ENV=production", "PORT=8080", "ORT_DISABLE_TELEMETRY=1"]),
      );
      expect(Object.keys(config.Config.ExposedPorts)).toEqual(["8080/tcp"]);
      expect(config.Config.Labels["org.opencontainers.image.revision"]).toBe(revision);
    });

    it("image: asked for a shell: has none, like the distroless base", async () => {
      const result = await docker(["run", "--rm", "--entrypoint", "/bin/sh", IMAGE, "-c", "true"]);
      expect(result.code).not.toBe(0);
    });

    it("image: listed: holds only the app and onnxruntime's binaries for linux on this arch", async () => {
      const listing = await dockerOk([
        "run",
        "--rm",
        IMAGE,
        "-e",
        [
          'const fs = require("node:fs");',
          'const napi = "node_modules/onnxruntime-node/bin/napi-v6";',
          "console.log(JSON.stringify({",
          '  app: fs.readdirSync(".").sort(),',
          "  platforms: fs.readdirSync(napi).flatMap((os) => fs.readdirSync(`${napi}/${os}`).map((arch) => `${os}/${arch}`)),",
          "  arch: process.arch,",
          '  dangling: fs.existsSync("node_modules/@mlscore"),',
          "}));",
        ].join("\n"),
      ]);
      const { app, platforms, arch, dangling } = JSON.parse(listing) as {
        app: string[];
        platforms: string[];
        arch: string;
        dangling: boolean;
      };
      expect(app).toEqual(["dist", "models", "node_modules", "package.json"]);
      expect(platforms).toEqual([`linux/${arch}`]);
      expect(dangling).toBe(false);
    });

    it("image: the AWS SDK loads from its CommonJS build, its ES-module and type copies gone", async () => {
      const listing = await dockerOk([
        "run",
        "--rm",
        IMAGE,
        "-e",
        [
          'const fs = require("node:fs");',
          'require("@aws-sdk/client-s3");',
          'require("@aws-sdk/credential-provider-env");',
          'require("@aws-sdk/credential-provider-web-identity");',
          'const left = ["@aws-sdk", "@smithy"].flatMap((scope) =>',
          "  fs.readdirSync(`node_modules/${scope}`).flatMap((pkg) =>",
          '    ["dist-es", "dist-types"].filter((d) => fs.existsSync(`node_modules/${scope}/${pkg}/${d}`))));',
          "console.log(JSON.stringify(left));",
        ].join("\n"),
      ]);
      expect(JSON.parse(listing)).toEqual([]);
    });
  });

  describe("running the built-in iris model, locked down", () => {
    let container: { id: string; url: string };

    beforeAll(async () => {
      container = await startContainer({});
      await waitUntilReady(container.id, container.url);
    }, START_TIMEOUT_MS + 30_000);

    it("POST /score: a setosa flower: answers three probabilities with class 0 the highest", async () => {
      const { status, json } = await postJson(
        `${container.url}/score`,
        JSON.stringify({ X: [SETOSA] }),
      );
      expect(status).toBe(200);
      const { score } = json as { score: number[][] };
      expect(score).toHaveLength(1);
      expect(score[0]).toHaveLength(3);
      for (const probability of score[0]) {
        expect(probability).toBeGreaterThanOrEqual(0);
        expect(probability).toBeLessThanOrEqual(1);
      }
      expect(score[0].reduce((sum, p) => sum + p, 0)).toBeCloseTo(1, 4);
      expect(score[0].indexOf(Math.max(...score[0]))).toBe(0);
    });

    it("POST /score: malformed JSON and a wrong feature count: answers 4xx and keeps serving", async () => {
      const malformed = await postJson(`${container.url}/score`, '{"X": [[5.1, 3.5,');
      expect(malformed.status).toBeGreaterThanOrEqual(400);
      expect(malformed.status).toBeLessThan(500);
      const wrongShape = await postJson(
        `${container.url}/score`,
        JSON.stringify({ X: [[5.1, 3.5]] }),
      );
      expect(wrongShape.status).toBeGreaterThanOrEqual(400);
      expect(wrongShape.status).toBeLessThan(500);
      const again = await fetch(`${container.url}/readyz`);
      expect(again.status).toBe(200);
    });

    it("node dist/gate.js: the canary gate, locked down as its Job runs it: passes this model", async () => {
      const address = await dockerOk([
        "inspect",
        "--format",
        "{{.NetworkSettings.IPAddress}}",
        container.id,
      ]);
      const golden = path.join(REPO_ROOT, "service", "models", "iris.golden.json");
      const gate = await docker([
        "run",
        "--rm",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--volume",
        `${golden}:/etc/mlscore/golden/golden.json:ro`,
        "-e",
        `GATE_URL=http://${address}:8080`,
        "-e",
        "GATE_MODEL_NAME=iris",
        "-e",
        "GATE_MODEL_VERSION=1",
        "-e",
        "GATE_GOLDEN_FILE=/etc/mlscore/golden/golden.json",
        IMAGE,
        "dist/gate.js",
      ]);
      expect({ code: gate.code, stderr: gate.stderr }).toEqual({ code: 0, stderr: "" });
      expect(gate.stdout).toBe(
        "PASS held-out rows (30)\n" +
          `gate passed: model "iris" version "1" at http://${address}:8080 answered 1 golden request as expected\n`,
      );
    });

    it("process: seen from the host: runs as uid 65532, never root", async () => {
      // docker top needs the pid column to map ps output to the container.
      const uids = (await dockerOk(["top", container.id, "-o", "pid,uid"]))
        .split("\n")
        .slice(1)
        .map((line) => line.trim().split(/\s+/)[1])
        .filter(Boolean);
      expect(uids.length).toBeGreaterThan(0);
      expect(new Set(uids)).toEqual(new Set([NONROOT_UID]));
    });

    it("docker stop: SIGTERM: drains and exits 0 within 5 s, logging the shutdown", async () => {
      const startedAt = performance.now();
      await dockerOk(["stop", "--time", "30", container.id], 60_000);
      const stoppedInMs = performance.now() - startedAt;
      expect(stoppedInMs).toBeLessThan(STOP_WITHIN_MS);
      expect(await dockerOk(["inspect", "--format", "{{.State.ExitCode}}", container.id])).toBe(
        "0",
      );
      const logs = await docker(["logs", container.id]);
      // The service logs JSON to stdout; anything on stderr (a runtime warning, e.g. onnxruntime
      // failing to write to the read-only root) means the image is not as clean as it should be.
      expect(logs.stderr).toBe("");
      const lines = logs.stdout
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as { message?: string; time: string });
      const messages = lines.map((line) => line.message);
      expect(messages).toEqual(expect.arrayContaining(["ready", "draining", "stopped"]));
      // By the lines' own clock: docker's log capture has been seen to swap two lines written
      // within a millisecond of each other, though the process wrote them in order.
      const at = (message: string) => Date.parse(lines.find((l) => l.message === message)!.time);
      expect(at("draining")).toBeLessThanOrEqual(at("stopped"));
    });
  });

  describe("running MODEL_URI=identity", () => {
    it(
      "POST /score: {X: [1, 2]}: answers the input back as the score",
      async () => {
        const { id, url } = await startContainer({ MODEL_URI: "identity" });
        await waitUntilReady(id, url);
        const { status, json } = await postJson(`${url}/score`, JSON.stringify({ X: [1, 2] }));
        expect(status).toBe(200);
        expect(json).toEqual({ score: [1, 2] });
      },
      START_TIMEOUT_MS + 30_000,
    );
  });
});
