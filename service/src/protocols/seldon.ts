import { Router, type Request, type Response } from "express";
import { z } from "zod";
import { badRequest } from "../http/errors";
import type { Protocol } from "./protocol";
import type { Model, Tensor } from "../model/model";
import { jsonRequestBody, jsonResponse } from "./openapi";
import { parseJsonBody, shapeSchema } from "./request-body";
import { namesSchema, narrow, rowSchema } from "./model-schema";
import { predictPrimary } from "./prediction";
import { decodeRows, decodeTable } from "./table";
import { MAX_RANK, shapedValues } from "./tensor-decode";
import { encodeFlat, encodeNested } from "./tensor-encode";

const EXAMPLE = '{"data": {"ndarray": [[5.1, 3.5, 1.4, 0.2]]}}';

const SeldonTensor = z.object({
  shape: shapeSchema("data.tensor.shape", "[1, 4]").min(1, {
    error: "data.tensor.shape must list at least one dimension, e.g. [1, 4]",
  }),
  values: z.array(z.unknown(), {
    error: "data.tensor.values must be an array of numbers in row-major order",
  }),
});

const SeldonData = z
  .object({
    names: z
      .array(z.string(), { error: "data.names must be an array of column names (strings)" })
      .optional()
      .describe("Column names of the input's last dimension."),
    ndarray: z
      .array(z.unknown(), { error: "data.ndarray must be an array of rows, e.g. [[1, 2, 3, 4]]" })
      .optional()
      .describe("The input as nested arrays, one row per example."),
    tensor: SeldonTensor.optional().describe("The input as a shape and row-major values."),
  })
  .describe("Exactly one of ndarray or tensor.");

/** Whether `value` nests arrays or objects more than `limit` deep; iterative, so any depth is safe. */
function nestedDeeperThan(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop() as [unknown, number];
    if (node === null || typeof node !== "object") continue;
    if (depth >= limit) return true;
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
  return false;
}

const SeldonMeta = z
  .object({
    puid: z.string({ error: "meta.puid must be a string" }).optional(),
    // Tags are echoed in the answer, so they must be printable: not nested without end.
    tags: z
      .record(z.string(), z.unknown(), { error: "meta.tags must be an object" })
      .refine((tags) => !nestedDeeperThan(tags, MAX_RANK), {
        error: `meta.tags is nested more than ${MAX_RANK} levels deep; send flat tags`,
      })
      .optional(),
  })
  .loose();

const SeldonMessage = z
  .object({
    data: SeldonData.optional(),
    meta: SeldonMeta.optional().describe("Echoed back: puid and tags."),
  })
  .meta({ title: "SeldonMessage" });

const SeldonResponse = z
  .object({
    data: z.object({
      names: z.array(z.string()),
      ndarray: z.array(z.unknown()).optional(),
      tensor: z.object({ shape: z.array(z.int()), values: z.array(z.unknown()) }).optional(),
    }),
    meta: z.object({ requestPath: z.record(z.string(), z.string()) }).loose(),
  })
  .meta({ title: "SeldonMessageResponse" });

const SeldonStatus = z
  .object({
    status: z.object({
      code: z.int().describe("The HTTP status."),
      info: z.string().describe("What is wrong and how to fix it."),
      reason: z.string(),
      status: z.literal("FAILURE"),
    }),
  })
  .meta({ title: "SeldonStatus" });

/** Payload kinds of the Seldon message that carry no tensor and so cannot feed the model. */
const UNSUPPORTED_PAYLOADS = ["jsonData", "strData", "binData"] as const;

const REASONS: Record<number, string> = {
  400: "MICROSERVICE_BAD_DATA",
  404: "NOT_FOUND",
  413: "PAYLOAD_TOO_LARGE",
  415: "UNSUPPORTED_MEDIA_TYPE",
  503: "SERVICE_UNAVAILABLE",
};

