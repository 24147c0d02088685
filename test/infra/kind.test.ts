import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";
import { KIND_NETWORK, KIND_REGISTRY } from "../../infra/cluster/kind";
import { ISTIO_KUBERNETES_RANGE } from "../../infra/platform/istio";
import { readStackConfig, REPO_ROOT } from "./harness/stack-config";

const read = (file: string) => readFileSync(path.join(REPO_ROOT, file), "utf8");
const MIN_KIND = /min_kind_version="(\d+\.\d+\.\d+)"/.exec(read("infra/kind/up.sh"))?.[1];

/** A Kubernetes minor as a number to compare: "1.36" → 1036. */
const minor = (version: string) => {
  const [major, minorPart] = version.split(".").map(Number);
  return major * 1000 + minorPart;
};

/** What the fake `kind` and `docker` find on the machine. */
interface FakeMachine {
  /** What `kind version` prints. */
  readonly kindVersion?: string;
  /** Clusters `kind get clusters` lists. */
  readonly clusters?: readonly string[];
  /** Whether the registry container exists, runs and is on the kind network. */
  readonly registry?: boolean;
}

/**
 * Runs a script of infra/kind/ with fake `kind`, `docker` and `kubectl` first on PATH. Returns the
 * exit code, stderr and every command the fakes received.
 */
