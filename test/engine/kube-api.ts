import { readFileSync } from "node:fs";
import { request } from "node:https";

/** Files of the client's TLS identity. */
export interface KubeCredentials {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

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

/**
 * Just enough of a Kubernetes API client for the engine test to look at what the engine made:
 * GET as JSON or text, and POST. Every assertion goes through the API server, never the state.
 */
export class KubeApi {
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

  /** The object at `path`. */
  async get<T>(path: string): Promise<T> {
    return JSON.parse(await this.send("GET", path)) as T;
  }

  /** The object at `path`, or undefined when the server answers 404. */
  async find<T>(path: string): Promise<T | undefined> {
    try {
      return await this.get<T>(path);
    } catch (error) {
      if (error instanceof KubeApiError && error.status === 404) {
        return undefined;
      }
      throw error;
    }
  }

  /** The items of a list at `path`. */
  async list<T>(path: string): Promise<T[]> {
    return (await this.get<{ items: T[] }>(path)).items;
  }

  /** POSTs `body` to the collection at `path`. */
  async create(path: string, body: unknown): Promise<void> {
    await this.send("POST", path, JSON.stringify(body));
  }

  private send(method: string, path: string, body?: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = request(
        `${this.server}${path}`,
        {
          method,
          ...this.tls,
          headers: body ? { "content-type": "application/json" } : {},
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
