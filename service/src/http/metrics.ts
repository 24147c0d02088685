import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Model, Tensor } from "../model/model";

/** Buckets in seconds, dense below 10 ms where a scoring request should land. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** The service's Prometheus metrics, kept in their own registry so every app has its own. */
export class Metrics {
  readonly registry: Registry;
  readonly requestDuration: Histogram<"method" | "route" | "status">;
  readonly inferenceDuration: Histogram<"model">;
  readonly inferenceErrors: Counter<"model">;

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
    this.inferenceErrors = new Counter({
      name: "model_inference_errors_total",
      help: "Model.predict calls that failed inside the runtime.",
      labelNames: ["model"],
      registers: [registry],
    });
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
    return Object.freeze({
      name: model.name,
      version: model.version,
      platform: model.platform,
      inputs: model.inputs,
      outputs: model.outputs,
      primaryOutput: model.primaryOutput,
      featureNames: model.featureNames,
      classNames: model.classNames,
      close: () => model.close(),
      predict: async (inputs: readonly Tensor[]): Promise<Tensor[]> => {
        const end = duration.startTimer();
        try {
          return await model.predict(inputs);
        } catch (error) {
          errors.inc();
          throw error;
        } finally {
          end();
        }
      },
    });
  }
}
