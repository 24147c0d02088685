import { Router } from "express";
import { z } from "zod";
import { JSON_TYPE } from "../http/body";
import { badRequest } from "../http/errors";
import { narrow, recordSchema, rowSchema } from "./model-schema";
import { predictPrimary } from "./prediction";
import { answerReadiness, resolveModel, type Protocol } from "./protocol";
import { clientErrorResponse, jsonRequestBody, jsonResponse, pathParameter } from "./openapi";
import { parseJsonBody } from "./request-body";
import { decodeColumnar, decodeInstances } from "./row-codec";
import { encodeNested } from "./tensor-encode";

const EXAMPLE = '{"instances": [[5.1, 3.5, 1.4, 0.2]]}';

const PredictRequest = z
  .object({
    instances: z
      .array(z.unknown(), { error: `instances must be a list of rows, e.g. ${EXAMPLE}` })
      .optional()
      .describe(
        "Rows of the model's columns, records keyed by column, or objects keyed by input name " +
          "(TensorFlow Serving's row format).",
      ),
    inputs: z
      .union([z.array(z.unknown()), z.record(z.string(), z.unknown())], {
        error: "inputs must be a list of rows or an object of named inputs",
      })
      .optional()
      .describe("Rows, or named inputs (TensorFlow Serving's columnar format)."),
  })
  .meta({ title: "KServeV1PredictRequest" });

const PredictResponse = z
  .object({
    predictions: z.array(z.unknown()).describe("The model's primary output, one per row."),
  })
  .meta({ title: "KServeV1PredictResponse" });

const ModelStatus = z
  .object({ name: z.string(), ready: z.boolean() })
  .meta({ title: "KServeV1Model" });
const ErrorResponse = z.object({ error: z.string() }).meta({ title: "KServeV1Error" });

/** KServe's v1 protocol, TensorFlow Serving's REST predict API. */
export const kserveV1: Protocol = {
  name: "kserve-v1",
  prefixes: ["/v1/models"],
  router({ model, maxBatchSize, readBody, isReady }) {
    const router = Router();
    router.get("/v1/models", (_req, res) => {
      res.json({ models: [model.name] });
    });
    router.get("/v1/models/:name", (req, res) => {
      resolveModel(model, req);
      answerReadiness(res, isReady, (ready) => ({ name: model.name, ready }));
    });
    // path-to-regexp reads `:predict` as a parameter; the backslash makes it literal.
    router.post("/v1/models/:name\\:predict", readBody, async (req, res) => {
      resolveModel(model, req);
      const { instances, inputs } = parseJsonBody(req, PredictRequest, "the predict request");
      if ((instances === undefined) === (inputs === undefined)) {
        throw badRequest(`send exactly one of instances or inputs, e.g. ${EXAMPLE}`);
      }
      const field = instances ? "instances" : "inputs";
      const tensors = instances
        ? decodeInstances(model, instances, field, { maxBatchSize })
        : decodeColumnar(model, inputs, field, { maxBatchSize });
      const output = await predictPrimary(model, tensors, field);
      res.json({ predictions: encodeNested(output) });
    });
    return router;
  },
  formatError: (error) => ({ error: error.message }),
  openapi: (model) => ({
    "/v1/models": {
      get: {
        summary: "Served models.",
        responses: { "200": { description: "Model names.", content: { [JSON_TYPE]: {} } } },
      },
    },
    "/v1/models/{name}": {
      get: {
        summary: "Model readiness.",
        parameters: [pathParameter("name")],
        responses: {
          "200": jsonResponse("Ready.", ModelStatus),
          "404": jsonResponse("No such model.", ErrorResponse),
          "503": jsonResponse("Not ready.", ModelStatus),
        },
      },
    },
    "/v1/models/{name}:predict": {
      post: {
        summary: "Predict: instances or inputs in, predictions out.",
        parameters: [pathParameter("name")],
        requestBody: jsonRequestBody(PredictRequest, (json) =>
          narrow(json, ["instances"], {
            items: { anyOf: [rowSchema(model), recordSchema(model)] },
          }),
        ),
        responses: {
          "200": jsonResponse("The model's primary output.", PredictResponse),
          "404": jsonResponse("No such model.", ErrorResponse),
          "4XX": clientErrorResponse(ErrorResponse),
        },
      },
    },
  }),
};
