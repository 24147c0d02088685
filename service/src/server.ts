import type { RequestListener, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { createApp } from "./app";
import { ConfigError, readConfig, type ServiceConfig } from "./config";
import { continueOnlyForAcceptedBodies } from "./http/body";
import { resolveBodyLimits } from "./http/body-limit";
import { createExpressServer } from "./http/express-server";
import { Metrics } from "./http/metrics";
import { createLogger } from "./log";
import { loadModel } from "./model/load";
import type { Model } from "./model/model";
import { withoutUrlSecrets } from "./redact";
import { warmUp } from "./warm-up";

/** Ends the process with one line that says why, for a start-up failure a user must fix. */
function die(message: string): never {
  process.stderr.write(`mlscore: ${withoutUrlSecrets(message)}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  const startedAt = performance.now();
  let config: ServiceConfig;
  try {
    config = readConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) die(error.message);
    throw error;
  }
  const logger = createLogger(config.logLevel);

  // Before anything slow: Node is PID 1 in the image, and PID 1 ignores a signal it has no
  // handler for, so a pod deleted while its model loads would wait out its whole grace period.
  let stop = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, "stopped while loading the model");
    process.exit(0);
  };
  process.on("SIGTERM", (signal) => stop(signal));
  process.on("SIGINT", (signal) => stop(signal));

  logger.info({ modelUri: config.modelUri }, "loading model");
  let model: Model;
  try {
    model = await loadModel(
      {
        uri: config.modelUri,
        name: config.modelName,
        version: config.modelVersion,
        sha256: config.modelSha256,
        maxBytes: config.modelMaxBytes,
      },
      {
        cacheDir: config.modelCacheDir,
        timeoutSeconds: config.modelLoadTimeoutSeconds,
        stores: { s3: config.s3 },
      },
    );
  } catch (error) {
    die((error as Error).message);
  }

  const limits = resolveBodyLimits({
    model,
    maxBatchSize: config.maxBatchSize,
    limitBytes: config.bodyLimitBytes,
    bytesInFlight: config.bodyBytesInFlight,
  });
  let ready = false;
  let draining = false;
  const metrics = new Metrics();
  const app = createApp({
    model,
    maxBatchSize: config.maxBatchSize,
    maxBatchDelayMs: config.maxBatchDelayMs,
    bodyLimitBytes: limits.limitBytes,
    bodyBytesInFlight: limits.bytesInFlight,
    bodyTimeoutSeconds: config.bodyTimeoutSeconds,
    isReady: () => ready && !draining,
    logger,
    metrics,
  });

  // Responses not yet finished, so a drain can tell each to close its connection.
  const inFlight = new Set<ServerResponse>();
  const handler: RequestListener = (req, res) => {
    inFlight.add(res);
    res.once("close", () => {
      inFlight.delete(res);
      // The last answer is out: what is left are connections between (or before) requests.
      if (draining && inFlight.size === 0) server.closeAllConnections();
    });
    if (draining) res.setHeader("connection", "close");
    app(req, res);
  };
  const server = createExpressServer(app, handler, config.bodyTimeoutSeconds * 1000);
  continueOnlyForAcceptedBodies(server, handler);

  server.on("error", (error: NodeJS.ErrnoException) => {
    die(`cannot listen on ${config.host}:${config.port}: ${error.code ?? error.message}`);
  });
  server.listen(config.port, config.host, () => {
    void becomeReady(server.address() as AddressInfo);
  });

  /** Warms the request path up through the socket, then reports ready. */
  async function becomeReady(address: AddressInfo): Promise<void> {
    const warm =
      config.warmUpRequests > 0
        ? await warmUp(address, model, config.warmUpRequests).catch((error: unknown) => {
            logger.warn({ err: error }, "warm-up failed; ready without it");
            return undefined;
          })
        : undefined;
    // Stopped while warming up: the drain is under way, and this process will never be ready.
    if (draining) return;
    // What clients see in the metrics is their own traffic, not the warm-up's.
    metrics.forgetRequests();
    ready = true;
    logger.info(
      {
        port: address.port,
        model: { name: model.name, version: model.version, platform: model.platform },
        limits: {
          maxBatchSize: config.maxBatchSize,
          maxBatchDelayMs: config.maxBatchDelayMs,
          maxBodyBytes: limits.limitBytes,
          maxBodyBytesInFlight: limits.bytesInFlight,
          bodyTimeoutSeconds: config.bodyTimeoutSeconds,
        },
        ...(warm && {
          warmUp: { requests: warm.requests, refused: warm.refused, ms: Math.round(warm.ms) },
        }),
        startupMs: Math.round(performance.now() - startedAt),
      },
      "ready",
    );
  }

  stop = (signal) => {
    if (draining) return;
    draining = true;
    logger.info(
      { signal, inFlight: inFlight.size, graceSeconds: config.shutdownGraceSeconds },
      "draining",
    );
    const deadline = setTimeout(() => {
      logger.error("grace period over with requests still in flight; closing them");
      server.closeAllConnections();
      process.exit(1);
    }, config.shutdownGraceSeconds * 1000);
    deadline.unref();
    // Answers still to be written tell their clients to reconnect elsewhere.
    for (const res of inFlight) if (!res.headersSent) res.setHeader("connection", "close");
    // Stops accepting and closes idle keep-alive connections; the close callback runs once the
    // connections with requests in flight have been answered and closed.
    server.close(() => {
      void model.close().finally(() => {
        logger.info("stopped");
        process.exit(0);
      });
    });
    if (inFlight.size === 0) server.closeAllConnections();
  };
}

main().catch((error: unknown) => {
  die(`unexpected start-up failure: ${(error as Error).stack ?? String(error)}`);
});
