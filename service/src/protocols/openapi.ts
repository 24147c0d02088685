import { z } from "zod";
import { JSON_TYPE } from "../http/body";
import type { Model } from "../model/model";
import { SERVICE_VERSION } from "../version";
import type { OpenApiPaths, Protocol } from "./protocol";

type JsonSchema = Record<string, unknown>;

/**
 * The OpenAPI 3.1 document: the service's own routes, and each protocol's, generated from the same
 * zod schemas that validate its requests.
 */

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

/** A JSON Schema (2020-12, as OpenAPI 3.1 embeds it) of what a client may send. */
export function toOpenApiSchema(schema: z.ZodType): JsonSchema {
  const json: JsonSchema = z.toJSONSchema(schema, {
    io: "input",
    unrepresentable: "any",
  });
  // OpenAPI 3.1 fixes the dialect for the whole document.
  delete json.$schema;
  return json;
}

/**
 * An OpenAPI request body of JSON validated by `schema`, narrowed by `toModel` to what the served
 * model takes.
 */
export function jsonRequestBody(
  schema: z.ZodType,
  toModel: (json: JsonSchema) => JsonSchema = (json) => json,
): JsonSchema {
  return { required: true, content: { [JSON_TYPE]: { schema: toModel(toOpenApiSchema(schema)) } } };
}

/** An OpenAPI response with a JSON body described by `schema`. */
export function jsonResponse(description: string, schema: z.ZodType): JsonSchema {
  return { description, content: { [JSON_TYPE]: { schema: toOpenApiSchema(schema) } } };
}

/** The response to a client's mistake, in the protocol's error format `schema`. */
export function clientErrorResponse(schema: z.ZodType): JsonSchema {
  return jsonResponse("A client error that says what to fix.", schema);
}

/** A string parameter in the path, such as the model `name`. */
export function pathParameter(name: string): JsonSchema {
  return { name, in: "path", required: true, schema: { type: "string" } };
}
