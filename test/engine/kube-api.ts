import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { request } from "node:https";

/** An answer of the API server that was not 2xx. */
export class KubeApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    path: string,
  ) {
    super(`${path}: HTTP ${status}: ${body.slice(0, 300)}`);
  }
}

/** What the engine test does to a cluster: GETs of API paths, and scaling as an autoscaler does. */
export interface KubeClient {
  /** The body of a GET as text. */
  text(path: string): Promise<string>;
  /** Sets a Deployment's replica count through its scale subresource, as the HPA does. */
  scale(namespace: string, deployment: string, replicas: number): Promise<void>;
}

/** Files of the client's TLS identity. */
export interface KubeCredentials {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/** The object at `path`. */
export async function getObject<T>(api: KubeClient, path: string): Promise<T> {
  return JSON.parse(await api.text(path)) as T;
}

/** The object at `path`, or undefined when the server answers 404. */
export async function findObject<T>(api: KubeClient, path: string): Promise<T | undefined> {
  try {
    return await getObject<T>(api, path);
  } catch (error) {
    if (error instanceof KubeApiError && error.status === 404) {
      return undefined;
    }
    throw error;
  }
}

/** The items of a list at `path`. */
export async function listObjects<T>(api: KubeClient, path: string): Promise<T[]> {
  return (await getObject<{ items: T[] }>(api, path)).items;
}

/**
 * Reads a cluster the user already has through `kubectl get --raw`, so whatever authenticates
 * their context (a token, an exec plugin) works here too.
 */
export class KubectlClient implements KubeClient {
  constructor(private readonly context: string) {}

  text(path: string): Promise<string> {
    return this.kubectl(["get", "--raw", path], path);
  }

  async scale(namespace: string, deployment: string, replicas: number): Promise<void> {
    await this.kubectl(
      ["-n", namespace, "scale", `deployment/${deployment}`, `--replicas=${replicas}`],
      deployment,
    );
  }

  private kubectl(args: string[], path: string): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(
        "kubectl",
        ["--context", this.context, ...args],
        { maxBuffer: 64 * 1024 * 1024 },
        (error, stdout, stderr) => {
          if (!error) {
            resolve(stdout);
          } else if (/NotFound|\(404\)|not found/i.test(stderr)) {
            reject(new KubeApiError(404, stderr, path));
          } else {
            reject(new Error(`kubectl ${args.join(" ")}: ${stderr || error.message}`));
          }
        },
      );
    });
  }
}

/**
 * Just enough of a Kubernetes API client for the engine test to look at what the engine made:
 * GET, POST (the fake nodes) and the scale PATCH. Every assertion goes through the API server, never the state.
 */
export class KubeApi implements KubeClient {
  private readonly tls: { ca: Buffer; cert: Buffer; key: Buffer };

  constructor(
    private readonly server: string,
    credentials: KubeCredentials,
  ) {
    this.tls = {
      ca: readFileSync(credentials.ca),
      cert: readFileSync(credentials.cert),
      key: readFileSync(credentials.key),
    };
  }

  /** The body of a GET as text. */
  text(path: string): Promise<string> {
    return this.send("GET", path);
  }

  /** POSTs `body` to the collection at `path`. */
  async create(path: string, body: unknown): Promise<void> {
    await this.send("POST", path, JSON.stringify(body), "application/json");
  }

  async scale(namespace: string, deployment: string, replicas: number): Promise<void> {
    await this.send(
      "PATCH",
      `/apis/apps/v1/namespaces/${namespace}/deployments/${deployment}/scale`,
      JSON.stringify({ spec: { replicas } }),
      "application/merge-patch+json",
    );
  }

  private send(method: string, path: string, body?: string, type?: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = request(
        `${this.server}${path}`,
        {
          method,
          ...this.tls,
          headers: type ? { "content-type": type } : {},
          timeout: 10_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              resolve(text);
            } else {
              reject(new KubeApiError(status, text, path));
            }
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.on("error", reject);
      req.end(body);
    });
  }
}
