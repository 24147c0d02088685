import express, { type ErrorRequestHandler, type Request } from "express";
import pino, { type Logger } from "pino";
import { ApiError } from "./http/errors";
import { Metrics } from "./http/metrics";
import { observeRequests, recordFault } from "./http/observe";
import { buildOpenApi } from "./http/openapi";
import type { Protocol } from "./http/protocol";
import type { Model } from "./model/model";
import { protocols } from "./protocols";

export interface AppOptions {
  readonly model: Model;
  /** Most rows one request may carry. */
  readonly maxBatchSize: number;
  /** Largest request body accepted, in bytes; larger ones get a 413. */
  readonly bodyLimitBytes: number;
  /** Readiness; default: always ready. `server.ts` turns it off while draining. */
  readonly isReady?: () => boolean;
  /** Default: a silent logger, for tests. */
  readonly logger?: Logger;
  /** Default: a fresh metrics registry. */
  readonly metrics?: Metrics;
}

/** Builds the scoring app. It never listens: `server.ts` owns the socket. */
export function createApp(options: AppOptions): express.Express {
  const logger = options.logger ?? pino({ level: "silent" });
  const metrics = options.metrics ?? new Metrics();
  const isReady = options.isReady ?? (() => true);
  const model = metrics.instrument(options.model);
  const openapi = buildOpenApi(protocols, model);

  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);

  app.use(observeRequests(logger, metrics));
  app.use(
    express.json({
      limit: options.bodyLimitBytes,
      type: ["application/json", "application/*+json"],
    }),
  );

  app.get("/healthz", (_req, res) => {
    res.json({ status: "alive" });
  });
  app.get("/readyz", (_req, res) => {
    const ready = isReady();
    res.status(ready ? 200 : 503).json({ status: ready ? "ready" : "not ready" });
  });
  app.get("/metrics", async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  app.get("/openapi.json", (_req, res) => {
    res.json(openapi);
  });

  const context = {
    model,
    maxBatchSize: options.maxBatchSize,
    bodyLimitBytes: options.bodyLimitBytes,
    isReady,
  };
  for (const protocol of protocols) app.use(protocol.router(context));

  app.use((req, _res, next) => {
    next(new ApiError(404, `no route for ${req.method} ${req.path}; see GET /openapi.json`));
  });
  app.use(handleErrors(protocols, options.bodyLimitBytes));
  return app;
}

/** Body-parser failures carry `type` and a 4xx `status`; anything else unknown is a fault. */
interface HttpError extends Error {
  readonly status?: number;
  readonly type?: string;
}

function toApiError(error: HttpError, bodyLimitBytes: number): ApiError {
  if (error instanceof ApiError) return error;
  switch (error.type) {
    case "entity.parse.failed":
      return new ApiError(400, `malformed JSON body: ${error.message}`);
    case "entity.too.large":
      return new ApiError(
        413,
        `request body is larger than the limit of ${bodyLimitBytes} bytes; send smaller batches`,
      );
    case "charset.unsupported":
    case "encoding.unsupported":
      return new ApiError(415, `${error.message}; send UTF-8 JSON`);
  }
  if (error.status !== undefined && error.status >= 400 && error.status < 500) {
    return new ApiError(error.status, error.message);
  }
  return new ApiError(
    500,
    "internal error; the request id in the x-request-id header locates it in the logs",
  );
}

/** The one error handler: every error leaves in the format of the protocol the client spoke. */
function handleErrors(all: readonly Protocol[], bodyLimitBytes: number): ErrorRequestHandler {
  const byPrefix = all
    .flatMap((protocol) => protocol.prefixes.map((prefix) => ({ prefix, protocol })))
    .sort((a, b) => b.prefix.length - a.prefix.length);
  const protocolOf = (req: Request): Protocol | undefined =>
    byPrefix.find(({ prefix }) => req.path === prefix || req.path.startsWith(`${prefix}/`))
      ?.protocol;

  return (error: HttpError, req, res, next) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    const apiError = toApiError(error, bodyLimitBytes);
    if (apiError.status >= 500) recordFault(res, error);
    const protocol = protocolOf(req);
    res
      .status(apiError.status)
      .json(protocol ? protocol.formatError(apiError) : { error: apiError.message });
  };
}
