import type { Model } from "../model/model";
import { SERVICE_VERSION } from "../version";
import type { OpenApiPaths, Protocol } from "./protocol";

const SERVICE_PATHS: OpenApiPaths = {
  "/healthz": {
    get: {
      summary: "Liveness: the process answers.",
      responses: { "200": { description: "alive" } },
    },
  },
  "/readyz": {
    get: {
      summary: "Readiness: the model is loaded and the process is not draining.",
      responses: { "200": { description: "ready" }, "503": { description: "not ready" } },
    },
  },
  "/metrics": {
    get: {
      summary: "Prometheus metrics.",
      responses: { "200": { description: "text exposition" } },
    },
  },
  "/openapi.json": {
    get: { summary: "This document.", responses: { "200": { description: "OpenAPI 3.1" } } },
  },
};

/** The OpenAPI document of every route, assembled from each protocol's own schemas. */
export function buildOpenApi(
  protocols: readonly Protocol[],
  model: Model,
): Record<string, unknown> {
  const paths: OpenApiPaths = { ...SERVICE_PATHS };
  for (const protocol of protocols) Object.assign(paths, protocol.openapi(model));
  return {
    openapi: "3.1.0",
    info: {
      title: "mlscore scoring API",
      version: SERVICE_VERSION,
      description: `Serves model "${model.name}" version ${model.version} (${model.platform}).`,
    },
    paths,
  };
}
