import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Model } from "../model/model";
import type { BodyBudget } from "./body";
import { withPredict } from "../model/with-predict";

/** Buckets in seconds, dense below 10 ms where a scoring request should land. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** The service's Prometheus metrics, kept in their own registry so every app has its own. */
export class Metrics {
  readonly registry: Registry;
  readonly requestDuration: Histogram<"method" | "route" | "status">;
  readonly inferenceDuration: Histogram<"model">;
  readonly inferenceErrors: Counter<"model">;
  readonly batchSize: Histogram;
  readonly batchWait: Histogram;

  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    collectDefaultMetrics({ register: registry });
    this.requestDuration = new Histogram({
      name: "http_request_duration_seconds",
      help: "Time from request to the end of the response, by route template and status code; its _count counts requests.",
      labelNames: ["method", "route", "status"],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
    this.inferenceDuration = new Histogram({
      name: "model_inference_duration_seconds",
      help: "Time spent in Model.predict.",
      labelNames: ["model"],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
    this.batchSize = new Histogram({
      name: "model_batch_size",
      help: "Requests stacked into one model run (1: the request ran alone).",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: [registry],
    });
    this.batchWait = new Histogram({
      name: "model_batch_wait_seconds",
      help: "Time a request waited for its model run to start, from the moment it reached the model.",
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers: [registry],
    });
    this.inferenceErrors = new Counter({
      name: "model_inference_errors_total",
      help: "Model.predict calls that failed inside the runtime.",
      labelNames: ["model"],
      registers: [registry],
    });
  }

  /** Publishes how many request-body bytes `budget` holds, read at each scrape. */
  watchBodyBudget(budget: BodyBudget): void {
    new Gauge({
      name: "http_request_body_bytes_in_flight",
      help: "Bytes of request bodies held by requests in flight, against MAX_BODY_BYTES_IN_FLIGHT.",
      registers: [this.registry],
      collect() {
        this.set(budget.heldBytes);
      },
    });
  }

  /** Zeroes what counts requests and model runs: what the warm-up sent is not clients' traffic. */
  forgetRequests(): void {
    for (const metric of [
      this.requestDuration,
      this.inferenceDuration,
      this.inferenceErrors,
      this.batchSize,
      this.batchWait,
    ]) {
      metric.reset();
    }
    // Unlabelled series are shown from the start, at zero, as before any request.
    this.batchSize.zero({});
    this.batchWait.zero({});
  }

  /** Records one model run that stacked requests which waited `waitedMs` each. */
  observeRun(waitedMs: readonly number[]): void {
    this.batchSize.observe(waitedMs.length);
    for (const ms of waitedMs) this.batchWait.observe(ms / 1000);
  }

  /** Publishes `model_info` and returns a model whose `predict` is timed. */
  instrument(model: Model): Model {
    new Gauge({
      name: "model_info",
      help: "The model this process serves; always 1.",
      labelNames: ["name", "version", "platform"],
      registers: [this.registry],
    }).set({ name: model.name, version: model.version, platform: model.platform }, 1);
    const duration = this.inferenceDuration.labels(model.name);
    const errors = this.inferenceErrors.labels(model.name);
    return withPredict(model, async (inputs) => {
      const end = duration.startTimer();
      try {
        return await model.predict(inputs);
      } catch (error) {
        errors.inc();
        throw error;
      } finally {
        end();
      }
    });
  }
}
