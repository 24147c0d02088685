import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import fc from "fast-check";
import { DATA_TYPES, type Model } from "../../../service/src/model/model";
import { loadModel } from "../../../service/src/model/load";
import { sklearnModelPath } from "../../fixtures/sklearn-models";
import { IRIS_ROWS, appFor, identityModel, irisModel } from "./support";

/** skl2onnx's DataFrame pipeline: four inputs, one column each, of three element types. */
const churnModel = () =>
  loadModel({
    uri: sklearnModelPath("churn_pipeline"),
    name: "churn",
    version: "1",
    maxBytes: 1e7,
  });
const CHURN_COLUMNS = ["tenure_months", "monthly_charges", "contract", "support_calls"] as const;

/** Every POST route, for a model named `name` at version 1. */
const postRoutes = (name: string): string[] => [
  "/score",
  "/api/v1.0/predictions",
  "/predict",
  `/v2/models/${name}/infer`,
  `/v2/models/${name}/versions/1/infer`,
  `/v1/models/${name}:predict`,
  "/invocations",
];

const CONTENT_TYPES = [
  "application/json",
  "text/csv",
  "text/plain",
  "application/octet-stream",
  "",
];

/** A value near what a protocol expects: tensors of odd shapes, types and contents. */
const element = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.boolean(),
  fc.constantFrom("NaN", "Infinity", "1", "", "9007199254740993"),
  fc.constant(null),
  fc.jsonValue({ maxDepth: 2 }),
);
/** Well-formed rows of extreme numbers, so the model itself sees odd values. */
const numericRows = fc.array(
  fc.array(
    fc.oneof(
      { arbitrary: fc.double({ min: -1e6, max: 1e6, noNaN: true }), weight: 50 },
      { arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }), weight: 1 },
    ),
    { minLength: 4, maxLength: 4 },
  ),
  { minLength: 1, maxLength: 9 },
);
const rows = fc.oneof(
  numericRows,
  fc.array(fc.array(element, { maxLength: 6 }), { maxLength: 10 }),
  fc.array(element, { maxLength: 10 }),
  fc.jsonValue({ maxDepth: 4 }),
);
const v2Input = fc.record(
  {
    name: fc.constantFrom("input", "x", "", ...CHURN_COLUMNS),
    shape: fc.array(fc.integer({ min: -2, max: 5 }), { maxLength: 4 }),
    datatype: fc.constantFrom(...DATA_TYPES, "FLOAT", 3),
    data: rows,
    parameters: fc.jsonValue({ maxDepth: 1 }),
  },
  { requiredKeys: [] },
);
/** Bodies shaped like each protocol's, with random contents. */
const nearlyValid = fc.oneof(
  fc.record({ X: rows }),
  fc.record({
    data: fc.record(
      {
        names: fc.jsonValue({ maxDepth: 1 }),
        ndarray: rows,
        tensor: fc.record({ shape: rows, values: rows }, { requiredKeys: [] }),
      },
      { requiredKeys: [] },
    ),
  }),
  fc.record(
    {
      id: fc.jsonValue({ maxDepth: 1 }),
      inputs: fc.array(v2Input, { maxLength: 3 }),
      outputs: fc.jsonValue({ maxDepth: 2 }),
    },
    { requiredKeys: ["inputs"] },
  ),
  fc.record({ instances: rows }),
  fc.record({
    inputs: fc.oneof(
      rows,
      fc.dictionary(
        fc.constantFrom("input", "sepal_length", "petal_width", "x", ...CHURN_COLUMNS),
        rows,
      ),
    ),
  }),
  fc.record({
    dataframe_split: fc.record(
      { columns: fc.jsonValue({ maxDepth: 1 }), data: rows },
      { requiredKeys: [] },
    ),
  }),
  fc.record({
    dataframe_records: fc.array(
      fc.dictionary(
        fc.constantFrom(
          "sepal_length",
          "sepal_width",
          "petal_length",
          "petal_width",
          "a",
          ...CHURN_COLUMNS,
        ),
        element,
      ),
    ),
  }),
  fc.record(
    { columns: fc.jsonValue({ maxDepth: 1 }), data: rows, params: fc.jsonValue({ maxDepth: 1 }) },
    { requiredKeys: [] },
  ),
);

