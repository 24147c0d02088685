import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createWriteStream, mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import * as path from "node:path";
import { stringify as toYaml } from "yaml";
import { getObject, KubeApi } from "./kube-api";
import { kwokStages } from "./kwok-stages";

/** The kubeconfig context the control plane is reached through. */
export const CONTEXT = "mlscore-engine";
/** Annotation kwok's node selector matches: only these nodes are simulated. */
const FAKE_NODE_ANNOTATION = ["kwok.x-k8s.io/node", "fake"] as const;
const SERVICE_CIDR = "10.96.0.0/16";

/** A port nothing listens on now, picked by the kernel. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Polls `probe` until it returns a value other than undefined, or fails after `seconds`. */
export async function waitFor<T>(
  what: string,
  seconds: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) {
        return value;
      }
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      const why =
        last === undefined
          ? ""
          : `: ${last instanceof Error ? last.message : JSON.stringify(last)}`;
      throw new Error(`timed out after ${seconds} s waiting for ${what}${why}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/**
 * A CA, the API server's serving certificate, an admin client certificate (system:masters) and
 * the service-account signing key, made with openssl in `dir`. Valid for one day.
 */
function makeCertificates(dir: string): void {
  const openssl = (...args: string[]) =>
    execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  openssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-subj",
    "/CN=mlscore-engine-test-ca",
  );
  const sign = (name: string, subject: string, extensions: string) => {
    writeFileSync(path.join(dir, `${name}.ext`), extensions);
    openssl(
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      subject,
    );
    openssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "1",
      "-out",
      `${name}.crt`,
      "-extfile",
      `${name}.ext`,
    );
  };
  sign(
    "apiserver",
    "/CN=kube-apiserver",
    "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc,IP:10.96.0.1\n" +
      "extendedKeyUsage=serverAuth\n",
  );
  sign("admin", "/O=system:masters/CN=mlscore-engine-admin", "extendedKeyUsage=clientAuth\n");
  openssl("genrsa", "-out", "sa.key", "2048");
  openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub");
}

/** A kubeconfig whose one context, {@link CONTEXT}, is the admin on `server`. */
function kubeconfig(dir: string, server: string): string {
  return toYaml({
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      { name: CONTEXT, cluster: { server, "certificate-authority": path.join(dir, "ca.crt") } },
    ],
    users: [
      {
        name: CONTEXT,
        user: {
          "client-certificate": path.join(dir, "admin.crt"),
          "client-key": path.join(dir, "admin.key"),
        },
      },
    ],
    contexts: [{ name: CONTEXT, context: { cluster: CONTEXT, user: CONTEXT } }],
    "current-context": CONTEXT,
  });
}

/**
 * etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on 127.0.0.1, on free
 * ports, with their data and logs in one folder. kwok plays the kubelet (nodes and pods become
 * Ready without containers) and the cloud's load-balancer controller.
 */
export class ControlPlane {
  private readonly processes: { name: string; child: ChildProcess }[] = [];
  /** The kubeconfig file, whose current context is {@link CONTEXT}. */
  readonly kubeconfigPath: string;
  readonly api: KubeApi;

  private constructor(
    private readonly binDir: string,
    private readonly dir: string,
    private readonly apiPort: number,
  ) {
    this.kubeconfigPath = path.join(dir, "kubeconfig");
    this.api = new KubeApi(`https://127.0.0.1:${apiPort}`, {
      ca: path.join(dir, "ca.crt"),
      cert: path.join(dir, "admin.crt"),
      key: path.join(dir, "admin.key"),
    });
  }

  /** Starts every component in `dir` and waits until the API server is ready. */
  static async start(
    binDir: string,
    dir: string,
    log: (line: string) => void,
  ): Promise<ControlPlane> {
    mkdirSync(dir, { recursive: true });
    makeCertificates(dir);
    const plane = new ControlPlane(binDir, dir, await freePort());
    try {
      await plane.startAll(log);
    } catch (error) {
      await plane.stop();
      throw error;
    }
    return plane;
  }

  private async startAll(log: (line: string) => void): Promise<void> {
    const dir = this.dir;
    const [etcdClient, etcdPeer] = [await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${etcdClient}`;
    const server = `https://127.0.0.1:${this.apiPort}`;
    writeFileSync(this.kubeconfigPath, kubeconfig(dir, server));

    this.run("etcd", [
      "--name=default",
      `--data-dir=${path.join(dir, "etcd")}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
      "--unsafe-no-fsync",
    ]);
    this.run("kube-apiserver", [
      `--etcd-servers=${etcdUrl}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${this.apiPort}`,
      `--tls-cert-file=${path.join(dir, "apiserver.crt")}`,
      `--tls-private-key-file=${path.join(dir, "apiserver.key")}`,
      `--client-ca-file=${path.join(dir, "ca.crt")}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${path.join(dir, "sa.pub")}`,
      `--service-account-signing-key-file=${path.join(dir, "sa.key")}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      "--authorization-mode=Node,RBAC",
      "--profiling=false",
    ]);
    await waitFor("the API server to be ready", 120, async () =>
      (await this.api.text("/readyz")) === "ok" ? true : undefined,
    );
    log(`API server ready at ${server}`);

    const kubeconfigFlag = `--kubeconfig=${this.kubeconfigPath}`;
    this.run("kube-controller-manager", [
      kubeconfigFlag,
      `--authentication-kubeconfig=${this.kubeconfigPath}`,
      `--authorization-kubeconfig=${this.kubeconfigPath}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${await freePort()}`,
      `--service-account-private-key-file=${path.join(dir, "sa.key")}`,
      `--root-ca-file=${path.join(dir, "ca.crt")}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      "--leader-elect=false",
      "--profiling=false",
    ]);
    this.run("kube-scheduler", [
      kubeconfigFlag,
      `--authentication-kubeconfig=${this.kubeconfigPath}`,
      `--authorization-kubeconfig=${this.kubeconfigPath}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${await freePort()}`,
      "--leader-elect=false",
      "--profiling=false",
    ]);
    const kwokConfig = path.join(dir, "kwok.yaml");
    writeFileSync(kwokConfig, kwokStages());
    this.run("kwok", [
      kubeconfigFlag,
      `--config=${kwokConfig}`,
      "--manage-all-nodes=false",
      `--manage-nodes-with-annotation-selector=${FAKE_NODE_ANNOTATION.join("=")}`,
      `--server-address=127.0.0.1:${await freePort()}`,
      "--node-lease-duration-seconds=40",
      "--cidr=10.244.0.0/16",
      "--node-ip=10.0.0.1",
    ]);
  }

  /** Starts one component with its output in `<dir>/<name>.log`. */
  private run(name: string, args: string[]): void {
    const out = createWriteStream(path.join(this.dir, `${name}.log`));
    const child = spawn(path.join(this.binDir, name), args, {
      cwd: this.dir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    // Should the test process die without stopping them, its components die with it.
    process.once("exit", () => child.kill("SIGKILL"));
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    child.on("exit", (code, signal) => {
      if (!this.stopping) {
        out.write(`\n[control-plane] ${name} exited: code ${code}, signal ${signal}\n`);
      }
    });
    this.processes.push({ name, child });
  }

  private stopping = false;

  /** Registers `count` nodes that kwok simulates, and waits until each is Ready. */
  async registerNodes(count: number): Promise<string[]> {
    const names = Array.from({ length: count }, (_, i) => `kwok-node-${i}`);
    for (const name of names) {
      await this.api.create("/api/v1/nodes", {
        apiVersion: "v1",
        kind: "Node",
        metadata: {
          name,
          annotations: { [FAKE_NODE_ANNOTATION[0]]: FAKE_NODE_ANNOTATION[1] },
          labels: { "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", type: "kwok" },
        },
      });
    }
    for (const name of names) {
      await waitFor(`node ${name} to be Ready`, 60, async () => {
        const node = await getObject<{
          status?: { conditions?: { type: string; status: string }[] };
        }>(this.api, `/api/v1/nodes/${name}`);
        return node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")
          ? true
          : undefined;
      });
    }
    return names;
  }

  /** Processes that have exited although nothing stopped them, by name. */
  exited(): string[] {
    return this.processes.filter((p) => p.child.exitCode !== null).map((p) => p.name);
  }

  /** Stops every component, newest first, and waits for each to exit. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const { child } of [...this.processes].reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) {
        continue;
      }
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
  }
}