function runKindScript(
  script: "up.sh" | "down.sh",
  machine: FakeMachine = {},
): { code: number | null; stderr: string; calls: string[] } {
  const {
    kindVersion = "kind v0.33.0 go1.25.1 linux/amd64",
    clusters = [],
    registry = true,
  } = machine;
  const dir = mkdtempSync(path.join(tmpdir(), "kind-script-"));
  try {
    const log = path.join(dir, "calls.log");
    const fake = (name: string, body: string) => {
      const file = path.join(dir, name);
      writeFileSync(file, `#!/bin/sh\necho "${name} $*" >> "${log}"\n${body}\n`);
      chmodSync(file, 0o755);
    };
    fake(
      "kind",
      `case "$1 $2" in
  "version "*) echo "${kindVersion}" ;;
  "get nodes") printf 'mlscore-control-plane\\nmlscore-worker\\n' ;;
  "get clusters") printf '${clusters.join("\\n")}' ;;
esac
exit 0`,
    );
    fake(
      "docker",
      `case "$*" in
  *State.Running*) ${registry ? "echo true" : "exit 1"} ;;
  "inspect kind-registry") ${registry ? "exit 0" : "exit 1"} ;;
  *Networks.kind*) echo '${registry ? '{"NetworkID":"n"}' : "null"}' ;;
esac
cat >/dev/null 2>&1 || true
exit 0`,
    );
    fake("kubectl", "cat >/dev/null; exit 0");
    writeFileSync(log, "");
    const result = spawnSync("bash", [path.join(REPO_ROOT, "infra", "kind", script)], {
      env: { PATH: `${dir}:${process.env.PATH}` },
      encoding: "utf8",
      input: "",
    });
    return {
      code: result.status,
      stderr: result.stderr,
      calls: readFileSync(log, "utf8").split("\n").filter(Boolean),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("npm run kind:up", () => {
  it("requires the kind release the node image was built for, which also passes kind#3875", () => {
    expect(MIN_KIND).toBe("0.33.0");
    // kind fixed kubelet probes under a deny-all NetworkPolicy in v0.28.
    expect(minor(MIN_KIND as string)).toBeGreaterThanOrEqual(minor("0.28"));
  });

  it("stops before touching Docker when kind is too old, naming the version to install", () => {
    const run = runKindScript("up.sh", { kindVersion: "kind v0.27.0 go1.23.4 linux/amd64" });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("kind-up: kind 0.27.0 is too old; install kind v0.33.0 or later");
    expect(run.calls).toEqual(["kind version"]);
  });

  it("stops when kind reports no version it can read", () => {
    const run = runKindScript("up.sh", { kindVersion: "something else entirely" });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("kind-up: kind of unknown version is too old");
  });

  it.each(["kind v0.33.0 go1.25.1 linux/amd64", "kind v0.40.2-alpha+1a2b3c go1.26 darwin/arm64"])(
    "goes on with %s: registry, cluster from cluster.yaml, registry wiring",
    (versionLine) => {
      const run = runKindScript("up.sh", { kindVersion: versionLine });
      expect([run.code, run.stderr]).toEqual([0, ""]);
      expect(run.calls).toContain(
        `kind create cluster --name mlscore --config ${path.join(REPO_ROOT, "infra", "kind", "cluster.yaml")}`,
      );
      expect(run.calls).toContain("kubectl --context kind-mlscore apply -f -");
    },
  );
});

describe("npm run kind:up and kind:down, as the dev stack expects them", () => {
  const clusterName = readStackConfig("dev")["mlscore:kindClusterName"];
  const registryPort = KIND_REGISTRY.split(":")[1];

  it("makes the cluster the stack's kindClusterName names, its context kind-<name>", () => {
    const run = runKindScript("up.sh");
    expect(run.code).toBe(0);
    expect(run.calls).toContainEqual(
      expect.stringMatching(`^kind create cluster --name ${clusterName} `),
    );
    expect(run.calls).toContain(`kubectl --context kind-${clusterName} apply -f -`);
  });

  it("serves the registry where the program pushes (KIND_REGISTRY), on the nodes' network", () => {
    const run = runKindScript("up.sh", { registry: false });
    expect(run.code).toBe(0);
    expect(run.calls).toContain(
      `docker run -d --restart=always -p 127.0.0.1:${registryPort}:5000 --network bridge ` +
        "--name kind-registry registry:2",
    );
    expect(run.calls).toContain(`docker network connect ${KIND_NETWORK} kind-registry`);
    // Inside a node localhost is the node: each maps the program's registry name to the container.
    for (const node of ["mlscore-control-plane", "mlscore-worker"]) {
      expect(run.calls).toContain(
        `docker exec ${node} mkdir -p /etc/containerd/certs.d/${KIND_REGISTRY}`,
      );
    }
  });

  it("kind:down removes the cluster and the registry kind:up made", () => {
    const run = runKindScript("down.sh", { clusters: ["other", clusterName] });
    expect(run.code).toBe(0);
    expect(run.calls).toContain(`kind delete cluster --name ${clusterName}`);
    expect(run.calls).toContain("docker rm -f kind-registry");
  });

  it("kind:down leaves other clusters and a missing registry alone", () => {
    const run = runKindScript("down.sh", { clusters: ["other"], registry: false });
    expect(run.code).toBe(0);
    expect(run.calls.filter((call) => /delete|rm /.test(call))).toEqual([]);
  });
});

describe("infra/kind/cluster.yaml", () => {
  const cluster = parseYaml(read("infra/kind/cluster.yaml")) as {
    kind: string;
    apiVersion: string;
    nodes: { role: string; image: string }[];
    containerdConfigPatches: string[];
  };

  it("has one control plane, two workers and containerd's certs.d enabled for the registry", () => {
    expect([cluster.kind, cluster.apiVersion]).toEqual(["Cluster", "kind.x-k8s.io/v1alpha4"]);
    expect(cluster.nodes.map((n) => n.role)).toEqual(["control-plane", "worker", "worker"]);
    expect(cluster.containerdConfigPatches.join("\n")).toMatch(
      /\[plugins\."io\.containerd\.grpc\.v1\.cri"\.registry\]\s+config_path = "\/etc\/containerd\/certs\.d"/,
    );
  });

  it("pins every node to one image by version and digest", () => {
    const images = new Set(cluster.nodes.map((n) => n.image));
    expect(images.size).toBe(1);
    expect([...images][0]).toMatch(/^kindest\/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$/);
  });

  it("runs a Kubernetes the default Istio release supports", () => {
    // The range was read for one Istio minor; a new istioVersion default needs a new range.
    const istioVersion = readStackConfig("dev")["mlscore:istioVersion"];
    expect(istioVersion.startsWith(`${ISTIO_KUBERNETES_RANGE.istio}.`)).toBe(true);
    const kubernetes = /:v(\d+\.\d+)\./.exec(cluster.nodes[0].image)?.[1] as string;
    expect(minor(kubernetes)).toBeGreaterThanOrEqual(minor(ISTIO_KUBERNETES_RANGE.oldest));
    expect(minor(kubernetes)).toBeLessThanOrEqual(minor(ISTIO_KUBERNETES_RANGE.newest));
  });

  it("is what the PR preview's kind and the README name", () => {
    const workflow = read(".github/workflows/pull-request.yml");
    expect(workflow).toContain(`go install sigs.k8s.io/kind@v${MIN_KIND}`);
    const readme = read("README.md");
    expect(readme).toContain(`kind v${MIN_KIND}`);
    expect(readme).toContain(cluster.nodes[0].image.split("@")[0]);
  });
});