/** Each POST route with a body of its own protocol around `values`. */
const matchedRequest = (name: string) =>
  fc.oneof(
    rows.map((X) => ["/score", { X }] as const),
    rows.map((ndarray) => ["/api/v1.0/predictions", { data: { ndarray } }] as const),
    fc.tuple(rows, fc.constantFrom("FP32", "FP64", "INT64", "BOOL")).map(
      ([data, datatype]) =>
        [
          `/v2/models/${name}/infer`,
          {
            inputs: [
              {
                name: "input",
                datatype,
                shape: [Array.isArray(data) ? data.length : 1, 4],
                data,
              },
            ],
          },
        ] as const,
    ),
    rows.map((instances) => [`/v1/models/${name}:predict`, { instances }] as const),
    rows.map((data) => ["/invocations", { dataframe_split: { data } }] as const),
  );

describe.each([
  ["the iris classifier", irisModel, IRIS_ROWS],
  ["the identity model", async () => identityModel(), IRIS_ROWS],
  ["a DataFrame pipeline of mixed-type columns", churnModel, [[12, 70.25, "two-year", 3]]],
])("random requests to every POST route of %s", (_label, load, validRows) => {
  let model: Model;
  let server: Server;
  let base: string;
  beforeAll(async () => {
    model = await load();
    server = createServer(appFor(model));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await model.close();
  });

  const post = async (path: string, body: string | Uint8Array, type: string): Promise<Response> => {
    const res = await fetch(base + path, {
      method: "POST",
      body,
      headers: type === "" ? {} : { "content-type": type },
    });
    await res.arrayBuffer();
    return res;
  };
  const routes = () => fc.constantFrom(...postRoutes(model.name));
  const expectClientError = (res: Response) => {
    // A 200 is fine (the identity model takes almost anything); a 5xx never is.
    expect(res.status).toBeLessThan(500);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  };

  it("never answers 5xx to arbitrary JSON", async () => {
    await fc.assert(
      fc.asyncProperty(routes(), fc.jsonValue(), async (path, value) => {
        expectClientError(await post(path, JSON.stringify(value), "application/json"));
      }),
      { numRuns: 150 },
    );
  });

  it("never answers 5xx to bodies shaped like a protocol's with random contents", async () => {
    await fc.assert(
      fc.asyncProperty(routes(), nearlyValid, async (path, value) => {
        expectClientError(await post(path, JSON.stringify(value), "application/json"));
      }),
      { numRuns: 300 },
    );
  });

  it("never answers 5xx to each protocol's own body around random rows", async () => {
    await fc.assert(
      fc.asyncProperty(matchedRequest(model.name), async ([path, body]) => {
        expectClientError(await post(path, JSON.stringify(body), "application/json"));
      }),
      { numRuns: 300 },
    );
  });

  it("never answers 5xx to random bytes of any content type", async () => {
    await fc.assert(
      fc.asyncProperty(
        routes(),
        fc.uint8Array({ maxLength: 300 }),
        fc.constantFrom(...CONTENT_TYPES),
        async (path, bytes, type) => {
          expectClientError(await post(path, bytes, type));
        },
      ),
      { numRuns: 150 },
    );
  });

  it("never answers 5xx to random CSV", async () => {
    const cell = fc.oneof(
      fc.double().map(String),
      fc.string({ maxLength: 5 }),
      fc.constantFrom("NaN", '"', ""),
    );
    const csv = fc
      .array(fc.array(cell, { minLength: 1, maxLength: 5 }), { maxLength: 6 })
      .map((lines) => lines.map((line) => line.join(",")).join("\n"));
    await fc.assert(
      fc.asyncProperty(csv, async (text) => {
        expectClientError(await post("/invocations", text, "text/csv"));
      }),
      { numRuns: 100 },
    );
  });

  it("keeps serving afterwards", async () => {
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const res = await post("/score", JSON.stringify({ X: validRows }), "application/json");
    expect(res.status).toBe(200);
  });
});
