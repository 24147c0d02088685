import { Router } from "express";
import { z } from "zod";
import { badRequest } from "../http/errors";
import { DATA_TYPES, type Model, type Tensor, type TensorSpec } from "../model/model";
import { SERVICE_VERSION } from "../version";
import { narrowInputs } from "./model-schema";
import { predictOutputs } from "./prediction";
import { answerReadiness, resolveModel, type OpenApiPaths, type Protocol } from "./protocol";
import { describeValue, quote } from "./quote";
import { clientErrorResponse, jsonRequestBody, jsonResponse, pathParameter } from "./openapi";
import { parseJsonBody, shapeSchema } from "./request-body";
import { formatShape } from "./spec-text";
import { shapedValues, toTensor } from "./tensor-decode";
import { encodeFlat } from "./tensor-encode";

const Parameters = z
  .record(z.string(), z.unknown())
  .describe("Extra parameters; accepted and ignored.");

const dataTypeError = (field: string) => (issue: { input: unknown }) =>
  `${field} must be one of ${DATA_TYPES.join(", ")} (got ${typeof issue.input === "string" ? quote(issue.input) : describeValue(issue.input)})`;

const RequestInput = z.object({
  name: z.string({ error: "inputs[].name must be the name of one of the model's inputs" }),
  shape: shapeSchema("inputs[].shape", "[1, 4]"),
  datatype: z.enum(DATA_TYPES, { error: dataTypeError("inputs[].datatype") }),
  data: z
    .array(z.unknown(), { error: "inputs[].data must be an array of values, flat or nested" })
    .describe("Values in row-major order, flat or nested as the shape says."),
  parameters: Parameters.optional(),
});

/** A v2 inference request body; golden requests (../gate/golden.ts) are the same. */
export const InferenceRequest = z
  .object({
    id: z.string({ error: "id must be a string" }).optional().describe("Echoed in the response."),
    parameters: Parameters.optional(),
    inputs: z
      .array(RequestInput, {
        error:
          'inputs must be an array of tensors, e.g. [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]',
      })
      .min(1, { error: "inputs must list at least one tensor" }),
    outputs: z
      .array(
        z.object({
          name: z.string({
            error: "outputs[].name must be the name of one of the model's outputs",
          }),
          parameters: Parameters.optional(),
        }),
        { error: 'outputs must be an array of {"name": ...} objects' },
      )
      .min(1, { error: "outputs must name at least one output; leave it out for all outputs" })
      .optional()
      .describe("Which outputs to return; all when absent."),
  })
  .meta({ title: "InferenceRequest" });

const MetadataTensor = z.object({
  name: z.string(),
  datatype: z.enum(DATA_TYPES),
  shape: z.array(z.int()),
});

const InferenceResponse = z
  .object({
    model_name: z.string(),
    model_version: z.string(),
    id: z.string().optional(),
    outputs: z.array(MetadataTensor.extend({ data: z.array(z.unknown()) })),
  })
  .meta({ title: "InferenceResponse" });

const ModelMetadata = z
  .object({
    name: z.string(),
    versions: z.array(z.string()),
    platform: z.string(),
    inputs: z.array(MetadataTensor),
    outputs: z.array(MetadataTensor),
  })
  .meta({ title: "MetadataModelResponse" });

const ServerMetadata = z
  .object({ name: z.string(), version: z.string(), extensions: z.array(z.string()) })
  .meta({ title: "MetadataServerResponse" });

const Readiness = z.object({ name: z.string().optional(), ready: z.boolean() });
const ErrorResponse = z.object({ error: z.string() }).meta({ title: "ErrorResponse" });

/**
 * Metadata must give every tensor a datatype and shape. The identity model takes any; it
 * advertises FP64 vectors, which it accepts, so generic clients can build a request from it.
 */
function metadataTensor(spec: TensorSpec): z.infer<typeof MetadataTensor> {
  return { name: spec.name, datatype: spec.datatype ?? "FP64", shape: [...(spec.shape ?? [-1])] };
}

function describeSpecs(specs: readonly TensorSpec[]): string {
  return specs
    .map((spec) => `"${spec.name}" (${spec.datatype ?? "any type"} ${formatShape(spec.shape)})`)
    .join(", ");
}

function decodeInputs(
  model: Model,
  inputs: z.infer<typeof InferenceRequest>["inputs"],
  maxBatchSize: number,
): Tensor[] {
  const seen = new Set<string>();
  const tensors = inputs.map((input, i) => {
    const field = `inputs[${i}]`;
    const spec = model.inputs.find((candidate) => candidate.name === input.name);
    if (!spec) {
      throw badRequest(
        `${field}.name ${quote(input.name)} is not an input of model "${model.name}"; it takes ${describeSpecs(model.inputs)}`,
      );
    }
    if (seen.has(input.name)) throw badRequest(`${field}.name "${input.name}" is sent twice`);
    seen.add(input.name);
    const values = shapedValues(input.shape, input.data, `${field}.data`, `${field}.shape`);
    return toTensor(spec, values, `${field}.data`, { maxBatchSize, datatype: input.datatype });
  });
  const missing = model.inputs.filter((spec) => !seen.has(spec.name));
  if (missing.length > 0) {
    throw badRequest(
      `inputs lacks ${describeSpecs(missing)}; model "${model.name}" takes ${describeSpecs(model.inputs)}`,
    );
  }
  return tensors;
}

