import Ajv2020 from "ajv/dist/2020";
import type { Express } from "express";
import request, { type Response } from "supertest";
import { createApp } from "../../../service/src/app";
import { loadModel } from "../../../service/src/model/load";
import type { Model } from "../../../service/src/model/model";
import { expectedAnswers, sklearnModelPath } from "../../fixtures/sklearn-models";

/**
 * A model of named columns of mixed types, as skl2onnx exports a pipeline over a pandas DataFrame
 * (one input per column): every protocol carries its columns by name, and refuses a missing
 * column, an unknown one, a string where a number is due and a number where a string is due.
 */

const NAME = "churn_pipeline";
const COLUMNS = ["tenure_months", "monthly_charges", "contract", "support_calls"];
const DATATYPES: Record<string, string> = {
  tenure_months: "FP32",
  monthly_charges: "FP32",
  contract: "BYTES",
  support_calls: "INT64",
  plan: "BYTES",
};
const ROWS: unknown[][] = [
  [12, 70.25, "month-to-month", 3],
  [60, 30.5, "two-year", 0],
];

type Table = { columns: string[]; rows: unknown[][] };

/** The table with one column changed, dropped or added. */
const withColumn = ({ columns, rows }: Table, column: string, value?: unknown): Table => {
  const at = columns.indexOf(column);
  if (value === undefined) {
    return {
      columns: columns.filter((_, c) => c !== at),
      rows: rows.map((r) => r.filter((_, c) => c !== at)),
    };
  }
  if (at < 0) return { columns: [...columns, column], rows: rows.map((r) => [...r, value]) };
  return { columns, rows: rows.map((r) => r.map((v, c) => (c === at ? value : v))) };
};

const asRecords = ({ columns, rows }: Table) =>
  rows.map((row) => Object.fromEntries(columns.map((column, c) => [column, row[c]])));

interface Route {
  readonly protocol: string;
  readonly path: string;
  readonly type?: string;
  readonly body: (table: Table) => object | string;
  readonly message: (res: Response) => string;
  /** CSV cells are text: a number in a string column is that text, so it is not an error. */
  readonly typesText?: boolean;
}

const error = (res: Response) => res.body.error as string;
const ROUTES: Route[] = [
  {
    protocol: "/score",
    path: "/score",
    body: (t) => ({ X: t.rows, names: t.columns }),
    message: error,
  },
  {
    protocol: "Seldon v1",
    path: "/api/v1.0/predictions",
    body: (t) => ({ data: { names: t.columns, ndarray: t.rows } }),
    message: (res) => res.body.status.info,
  },
  {
    protocol: "v2",
    path: `/v2/models/${NAME}/infer`,
    body: (t) => ({
      inputs: t.columns.map((column, c) => ({
        name: column,
        datatype: DATATYPES[column],
        shape: [t.rows.length, 1],
        data: t.rows.map((row) => row[c]),
      })),
    }),
    message: error,
  },
  {
    protocol: "KServe v1",
    path: `/v1/models/${NAME}:predict`,
    body: (t) => ({ instances: asRecords(t) }),
    message: error,
  },
  {
    protocol: "MLflow dataframe_split",
    path: "/invocations",
    body: (t) => ({ dataframe_split: { columns: t.columns, data: t.rows } }),
    message: (res) => res.body.message,
  },
  {
    protocol: "MLflow dataframe_records",
    path: "/invocations",
    body: (t) => ({ dataframe_records: asRecords(t) }),
    message: (res) => res.body.message,
  },
  {
    protocol: "MLflow CSV",
    path: "/invocations",
    type: "text/csv",
    body: (t) => [t.columns.join(","), ...t.rows.map((row) => row.join(","))].join("\n"),
    message: (res) => res.body.message,
    typesText: true,
  },
];

