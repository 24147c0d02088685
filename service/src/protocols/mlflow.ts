import { parse } from "csv-parse/sync";
import { Router, type Request } from "express";
import { z } from "zod";
import { CSV_TYPE, CSV_TYPES, JSON_TYPE } from "../http/body";
import { ApiError, badRequest } from "../http/errors";
import type { Protocol } from "./protocol";
import type { Model, Tensor } from "../model/model";
import { SERVICE_VERSION } from "../version";
import { namesSchema, narrow, recordSchema, rowSchema } from "./model-schema";
import { predictPrimary } from "./prediction";
import { clientErrorResponse, jsonResponse, toOpenApiSchema } from "./openapi";
import { describeIssues, requireParsedBody } from "./request-body";
import { decodeColumnar, decodeInstances, decodeRecords } from "./row-codec";
import { columnNames, decodeRows } from "./table";
import type { DecodeOptions } from "./tensor-decode";
import { encodeNested } from "./tensor-encode";

const EXAMPLE = '{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}';
const FORMATS = ["dataframe_split", "dataframe_records", "instances", "inputs"] as const;

const columnsSchema = (field: string) =>
  z.array(z.string({ error: `${field} must be a list of column names` }), {
    error: `${field} must be a list of column names`,
  });

const rowsSchema = (field: string) =>
  z.array(z.unknown(), { error: `${field} must be a list of rows, e.g. [[1, 2]]` });

const MlflowRequest = z
  .object({
    dataframe_split: z
      .object(
        {
          columns: columnsSchema("dataframe_split.columns").optional(),
          index: z.array(z.unknown()).optional().describe("Row labels; ignored."),
          data: rowsSchema("dataframe_split.data"),
        },
        { error: 'dataframe_split must be an object {"columns": [...], "data": [[...]]}' },
      )
      .optional()
      .describe("A pandas DataFrame in split orientation."),
    dataframe_records: z
      .array(
        z.record(z.string(), z.unknown(), {
          error: 'dataframe_records must be a list of {"column": value} objects',
        }),
        { error: 'dataframe_records must be a list of {"column": value} objects' },
      )
      .optional()
      .describe("A pandas DataFrame in records orientation."),
    instances: z
      .array(z.unknown(), { error: "instances must be a list of rows" })
      .optional()
      .describe("Rows, TensorFlow Serving style."),
    inputs: z
      .union([z.array(z.unknown()), z.record(z.string(), z.unknown())], {
        error: "inputs must be a list of rows or an object of named inputs",
      })
      .optional()
      .describe("Rows, or named inputs, TensorFlow Serving columnar style."),
    params: z
      .record(z.string(), z.unknown(), { error: "params must be an object" })
      .optional()
      .describe("Inference parameters; accepted and ignored."),
    columns: columnsSchema("columns").optional().describe("The older split format's column names."),
    data: rowsSchema("data").optional().describe("The older split format's rows."),
  })
  .meta({ title: "MlflowInvocation" });

const MlflowResponse = z
  .object({ predictions: z.unknown().describe("The model's primary output, one entry per row.") })
  .meta({ title: "MlflowPredictions" });

const MlflowError = z
  .object({ error_code: z.string(), message: z.string() })
  .meta({ title: "MlflowError" });

/** csv-parse quotes the offending field in some messages; a message shows at most this much. */
const CSV_MESSAGE_CHARS = 200;

/**
 * CSV as MLflow reads it: a header of column names, then rows. Each cell is read as its column's
 * element type (a number, a boolean, or text for a string column).
 */
function decodeCsv(model: Model, text: string, options: DecodeOptions): Tensor[] {
  let records: string[][];
  try {
    records = parse(text, { skip_empty_lines: true, trim: true });
  } catch (error) {
    const message = (error as Error).message;
    throw badRequest(
      `malformed CSV: ${message.length > CSV_MESSAGE_CHARS ? `${message.slice(0, CSV_MESSAGE_CHARS)}…` : message}`,
    );
  }
  if (records.length < 2) {
    throw badRequest("the CSV body needs a header row of column names and at least one data row");
  }
  const [header, ...rows] = records;
  return decodeRows(model, rows, header, "CSV rows", { ...options, text: true }, "the CSV header");
}

type Invocation = z.infer<typeof MlflowRequest>;

/** The request schema narrowed to the served model's columns. */
function modelRequestSchema(model: Model): Record<string, unknown> {
  const row = rowSchema(model);
  const rows = { items: row };
  const schema = toOpenApiSchema(MlflowRequest);
  narrow(schema, ["dataframe_split", "data"], rows);
  narrow(schema, ["dataframe_split", "columns"], namesSchema(model));
  narrow(schema, ["dataframe_records"], { items: recordSchema(model) });
  narrow(schema, ["instances"], { items: { anyOf: [row, recordSchema(model)] } });
  narrow(schema, ["columns"], namesSchema(model));
  return narrow(schema, ["data"], rows);
}