function rejectUnsupported(req: Request): void {
  const body = req.body as Record<string, unknown>;
  for (const key of UNSUPPORTED_PAYLOADS) {
    if (body !== null && typeof body === "object" && key in body) {
      throw badRequest(
        `${key} is not supported: send data.ndarray or data.tensor, e.g. ${EXAMPLE}`,
      );
    }
  }
  const data = body?.data as Record<string, unknown> | undefined;
  if (data !== null && typeof data === "object" && "tftensor" in data) {
    throw badRequest(
      `data.tftensor is not supported: send data.ndarray or data.tensor, e.g. ${EXAMPLE}`,
    );
  }
}

/** Output column names as Seldon's Python wrapper reports them. */
function outputNames(model: Model, output: Tensor): string[] {
  if (output.shape.length !== 2) return [output.name];
  const columns = output.shape[1];
  if (output.name === model.primaryOutput && model.classNames?.length === columns) {
    return [...model.classNames];
  }
  return Array.from({ length: columns }, (_, i) => `t:${i}`);
}

/** Seldon Core v1's microservice API: a SeldonMessage in, a SeldonMessage out. */
export const seldon: Protocol = {
  name: "seldon",
  prefixes: ["/api/v1.0/predictions", "/predict"],
  router({ model, maxBatchSize, readBody }) {
    const router = Router();
    const predict = async (req: Request, res: Response): Promise<void> => {
      const message = parseJsonBody(req, SeldonMessage, "the SeldonMessage");
      rejectUnsupported(req);
      const { data, meta } = message;
      if (!data) throw badRequest(`data is required: send a SeldonMessage such as ${EXAMPLE}`);
      if ((data.ndarray === undefined) === (data.tensor === undefined)) {
        throw badRequest(`data must hold exactly one of ndarray or tensor, e.g. ${EXAMPLE}`);
      }
      const field = data.ndarray ? "data.ndarray" : "data.tensor.values";
      const options = { maxBatchSize };
      // Names pick the model's columns by name, in any order (Seldon's Python wrapper hands them
      // to the model beside the rows; here they reorder the rows' values).
      const inputs = data.tensor
        ? decodeTable(
            model,
            shapedValues(data.tensor.shape, data.tensor.values, field, "data.tensor.shape"),
            data.names,
            field,
            options,
            "data.names",
          )
        : decodeRows(model, data.ndarray, data.names, field, options, "data.names");
      const output = await predictPrimary(model, inputs, field);
      const names = outputNames(model, output);
      const encoded = data.tensor
        ? { names, tensor: { shape: output.shape, values: encodeFlat(output) } }
        : { names, ndarray: encodeNested(output) };
      const echoed = {
        ...(meta?.puid && { puid: meta.puid }),
        ...(meta?.tags && { tags: meta.tags }),
      };
      res.json({
        data: encoded,
        meta: { ...echoed, requestPath: { [model.name]: model.version } },
      });
    };
    router.post("/api/v1.0/predictions", readBody, predict);
    router.post("/predict", readBody, predict);
    return router;
  },
  formatError: (error) => ({
    status: {
      code: error.status,
      info: error.message,
      reason:
        REASONS[error.status] ??
        (error.status >= 500 ? "MICROSERVICE_INTERNAL_ERROR" : "BAD_REQUEST"),
      status: "FAILURE",
    },
  }),
  openapi: (model) =>
    Object.fromEntries(
      ["/api/v1.0/predictions", "/predict"].map((path) => [
        path,
        {
          post: {
            summary:
              "Seldon Core v1 prediction: data.ndarray or data.tensor in, the same encoding out.",
            requestBody: jsonRequestBody(SeldonMessage, (json) =>
              narrow(
                narrow(json, ["data", "ndarray"], { items: rowSchema(model) }),
                ["data", "names"],
                namesSchema(model),
              ),
            ),
            responses: {
              "200": jsonResponse(
                "The model's primary output with its column names.",
                SeldonResponse,
              ),
              "4XX": jsonResponse("A client error as a Seldon status.", SeldonStatus),
            },
          },
        },
      ]),
    ),
};
