import path from "node:path";
import type { Express } from "express";
import { createApp } from "../../../service/src/app";
import { IdentityModel } from "../../../service/src/model/identity";
import { loadModel } from "../../../service/src/model/load";
import type { Model } from "../../../service/src/model/model";
import { OnnxModel } from "../../../service/src/model/onnx";

/** Limits small enough that tests can cross them cheaply. */
export const MAX_BATCH_SIZE = 8;
export const BODY_LIMIT_BYTES = 4096;

export const IRIS_PATH = path.resolve(__dirname, "../../../service/models/iris.onnx");

/** A typical setosa, versicolor and virginica flower (classes 0, 1, 2). */
export const IRIS_ROWS = [
  [5.1, 3.5, 1.4, 0.2],
  [5.9, 2.8, 4.4, 1.3],
  [6.9, 3.1, 5.6, 2.2],
];

export function identityModel(): Model {
  return new IdentityModel({ name: "identity", version: "1" });
}

/** The built-in iris classifier with its feature and class names, as the service loads it. */
export function irisModel(): Promise<Model> {
  return loadModel({ uri: IRIS_PATH, name: "iris", version: "1", maxBytes: 10_000_000 });
}

export function onnxModel(bytes: Uint8Array, name: string): Promise<Model> {
  return OnnxModel.load(bytes, { name, version: "1" });
}

/** The real app around `model`, with the test limits. */
export function appFor(model: Model, isReady: () => boolean = () => true): Express {
  return createApp({
    model,
    maxBatchSize: MAX_BATCH_SIZE,
    bodyLimitBytes: BODY_LIMIT_BYTES,
    isReady,
  });
}

/** Index of the largest value: the predicted class of a row of probabilities. */
export function argmax(row: readonly number[]): number {
  return row.reduce((best, value, i) => (value > row[best] ? i : best), 0);
}
