import { performance } from "node:perf_hooks";
import pino from "pino";
import { createApp } from "./app";
import { ConfigError, readConfig, type ServiceConfig } from "./config";
import { createExpressServer } from "./http/express-server";
import { Metrics } from "./http/metrics";
import { loadModel } from "./model/load";
import type { Model } from "./model/model";

/** Behind a load balancer or Envoy, idle upstream connections must outlive theirs. */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;

/** Ends the process with one line that says why, for a start-up failure a user must fix. */
function die(message: string): never {
  process.stderr.write(`mlscore: ${message}\n`);
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
  const logger = pino({ level: config.logLevel, base: { service: "mlscore" } });

  let model: Model;
  try {
    model = await loadModel({
      uri: config.modelUri,
      name: config.modelName,
      version: config.modelVersion,
      sha256: config.modelSha256,
      maxBytes: config.modelMaxBytes,
    });
  } catch (error) {
    die((error as Error).message);
  }

  let listening = false;
  let draining = false;
  const app = createApp({
    model,
    maxBatchSize: config.maxBatchSize,
    bodyLimitBytes: config.bodyLimitBytes,
    isReady: () => listening && !draining,
    logger,
    metrics: new Metrics(),
  });
  const server = createExpressServer(app, (req, res) => {
    // While draining, tell keep-alive clients to reconnect elsewhere after this answer.
    if (draining) res.setHeader("connection", "close");
    app(req, res);
  });
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1_000;

  server.on("error", (error: NodeJS.ErrnoException) => {
    die(`cannot listen on ${config.host}:${config.port}: ${error.code ?? error.message}`);
  });
  server.listen(config.port, config.host, () => {
    listening = true;
    const address = server.address();
    logger.info(
      {
        port: typeof address === "object" && address ? address.port : config.port,
        model: { name: model.name, version: model.version, platform: model.platform },
        startupMs: Math.round(performance.now() - startedAt),
      },
      "ready",
    );
  });

  const shutdown = (signal: NodeJS.Signals): void => {
    if (draining) return;
    draining = true;
    logger.info({ signal, graceSeconds: config.shutdownGraceSeconds }, "draining");
    const deadline = setTimeout(() => {
      logger.error("grace period over with requests still in flight; closing them");
      server.closeAllConnections();
      process.exit(1);
    }, config.shutdownGraceSeconds * 1000);
    deadline.unref();
    // Stops accepting; idle keep-alive sockets close now, busy ones after their response.
    server.close(() => {
      void model.close().finally(() => {
        logger.info("stopped");
        process.exit(0);
      });
    });
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
}

main().catch((error: unknown) => {
  die(`unexpected start-up failure: ${(error as Error).stack ?? String(error)}`);
});
