import { Router } from "express";
import { z } from "zod";
import type { Protocol } from "../http/protocol";
import { jsonRequestBody, jsonResponse, parseJsonBody } from "./request-body";
import { decodeSingleInput, encodeNested, predictPrimary } from "./tensor-codec";

const ScoreRequest = z
  .object({
    X: z
      .array(z.unknown(), {
        error: 'X must be an array of rows of numbers, e.g. {"X": [[5.1, 3.5, 1.4, 0.2]]}',
      })
      .describe("The model's input as nested arrays: one row per example."),
  })
  .meta({ title: "ScoreRequest" });

const ScoreResponse = z
  .object({ score: z.unknown().describe("The model's primary output, nested like the input.") })
  .meta({ title: "ScoreResponse" });

const ScoreError = z.object({ error: z.string() }).meta({ title: "ScoreError" });

/** The original tutorial's API: `{"X": [...]}` in, `{"score": [...]}` out. */
export const score: Protocol = {
  name: "score",
  prefixes: ["/score"],
  router({ model, maxBatchSize, readBody }) {
    const router = Router();
    router.post("/score", readBody, async (req, res) => {
      const { X } = parseJsonBody(req, ScoreRequest, "the /score body");
      const input = decodeSingleInput(model, X, "X", { maxBatchSize });
      const output = await predictPrimary(model, [input]);
      res.json({ score: encodeNested(output) });
    });
    return router;
  },
  formatError: (error) => ({ error: error.message }),
  openapi: {
    "/score": {
      post: {
        summary: "Score rows with the model (the original tutorial's API).",
        requestBody: jsonRequestBody(ScoreRequest),
        responses: {
          "200": jsonResponse("The model's primary output.", ScoreResponse),
          "4XX": jsonResponse("A client error that says what to fix.", ScoreError),
        },
      },
    },
  },
};
