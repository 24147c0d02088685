import http from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import type { Model } from "./model/model";
import { sampleInputs } from "./model/samples";
import { encodeFlat, encodeNested } from "./protocols/tensor-encode";

/**
 * How many requests the warm-up sends before the service reports ready, unless WARM_UP_REQUESTS
 * says otherwise: enough for V8 to have optimised the request path and for the model's first
 * runs to be over. Chosen by measuring the first seconds after ready (README, Benchmark).
 */
export const DEFAULT_WARM_UP_REQUESTS = 3000;
/**
 * Longest the warm-up goes on, whatever the number of requests: a model whose run takes 50 ms
 * would otherwise keep a new pod out of service for minutes (3000 runs), while the request
 * path's code is optimised after a few hundred requests whatever the model.
 */
export const WARM_UP_MAX_MS = 5_000;
/** Concurrent connections, so that requests also share model runs as they do under load. */
const WARM_UP_CONNECTIONS = 16;

export interface WarmUpResult {
  readonly requests: number;
  /** Bodies the service refused (not 2xx), each sent once: the rest warmed the path. */
  readonly refused: number;
  readonly ms: number;
}

interface WarmUpRequest {
  readonly path: string;
  readonly body: string;
}

/**
 * One made-up row in every protocol's request format. The table protocols get it as a row of the
 * model's columns when the model is a table (one input, or one column per input).
 */
export function warmUpRequests(model: Model): WarmUpRequest[] {
  const tensors = sampleInputs(model, 1);
  const v2 = {
    inputs: tensors.map((t) => ({
      name: t.name,
      datatype: t.datatype,
      shape: t.shape,
      data: encodeFlat(t),
    })),
  };
  const requests: { path: string; body: object }[] = [
    { path: `/v2/models/${model.name}/infer`, body: v2 },
  ];
  const rows =
    tensors.length === 1
      ? encodeNested(tensors[0])
      : tensors.every((t) => t.shape.length <= 2 && encodeFlat(t).length === 1)
        ? [tensors.map((t) => encodeFlat(t)[0])]
        : undefined;
  if (Array.isArray(rows)) {
    requests.push(
      { path: "/score", body: { X: rows } },
      { path: "/api/v1.0/predictions", body: { data: { ndarray: rows } } },
      { path: `/v1/models/${model.name}:predict`, body: { instances: rows } },
      { path: "/invocations", body: { instances: rows } },
    );
  }
  return requests.map(({ path, body }) => ({ path, body: JSON.stringify(body) }));
}

/**
 * Sends `requests` of `warmUpRequests(model)`, in turn, over WARM_UP_CONNECTIONS, to the service
 * listening at `address`: through the whole request path (HTTP parsing, routing, the body
 * reader, decoding, the model, stacked as under load, and encoding). Resolves when all are
 * answered, or once `maxMs` have passed (every protocol's body is sent once all the same).
 */
export async function warmUp(
  address: AddressInfo,
  model: Model,
  requests: number,
  maxMs = WARM_UP_MAX_MS,
): Promise<WarmUpResult> {
  const startedAt = performance.now();
  const deadline = startedAt + maxMs;
  const host =
    address.address === "0.0.0.0"
      ? "127.0.0.1"
      : address.address === "::"
        ? "::1"
        : address.address;
  const agent = new http.Agent({ keepAlive: true, maxSockets: WARM_UP_CONNECTIONS });
  let sent = 0;
  // Request ids that say what the requests are, in the debug log.
  const send = ({ path, body }: WarmUpRequest) =>
    post(agent, { host, port: address.port, path, id: `warm-up-${++sent}` }, body);
  try {
    // Each body once first: one the service refuses (a model that answers made-up values with
    // NaN, say) is not sent again, so it is logged once rather than thousands of times.
    const first = warmUpRequests(model).slice(0, requests);
    const bodies: WarmUpRequest[] = [];
    for (const request of first) if (isSuccess(await send(request))) bodies.push(request);
    const refused = first.length - bodies.length;
    const connection = async (): Promise<void> => {
      while (bodies.length > 0 && sent < requests && performance.now() < deadline) {
        await send(bodies[sent % bodies.length]);
      }
    };
    await Promise.all(Array.from({ length: WARM_UP_CONNECTIONS }, connection));
    return { requests: sent, refused, ms: performance.now() - startedAt };
  } finally {
    agent.destroy();
  }
}

const isSuccess = (status: number) => status >= 200 && status <= 299;

interface Target {
  readonly host: string;
  readonly port: number;
  readonly path: string;
  readonly id: string;
}

function post(agent: http.Agent, { host, port, path, id }: Target, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host,
        port,
        path,
        method: "POST",
        agent,
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
          "x-request-id": id,
        },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
