import type { Request, RequestHandler, Response, Router } from "express";
import { notFound, type ApiError } from "../http/errors";
import type { Model } from "../model/model";
import { quote } from "./quote";

/** What every protocol adapter receives from the app. */
export interface ProtocolContext {
  /** The loaded model, already instrumented for inference metrics. */
  readonly model: Model;
  /** Most rows (first dimension) one request may carry. */
  readonly maxBatchSize: number;
  /**
   * Reads and parses the request body (JSON, or CSV as text) within the service's limits. Every
   * route that takes a body lists it before its handler, so a body is read only once its route
   * is known, and a failure is counted and answered under that route.
   */
  readonly readBody: RequestHandler;
  /** Whether the process is ready to take traffic (model loaded, not draining). */
  readonly isReady: () => boolean;
}

/** OpenAPI 3.1 path items keyed by path, in OpenAPI's own path-template syntax. */
export type OpenApiPaths = Record<string, Record<string, unknown>>;

/**
 * One wire protocol: its routes, its error format and its part of the OpenAPI document.
 * The app mounts `router` at the root and sends errors raised under `prefixes` through
 * `formatError`, so a client always gets errors in the format its protocol defines.
 */
export interface Protocol {
  readonly name: string;
  /** Path prefixes this protocol owns, used to pick the error format. */
  readonly prefixes: readonly string[];
  router(context: ProtocolContext): Router;
  /** The JSON body to answer for a client error; the status comes from the error. */
  formatError(error: ApiError): unknown;
  /**
   * Generated from the same schemas that validate requests, narrowed to what `model` takes (its
   * columns and their element types).
   */
  openapi(model: Model): OpenApiPaths;
}

/**
 * Answers a readiness check: 200 while the process takes traffic, 503 while it loads or drains,
 * with the body `body(ready)` in the protocol's own words.
 */
export function answerReadiness(
  res: Response,
  isReady: () => boolean,
  body: (ready: boolean) => object,
): void {
  const ready = isReady();
  res.status(ready ? 200 : 503).json(body(ready));
}

/**
 * Checks the model name (and version, where the route has one) in a path such as
 * `/v2/models/:name/versions/:version`: any other model is not served here (404).
 */
export function resolveModel(model: Model, req: Request): void {
  const { name, version } = req.params as { name: string; version?: string };
  if (name !== model.name) {
    throw notFound(
      `model ${quote(name)} is not served here; this server serves model "${model.name}"`,
    );
  }
  if (version !== undefined && version !== model.version) {
    throw notFound(
      `model "${name}" has no version ${quote(version)}; this server serves version "${model.version}"`,
    );
  }
}
