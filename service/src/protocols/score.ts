import { Router } from "express";
import { z } from "zod";
import type { Protocol } from "./protocol";
import { namesSchema, narrow, rowSchema } from "./model-schema";
import { predictPrimary } from "./prediction";
import { clientErrorResponse, jsonRequestBody, jsonResponse } from "./openapi";
import { parseJsonBody } from "./request-body";
import { decodeRows } from "./table";
import { encodeNested } from "./tensor-encode";

const ScoreRequest = z
  .object({
    X: z
      .array(z.unknown(), {
        error: 'X must be an array of rows of numbers, e.g. {"X": [[5.1, 3.5, 1.4, 0.2]]}',
      })
      .describe(
        "The model's input as nested arrays: one row per example. For a model of named columns, " +
          "each row holds the columns' values in the model's order, or in the order of names.",
      ),
    names: z
      .array(z.string(), { error: "names must be an array of column names (strings)" })
      .optional()
      .describe("The column names of the values in each row of X, in any order."),
  })
  .meta({ title: "ScoreRequest" });

const ScoreResponse = z
  .object({ score: z.unknown().describe("The model's primary output, nested like the input.") })
  .meta({ title: "ScoreResponse" });

const ScoreError = z.object({ error: z.string() }).meta({ title: "ScoreError" });

/**
 * The original tutorial's API: `{"X": [...]}` in, `{"score": [...]}` out. A model of several
 * named columns takes rows of them, ordered as the model lists its inputs, or as `names` says.
 */
export const score: Protocol = {
  name: "score",
  prefixes: ["/score"],
  router({ model, maxBatchSize, readBody }) {
    const router = Router();
    router.post("/score", readBody, async (req, res) => {
      const { X, names } = parseJsonBody(req, ScoreRequest, "the /score body");
      const inputs = decodeRows(model, X, names, "X", { maxBatchSize });
      const output = await predictPrimary(model, inputs, "X");
      res.json({ score: encodeNested(output) });
    });
    return router;
  },
  formatError: (error) => ({ error: error.message }),
  openapi: (model) => ({
    "/score": {
      post: {
        summary: "Score rows with the model (the original tutorial's API).",
        requestBody: jsonRequestBody(ScoreRequest, (json) =>
          narrow(narrow(json, ["X"], { items: rowSchema(model) }), ["names"], namesSchema(model)),
        ),
        responses: {
          "200": jsonResponse("The model's primary output.", ScoreResponse),
          "4XX": clientErrorResponse(ScoreError),
        },
      },
    },
  }),
};
