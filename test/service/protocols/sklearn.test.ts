import type { Express } from "express";
import request from "supertest";
import { createApp } from "../../../service/src/app";
import { loadModel } from "../../../service/src/model/load";
import type { Model } from "../../../service/src/model/model";
import {
  SKLEARN_MODELS,
  expectedAnswers,
  sklearnModelPath,
  type Expected,
  type SklearnModel,
} from "../../fixtures/sklearn-models";

/**
 * The service's claim, checked end to end: a scikit-learn model exported by skl2onnx itself
 * (test/fixtures/sklearn/export_models.py) and served by the real loader and app answers, on every
 * protocol, what scikit-learn's own `predict` / `predict_proba` answer on the same held-out rows.
 * Labels must be equal; probabilities and regression values may differ by float32's rounding:
 * 1e-5, relative to the value where it exceeds 1 (a regression value of 200 in float32 is only
 * exact to about 1.5e-5).
 */

const TOLERANCE = 1e-5;

function expectClose(actual: readonly number[], expected: readonly number[], what: string): void {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((value, i) => {
    const bound = TOLERANCE * Math.max(1, Math.abs(expected[i]));
    if (!(Math.abs(value - expected[i]) <= bound)) {
      throw new Error(`${what}[${i}] is ${value}, scikit-learn says ${expected[i]} (±${bound})`);
    }
  });
}

/** The numbers a protocol answered for the rows: probabilities row by row, or one value per row. */
function expectSklearnAnswer(answer: unknown, expected: Expected, what: string): void {
  const flat = (answer as unknown[]).flat() as number[];
  if (expected.predict_proba) expectClose(flat, expected.predict_proba.flat(), what);
  else expectClose(flat, expected.predict as number[], what);
}

const reversed = <T>(list: readonly T[]): T[] => [...list].reverse();
const reversedRows = (rows: readonly unknown[][]): unknown[][] => rows.map(reversed);
const records = ({ columns, rows }: Expected) =>
  rows.map((row) =>
    Object.fromEntries(reversed(columns.map((column, c) => [column, row[c]] as const))),
  );
const csv = (columns: readonly string[], rows: readonly unknown[][]): string =>
  [columns.join(","), ...rows.map((row) => row.join(","))].join("\n") + "\n";

/** One request of one protocol built from the held-out rows, and where its answer is. */
interface Case {
  readonly protocol: string;
  readonly path: string;
  readonly body: (e: Expected) => object | string;
  readonly type?: string;
  readonly answer: (body: Record<string, unknown>) => unknown;
}

const predictions = (body: Record<string, unknown>) => body.predictions;
const ndarray = (body: Record<string, unknown>) => (body.data as { ndarray: unknown }).ndarray;

const CASES = (name: string): Case[] => [
  {
    protocol: "/score, rows",
    path: "/score",
    body: (e) => ({ X: e.rows }),
    answer: (b) => b.score,
  },
  {
    protocol: "/score, rows under names in another order",
    path: "/score",
    body: (e) => ({ X: reversedRows(e.rows), names: reversed(e.columns) }),
    answer: (b) => b.score,
  },
  {
    protocol: "Seldon v1, names + ndarray in another order",
    path: "/api/v1.0/predictions",
    body: (e) => ({ data: { names: reversed(e.columns), ndarray: reversedRows(e.rows) } }),
    answer: ndarray,
  },
  {
    protocol: "Seldon v1, tensor",
    path: "/predict",
    body: (e) => ({
      data: { tensor: { shape: [e.rows.length, e.columns.length], values: e.rows.flat() } },
    }),
    answer: (b) => (b.data as { tensor: { values: unknown } }).tensor.values,
  },
  {
    protocol: "KServe v1, instances as records",
    path: `/v1/models/${name}:predict`,
    body: (e) => ({ instances: records(e) }),
    answer: predictions,
  },
  {
    protocol: "KServe v1, instances as rows",
    path: `/v1/models/${name}:predict`,
    body: (e) => ({ instances: e.rows }),
    answer: predictions,
  },
  {
    protocol: "MLflow, dataframe_split in another column order",
    path: "/invocations",
    body: (e) => ({
      dataframe_split: { columns: reversed(e.columns), data: reversedRows(e.rows) },
    }),
    answer: predictions,
  },
  {
    protocol: "MLflow, dataframe_records",
    path: "/invocations",
    body: (e) => ({ dataframe_records: records(e) }),
    answer: predictions,
  },
  {
    protocol: "MLflow, inputs by column",
    path: "/invocations",
    body: (e) => ({
      inputs: Object.fromEntries(e.columns.map((column, c) => [column, e.rows.map((r) => r[c])])),
    }),
    answer: predictions,
  },
  {
    protocol: "MLflow, CSV in another column order",
    path: "/invocations",
    type: "text/csv",
    body: (e) => csv(reversed(e.columns), reversedRows(e.rows)),
    answer: predictions,
  },
];

describe.each(SKLEARN_MODELS)("scikit-learn's %s served", (name: SklearnModel) => {
  let model: Model;
  let app: Express;
  const expected = expectedAnswers(name);
  beforeAll(async () => {
    model = await loadModel({
      uri: sklearnModelPath(name),
      name,
      version: "1",
      maxBytes: 10_000_000,
    });
    app = createApp({ model, maxBatchSize: 64, bodyLimitBytes: 1_000_000 });
  });
  afterAll(() => model.close());

  it.each(CASES(name))("answers as scikit-learn on $protocol", async (c) => {
    const req = request(app).post(c.path);
    if (c.type) req.set("Content-Type", c.type);
    const res = await req.send(c.body(expected));
    expect(res.status).toBe(200);
    expectSklearnAnswer(c.answer(res.body), expected, c.protocol);
  });

  it("answers as scikit-learn on v2, each input a tensor built from the model's metadata", async () => {
    const metadata = await request(app).get(`/v2/models/${name}`);
    expect(metadata.status).toBe(200);
    const inputs = metadata.body.inputs as { name: string; datatype: string; shape: number[] }[];
    const count = expected.rows.length;
    const tensors = inputs.map((input, i) => {
      const oneColumn = inputs.length > 1;
      const data = oneColumn ? expected.rows.map((row) => row[i]) : expected.rows.flat();
      const shape = oneColumn ? [count, 1] : [count, expected.columns.length];
      return { name: input.name, datatype: input.datatype, shape, data };
    });
    const res = await request(app)
      .post(`/v2/models/${name}/infer`)
      .send({ inputs: reversed(tensors) });
    expect(res.status).toBe(200);
    const outputs = Object.fromEntries(
      (res.body.outputs as { name: string; data: unknown[] }[]).map((o) => [o.name, o.data]),
    );
    if (expected.predict_proba) {
      expect(outputs.label).toEqual(expected.predict);
      expectClose(
        outputs.probabilities as number[],
        expected.predict_proba.flat(),
        "probabilities",
      );
    } else {
      expectClose(outputs.variable as number[], expected.predict as number[], "variable");
    }
  });

  if (expected.classes) {
    it("names Seldon's answer columns by scikit-learn's classes", async () => {
      const res = await request(app)
        .post("/predict")
        .send({ data: { ndarray: expected.rows.slice(0, 1) } });
      expect(res.body.data.names).toEqual(expected.classes?.map(String));
    });
  }
});