describe("a model of named, mixed-type columns (skl2onnx's DataFrame pipeline)", () => {
  let model: Model;
  let app: Express;
  beforeAll(async () => {
    model = await loadModel({
      uri: sklearnModelPath(NAME),
      name: NAME,
      version: "1",
      maxBytes: 1e7,
    });
    app = createApp({ model, maxBatchSize: 16, bodyLimitBytes: 100_000 });
  });
  afterAll(() => model.close());

  const base: Table = { columns: COLUMNS, rows: ROWS };
  const post = (route: Route, table: Table) => {
    const req = request(app).post(route.path);
    if (route.type) req.set("Content-Type", route.type);
    return req.send(route.body(table));
  };

  it("reads its input contract from the model: names, element types and shapes", () => {
    expect(model.inputs).toEqual([
      { name: "tenure_months", datatype: "FP32", shape: [-1, 1] },
      { name: "monthly_charges", datatype: "FP32", shape: [-1, 1] },
      { name: "contract", datatype: "BYTES", shape: [-1, 1] },
      { name: "support_calls", datatype: "INT64", shape: [-1, 1] },
    ]);
    expect(model.outputs).toEqual([
      { name: "label", datatype: "BYTES", shape: [-1] },
      { name: "probabilities", datatype: "FP32", shape: [-1, 2] },
    ]);
    expect(expectedAnswers(NAME).columns).toEqual(COLUMNS);
  });

  it("lists every input in its v2 metadata", async () => {
    const res = await request(app).get(`/v2/models/${NAME}`);
    expect(res.body.inputs).toEqual(
      COLUMNS.map((name) => ({ name, datatype: DATATYPES[name], shape: [-1, 1] })),
    );
  });

  describe.each(ROUTES)("on $protocol", (route) => {
    it("scores columns sent in any order alike", async () => {
      const inOrder = await post(route, base);
      const reversed = await post(route, {
        columns: [...COLUMNS].reverse(),
        rows: ROWS.map((row) => [...row].reverse()),
      });
      expect(inOrder.status).toBe(200);
      expect(reversed.status).toBe(200);
      expect(reversed.body).toEqual(inOrder.body);
    });

    it("answers a missing column with 400 naming it", async () => {
      const res = await post(route, withColumn(base, "contract"));
      expect(res.status).toBe(400);
      expect(route.message(res)).toMatch(/lacks .*"contract"/);
    });

    it("answers an unknown column with 400 naming it", async () => {
      const res = await post(route, withColumn(base, "plan", "gold"));
      expect(res.status).toBe(400);
      expect(route.message(res)).toMatch(/unknown (column|key)s? "plan"|"plan" is not an input/);
    });

    it("answers a string where a number is due with 400 naming the column", async () => {
      const res = await post(route, withColumn(base, "tenure_months", "many"));
      expect(res.status).toBe(400);
      expect(route.message(res)).toMatch(
        /(tenure_months|column "tenure_months"|inputs\[0\]).* is the string "many", expected a number \(FP32\)|is the string "many", expected a number \(FP32\)/,
      );
    });

    it("answers a word where an integer is due with 400", async () => {
      const res = await post(route, withColumn(base, "support_calls", "2.5"));
      expect(res.status).toBe(400);
      expect(route.message(res)).toMatch(/"2.5", expected an integer \(INT64\)/);
    });

    if (!route.typesText) {
      it("answers a number where a string is due with 400 naming the column", async () => {
        const res = await post(route, withColumn(base, "contract", 5));
        expect(res.status).toBe(400);
        expect(route.message(res)).toMatch(
          /contract.* is 5, expected a string \(BYTES\)|is 5, expected a string \(BYTES\)/,
        );
      });
    }
  });

  it("names the column of a bad value in rows", async () => {
    const res = await request(app)
      .post("/score")
      .send({ X: [[12, 70.25, 7, 3]] });
    expect(res.body.error).toBe('X[0][2] (column "contract") is 7, expected a string (BYTES)');
  });

  it("takes /score rows without names in the model's column order, and no other width", async () => {
    expect((await request(app).post("/score").send({ X: ROWS })).status).toBe(200);
    const res = await request(app)
      .post("/score")
      .send({ X: [[12, 70.25, "two-year"]] });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(
      /each row of X has 3 values, expected rows of 4 values: the columns "tenure_months", "monthly_charges", "contract", "support_calls"/,
    );
  });

  describe("GET /openapi.json", () => {
    let doc: {
      paths: Record<
        string,
        { post: { requestBody: { content: Record<string, { schema: object }> } } }
      >;
    };
    beforeAll(async () => {
      doc = (await request(app).get("/openapi.json")).body;
    });
    const schemaOf = (path: string) =>
      new Ajv2020({ strict: false }).compile(
        doc.paths[path].post.requestBody.content["application/json"].schema,
      );

    it.each([
      ["/score", { X: ROWS, names: COLUMNS }, { X: [[12, 70.25, 7, 3]] }],
      ["/predict", { data: { ndarray: ROWS } }, { data: { names: ["plan"], ndarray: ROWS } }],
      [
        "/invocations",
        { dataframe_records: asRecords(base) },
        { dataframe_records: asRecords(withColumn(base, "plan", "x")) },
      ],
      [
        "/invocations",
        { dataframe_split: { columns: COLUMNS, data: ROWS } },
        { dataframe_split: { data: [["12", 70.25, "two-year", 3]] } },
      ],
      [
        `/v1/models/{name}:predict`,
        { instances: asRecords(base) },
        { instances: asRecords(withColumn(base, "contract")) },
      ],
      [
        "/v2/models/{name}/infer",
        ROUTES[2].body(base) as object,
        { inputs: [{ name: "contract", datatype: "FP32", shape: [1, 1], data: [1] }] },
      ],
    ])("describes the columns the model takes for POST %s", async (path, valid, invalid) => {
      const validate = schemaOf(path);
      expect(validate(valid)).toBe(true);
      expect(validate(invalid)).toBe(false);
      // The server refuses what the document refuses.
      const concrete = path.replace("{name}", NAME);
      expect((await request(app).post(concrete).send(invalid)).status).toBe(400);
    });
  });
});
