import express, { type ErrorRequestHandler, type Request } from "express";
import pino, { type Logger } from "pino";
import { BodyBudget, bodyReader, closeAfterAnswer } from "./http/body";
import { DEFAULT_BODY_TIMEOUT_SECONDS, resolveBodyLimits } from "./http/body-limit";
import { ApiError } from "./http/errors";
import { Metrics } from "./http/metrics";
import { observeRequests, recordFault } from "./http/observe";
import { SLICE_MS, Turns } from "./http/turns";
import { planStacking, type StackingPlan } from "./model/batch";
import { Batcher } from "./model/batcher";
import { ModelInputError, type Model } from "./model/model";
import { withPredict } from "./model/with-predict";
import { protocols } from "./protocols";
import { buildOpenApi } from "./protocols/openapi";
import { answerReadiness, type Protocol } from "./protocols/protocol";

export interface AppOptions {
  readonly model: Model;
  /** Most rows one request may carry, and one model run may stack. */
  readonly maxBatchSize: number;
  /** Longest a request waits for others to share its model run; 0 (default): runs alone. */
  readonly maxBatchDelayMs?: number;
  /** Largest request body accepted, in bytes (more: 413); default: derived from the model. */
  readonly bodyLimitBytes?: number;
  /** Most request-body bytes held at once (more: 503); default: DEFAULT_BODY_BYTES_IN_FLIGHT. */
  readonly bodyBytesInFlight?: number;
  /** How long a body may take to arrive (longer: 408); default: DEFAULT_BODY_TIMEOUT_SECONDS. */
  readonly bodyTimeoutSeconds?: number;
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
  const limits = resolveBodyLimits({
    model: options.model,
    maxBatchSize: options.maxBatchSize,
    limitBytes: options.bodyLimitBytes,
    bytesInFlight: options.bodyBytesInFlight,
  });
  const budget = new BodyBudget(limits.bytesInFlight);
  metrics.watchBodyBudget(budget);
  const turns = new Turns();
  const timed = metrics.instrument(options.model);
  const batcher = new Batcher(timed, {
    maxDelayMs: options.maxBatchDelayMs ?? 0,
    maxRows: options.maxBatchSize,
    sliceMs: SLICE_MS,
    plan: () => planStacking(options.model),
    onPlan: (plan) =>
      logger.info({ batching: plan }, describePlan(plan, options.maxBatchDelayMs ?? 0)),
    arriving: () => turns.queued,
    onRun: (waitedMs) => metrics.observeRun(waitedMs),
  });
  const model = withPredict(timed, (inputs) => batcher.predict(inputs));
  const openapi = buildOpenApi(protocols, model);

  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);

  app.use(observeRequests(logger, metrics));

  app.get("/healthz", (_req, res) => {
    res.json({ status: "alive" });
  });
  app.get("/readyz", (_req, res) => {
    answerReadiness(res, isReady, (ready) => ({ status: ready ? "ready" : "not ready" }));
  });
  app.get("/metrics", async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  app.get("/openapi.json", (_req, res) => {
    res.json(openapi);
  });

  const readBody = bodyReader(
    {
      maxBytes: limits.limitBytes,
      timeoutMs: (options.bodyTimeoutSeconds ?? DEFAULT_BODY_TIMEOUT_SECONDS) * 1000,
      budget,
    },
    turns,
  );
  const context = { model, maxBatchSize: options.maxBatchSize, readBody, isReady };
  for (const protocol of protocols) app.use(protocol.router(context));

  app.use((req, _res, next) => {
    next(new ApiError(404, `no route for ${req.method} ${req.path}; see GET /openapi.json`));
  });
  app.use(handleErrors(protocols));
  return app;
}

/** How requests will run, for the log. */
function describePlan(plan: StackingPlan, maxBatchDelayMs: number): string {
  if (!plan.stacks) return `requests run alone: ${plan.reason ?? ""}`;
  return maxBatchDelayMs > 0
    ? `concurrent requests share model runs (waiting up to ${maxBatchDelayMs} ms)`
    : "requests run alone: MAX_BATCH_DELAY_MS is 0";
}

/** Errors from Express itself (a malformed path parameter) carry a 4xx `status`. */
interface HttpError extends Error {
  readonly status?: number;
}

function toApiError(error: HttpError): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof ModelInputError) return new ApiError(400, error.message);
  if (error.status !== undefined && error.status >= 400 && error.status < 500) {
    return new ApiError(error.status, error.message);
  }
  return new ApiError(
    500,
    "internal error; the request id in the x-request-id header locates it in the logs",
  );
}

/** The one error handler: every error leaves in the format of the protocol the client spoke. */
function handleErrors(all: readonly Protocol[]): ErrorRequestHandler {
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
    const apiError = toApiError(error);
    if (apiError.status >= 500) recordFault(res, error);
    // Answered before its body arrived whole: the connection cannot carry another request.
    if (!req.complete) closeAfterAnswer(req, res);
    const protocol = protocolOf(req);
    res
      .status(apiError.status)
      .json(protocol ? protocol.formatError(apiError) : { error: apiError.message });
  };
}