function requestedOutputs(
  model: Model,
  outputs: z.infer<typeof InferenceRequest>["outputs"],
): string[] {
  if (!outputs) return model.outputs.map((spec) => spec.name);
  return outputs.map(({ name }, i) => {
    if (!model.outputs.some((spec) => spec.name === name)) {
      throw badRequest(
        `outputs[${i}].name ${quote(name)} is not an output of model "${model.name}"; its outputs are ${model.outputs.map((spec) => `"${spec.name}"`).join(", ")}`,
      );
    }
    return name;
  });
}

const MODEL_PATHS = ["/v2/models/:name", "/v2/models/:name/versions/:version"];

/** The Open Inference Protocol v2 (KServe, Triton, Seldon Core 2), REST binding, JSON tensors. */
export const v2: Protocol = {
  name: "v2",
  prefixes: ["/v2"],
  router({ model, maxBatchSize, readBody, isReady }) {
    const router = Router();
    router.get("/v2", (_req, res) => {
      res.json({ name: "mlscore", version: SERVICE_VERSION, extensions: [] });
    });
    router.get("/v2/health/live", (_req, res) => {
      res.json({ live: true });
    });
    router.get("/v2/health/ready", (_req, res) => {
      answerReadiness(res, isReady, (ready) => ({ ready }));
    });
    for (const base of MODEL_PATHS) {
      router.get(base, (req, res) => {
        resolveModel(model, req);
        res.json({
          name: model.name,
          versions: [model.version],
          platform: model.platform,
          inputs: model.inputs.map(metadataTensor),
          outputs: model.outputs.map(metadataTensor),
        });
      });
      router.get(`${base}/ready`, (req, res) => {
        resolveModel(model, req);
        answerReadiness(res, isReady, (ready) => ({ name: model.name, ready }));
      });
      router.post(`${base}/infer`, readBody, async (req, res) => {
        resolveModel(model, req);
        const body = parseJsonBody(req, InferenceRequest, "the inference request");
        const wanted = requestedOutputs(model, body.outputs);
        const inputs = decodeInputs(model, body.inputs, maxBatchSize);
        const outputs = await predictOutputs(model, inputs, wanted, "inputs");
        res.json({
          model_name: model.name,
          model_version: model.version,
          ...(body.id !== undefined && { id: body.id }),
          outputs: outputs.map((output) => ({
            name: output.name,
            datatype: output.datatype,
            shape: output.shape,
            data: encodeFlat(output),
          })),
        });
      });
    }
    return router;
  },
  formatError: (error) => ({ error: error.message }),
  openapi: buildOpenApi,
};

function buildOpenApi(model: Model): OpenApiPaths {
  const error = clientErrorResponse(ErrorResponse);
  const notFoundResponse = jsonResponse("No such model or version.", ErrorResponse);
  const readiness = {
    "200": jsonResponse("Ready.", Readiness),
    "503": jsonResponse("Not ready: loading or draining.", Readiness),
  };
  const paths: OpenApiPaths = {
    "/v2": {
      get: {
        summary: "Server metadata.",
        responses: { "200": jsonResponse("Server metadata.", ServerMetadata) },
      },
    },
    "/v2/health/live": {
      get: { summary: "Server liveness.", responses: { "200": { description: "Live." } } },
    },
    "/v2/health/ready": { get: { summary: "Server readiness.", responses: readiness } },
  };
  for (const base of ["/v2/models/{name}", "/v2/models/{name}/versions/{version}"]) {
    const parameters = base.includes("{version}")
      ? [pathParameter("name"), pathParameter("version")]
      : [pathParameter("name")];
    paths[base] = {
      get: {
        summary: "Model metadata: inputs and outputs with datatype and shape.",
        parameters,
        responses: {
          "200": jsonResponse("Model metadata.", ModelMetadata),
          "404": notFoundResponse,
        },
      },
    };
    paths[`${base}/ready`] = {
      get: {
        summary: "Model readiness.",
        parameters,
        responses: { ...readiness, "404": notFoundResponse },
      },
    };
    paths[`${base}/infer`] = {
      post: {
        summary: "Inference with typed tensors; `outputs` filters the answer.",
        parameters,
        requestBody: jsonRequestBody(InferenceRequest, (json) => narrowInputs(json, model)),
        responses: {
          "200": jsonResponse("The requested outputs.", InferenceResponse),
          "404": notFoundResponse,
          "4XX": error,
        },
      },
    };
  }
  return paths;
}
