import { parse } from "csv-parse/sync";
import { Router, type Request } from "express";
import { z } from "zod";
import { CSV_TYPES } from "../http/body";
import { ApiError, badRequest } from "../http/errors";
import type { Protocol } from "../http/protocol";
import type { Model, Tensor } from "../model/model";
import { SERVICE_VERSION } from "../version";
import { describeIssues, jsonResponse, requireParsedBody, toOpenApiSchema } from "./request-body";
import { decodeColumnar, decodeInstances, decodeRecords, decodeTable } from "./row-codec";
import { encodeNested, predictPrimary, type DecodeOptions } from "./tensor-codec";

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

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** CSV as MLflow reads it: a header of column names, then rows; numeric cells become numbers. */
function decodeCsv(model: Model, text: string, options: DecodeOptions): Tensor {
  let records: string[][];
  try {
    records = parse(text, { skip_empty_lines: true, trim: true });
  } catch (error) {
    throw badRequest(`malformed CSV: ${(error as Error).message}`);
  }
  if (records.length < 2) {
    throw badRequest("the CSV body needs a header row of column names and at least one data row");
  }
  const [header, ...rows] = records;
  const cells = rows.map((row) => row.map((cell) => (NUMBER.test(cell) ? Number(cell) : cell)));
  return decodeTable(model, header, cells, "CSV rows", options);
}

type Invocation = z.infer<typeof MlflowRequest>;

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
    return [decodeTable(model, columns, data, "dataframe_split.data", options)];
  }
  if (body.dataframe_records)
    return [decodeRecords(model, body.dataframe_records, "dataframe_records", options)];
  if (body.instances) return decodeInstances(model, body.instances, "instances", options);
  if (body.inputs) return decodeColumnar(model, body.inputs, "inputs", options);
  if (body.data === undefined)
    throw badRequest(
      `data is required beside columns; e.g. {"columns": ["a", "b"], "data": [[1, 2]]}`,
    );
  return [decodeTable(model, body.columns, body.data, "data", options)];
}

function decodeInvocation(model: Model, req: Request, options: DecodeOptions): Tensor[] {
  requireParsedBody(req, ["application/json", ...CSV_TYPES]);
  if (typeof req.body === "string") return [decodeCsv(model, req.body, options)];
  // MLflow 1.x clients sent records as a bare list (`format=pandas-records`).
  const body: unknown = Array.isArray(req.body) ? { dataframe_records: req.body } : req.body;
  const result = MlflowRequest.safeParse(body);
  if (!result.success) throw badRequest(describeIssues(result.error, "the invocation body"));
  return decodeJson(model, result.data, options);
}

const ERROR_CODES: Record<number, string> = {
  404: "RESOURCE_DOES_NOT_EXIST",
  503: "TEMPORARILY_UNAVAILABLE",
};

function requireReady(isReady: () => boolean): void {
  if (!isReady())
    throw new ApiError(503, "not ready: the model is loading or the server is draining");
}

/** MLflow's scoring server (`mlflow models serve`): `/invocations` with JSON or CSV. */
export const mlflow: Protocol = {
  name: "mlflow",
  prefixes: ["/invocations", "/ping", "/health", "/version"],
  router({ model, maxBatchSize, readBody, isReady }) {
    const router = Router();
    router.post("/invocations", readBody, async (req, res) => {
      const inputs = decodeInvocation(model, req, { maxBatchSize });
      const output = await predictPrimary(model, inputs);
      res.json({ predictions: encodeNested(output) });
    });
    for (const path of ["/ping", "/health"]) {
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
  openapi: {
    "/invocations": {
      post: {
        summary: "MLflow scoring: a data frame, instances or inputs in, predictions out.",
        requestBody: {
          required: true,
          content: {
            "application/json": { schema: toOpenApiSchema(MlflowRequest) },
            "text/csv": {
              schema: {
                type: "string",
                description: "A header row of column names, then one row per example.",
              },
            },
          },
        },
        responses: {
          "200": jsonResponse("The model's primary output.", MlflowResponse),
          "4XX": jsonResponse("A client error that says what to fix.", MlflowError),
        },
      },
    },
    "/ping": {
      get: {
        summary: "MLflow health: 200 when ready.",
        responses: {
          "200": { description: "Ready." },
          "503": jsonResponse("Not ready.", MlflowError),
        },
      },
    },
    "/health": {
      get: {
        summary: "MLflow health: 200 when ready.",
        responses: {
          "200": { description: "Ready." },
          "503": jsonResponse("Not ready.", MlflowError),
        },
      },
    },
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
  },
};
