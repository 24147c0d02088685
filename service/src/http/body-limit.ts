import type { Model } from "../model/model";

/** Room for everything in a body besides the values: field names, ids, shapes, parameters. */
export const ENVELOPE_BYTES = 64 * 1024;
/**
 * Room for one value as JSON text: the longest a JS number prints (`-1.7976931348623157e+308`
 * is 24 characters) plus a separator and indentation.
 */
export const BYTES_PER_VALUE = 32;
/** The limit when the model does not bound its rows (dynamic dimensions, strings, identity). */
export const UNBOUNDED_MODEL_BODY_BYTES = 1024 * 1024;

/**
 * The largest body a valid request needs: `maxBatchSize` rows of the model's inputs. Each value
 * takes BYTES_PER_VALUE, plus its column name and quotes when the model names its features
 * (MLflow's `dataframe_records` repeats the names in every row), and the body ENVELOPE_BYTES:
 *
 *   64 KiB + maxBatchSize × (values per row) × (32 + longest feature name + 4)
 *
 * The iris model (4 values a row, names up to 12 characters) at 1024 rows: 64 KiB + 192 KiB.
 * A model whose row size is not fixed (a dynamic dimension past the batch one, BYTES inputs, or
 * the identity model) gets UNBOUNDED_MODEL_BODY_BYTES.
 */
export function defaultBodyLimit(model: Model, maxBatchSize: number): number {
  let valuesPerRow = 0;
  for (const input of model.inputs) {
    if (input.shape === null || input.datatype === null || input.datatype === "BYTES") {
      return UNBOUNDED_MODEL_BODY_BYTES;
    }
    const rowDims = input.shape.slice(1);
    if (rowDims.some((dim) => dim < 0)) return UNBOUNDED_MODEL_BODY_BYTES;
    valuesPerRow += rowDims.reduce((product, dim) => product * dim, 1);
  }
  const longestName = Math.max(0, ...(model.featureNames ?? []).map((name) => name.length));
  const perValue = BYTES_PER_VALUE + (longestName > 0 ? longestName + 4 : 0);
  return ENVELOPE_BYTES + maxBatchSize * valuesPerRow * perValue;
}

/** Request-body bytes held at once unless configured, or the body limit if that is larger. */
export const DEFAULT_BODY_BYTES_IN_FLIGHT = 32 * 1024 * 1024;

/** The body limits a service runs with, resolved from what was configured. */
export interface ResolvedBodyLimits {
  readonly limitBytes: number;
  readonly bytesInFlight: number;
}

/**
 * Fills in the defaults: the bytes in flight from DEFAULT_BODY_BYTES_IN_FLIGHT (raised to a
 * configured body limit), the body limit from the model (`defaultBodyLimit`), lowered to the
 * bytes in flight, since a body that can never fit could never be read.
 */
export function resolveBodyLimits(options: {
  readonly model: Model;
  readonly maxBatchSize: number;
  readonly limitBytes?: number;
  readonly bytesInFlight?: number;
}): ResolvedBodyLimits {
  const bytesInFlight =
    options.bytesInFlight ?? Math.max(DEFAULT_BODY_BYTES_IN_FLIGHT, options.limitBytes ?? 0);
  const limitBytes =
    options.limitBytes ??
    Math.min(defaultBodyLimit(options.model, options.maxBatchSize), bytesInFlight);
  return { limitBytes, bytesInFlight };
}

/** How long a request body may take to arrive unless configured: stalled bodies go in seconds. */
export const DEFAULT_BODY_TIMEOUT_SECONDS = 10;