function csvColumns(model: Model): string {
  const names = columnNames(model);
  return names ? ` The model's columns: ${names.join(", ")}.` : "";
}

function decodeJson(model: Model, body: Invocation, options: DecodeOptions): Tensor[] {
  const given = FORMATS.filter((format) => body[format] !== undefined);
  const older = body.data !== undefined || body.columns !== undefined;
  if (given.length + (older ? 1 : 0) !== 1) {
    const found = [...given, ...(older ? ["columns/data"] : [])];
    throw badRequest(
      `send exactly one of ${FORMATS.join(", ")} (or the older columns/data)${found.length > 0 ? `, not ${found.join(" and ")}` : ""}; e.g. ${EXAMPLE}`,
    );
  }
  if (body.dataframe_split) {
    const { columns, data } = body.dataframe_split;
    return decodeRows(
      model,
      data,
      columns,
      "dataframe_split.data",
      options,
      "dataframe_split.columns",
    );
  }
  if (body.dataframe_records)
    return decodeRecords(model, body.dataframe_records, "dataframe_records", options);
  if (body.instances) return decodeInstances(model, body.instances, "instances", options);
  if (body.inputs) return decodeColumnar(model, body.inputs, "inputs", options);
  if (body.data === undefined)
    throw badRequest(
      `data is required beside columns; e.g. {"columns": ["a", "b"], "data": [[1, 2]]}`,
    );
  return decodeRows(model, body.data, body.columns, "data", options, "columns");
}

function decodeInvocation(model: Model, req: Request, options: DecodeOptions): Tensor[] {
  requireParsedBody(req, [JSON_TYPE, ...CSV_TYPES]);
  if (typeof req.body === "string") return decodeCsv(model, req.body, options);
  // MLflow 1.x clients sent records as a bare list (`format=pandas-records`).
  const body: unknown = Array.isArray(req.body) ? { dataframe_records: req.body } : req.body;
  const result = MlflowRequest.safeParse(body);
  if (!result.success) throw badRequest(describeIssues(result.error, "the invocation body"));
  return decodeJson(model, result.data, options);
}

/** The request field that holds the rows, for messages about them. */
function rowsField(req: Request): string {
  if (typeof req.body === "string") return "CSV rows";
  if (Array.isArray(req.body)) return "dataframe_records";
  const body = req.body as Record<string, unknown>;
  return FORMATS.find((format) => body[format] !== undefined) ?? "data";
}

const ERROR_CODES: Record<number, string> = {
  404: "RESOURCE_DOES_NOT_EXIST",
  503: "TEMPORARILY_UNAVAILABLE",
};

/** MLflow's two names for its readiness check. */
const HEALTH_PATHS = ["/ping", "/health"];

function requireReady(isReady: () => boolean): void {
  if (!isReady())
    throw new ApiError(503, "not ready: the model is loading or the server is draining");
}

/** MLflow's scoring server (`mlflow models serve`): `/invocations` with JSON or CSV. */
export const mlflow: Protocol = {
  name: "mlflow",
  prefixes: ["/invocations", ...HEALTH_PATHS, "/version"],
  router({ model, maxBatchSize, readBody, isReady }) {
    const router = Router();
    router.post("/invocations", readBody, async (req, res) => {
      const inputs = decodeInvocation(model, req, { maxBatchSize });
      const output = await predictPrimary(model, inputs, rowsField(req));
      res.json({ predictions: encodeNested(output) });
    });
    for (const path of HEALTH_PATHS) {
      router.get(path, (_req, res) => {
        requireReady(isReady);
        res.json({ status: "ready" });
      });
    }
    router.get("/version", (_req, res) => {
      res.type("text/plain").send(SERVICE_VERSION);
    });
    return router;
  },
  formatError: (error) => ({
    error_code:
      ERROR_CODES[error.status] ?? (error.status >= 500 ? "INTERNAL_ERROR" : "BAD_REQUEST"),
    message: error.message,
  }),
  openapi: (model) => ({
    "/invocations": {
      post: {
        summary: "MLflow scoring: a data frame, instances or inputs in, predictions out.",
        requestBody: {
          required: true,
          content: {
            [JSON_TYPE]: { schema: modelRequestSchema(model) },
            [CSV_TYPE]: {
              schema: {
                type: "string",
                description: `A header row of column names, then one row per example.${csvColumns(model)}`,
              },
            },
          },
        },
        responses: {
          "200": jsonResponse("The model's primary output.", MlflowResponse),
          "4XX": clientErrorResponse(MlflowError),
        },
      },
    },
    ...Object.fromEntries(
      HEALTH_PATHS.map((path) => [
        path,
        {
          get: {
            summary: "MLflow health: 200 when ready.",
            responses: {
              "200": { description: "Ready." },
              "503": jsonResponse("Not ready.", MlflowError),
            },
          },
        },
      ]),
    ),
    "/version": {
      get: {
        summary: "The service version.",
        responses: {
          "200": {
            description: "The version.",
            content: { "text/plain": { schema: { type: "string" } } },
          },
        },
      },
    },
  }),
};
