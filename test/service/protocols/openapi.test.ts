import Ajv2020 from "ajv/dist/2020";
import request from "supertest";
import { appFor, identityModel } from "./support";

interface Operation {
  requestBody?: { content: Record<string, { schema?: Record<string, unknown> }> };
  responses: Record<string, unknown>;
}
type Document = { openapi: string; paths: Record<string, Record<string, Operation>> };

const VALID_BODIES: Record<string, unknown> = {
  "/score": { X: [[1, 2]] },
  "/api/v1.0/predictions": { data: { names: ["a"], ndarray: [[1]] }, meta: { puid: "p" } },
  "/predict": { data: { tensor: { shape: [1, 1], values: [1] } } },
  "/v2/models/{name}/infer": {
    id: "1",
    inputs: [{ name: "input", shape: [1], datatype: "FP32", data: [1] }],
    outputs: [{ name: "output" }],
  },
  "/v2/models/{name}/versions/{version}/infer": {
    inputs: [{ name: "input", shape: [1], datatype: "BYTES", data: ["a"] }],
  },
  "/v1/models/{name}:predict": { instances: [[1, 2]] },
  "/invocations": { dataframe_split: { columns: ["a"], data: [[1]] }, params: {} },
};

const INVALID_BODIES: Record<string, unknown> = {
  "/score": { X: "rows" },
  "/api/v1.0/predictions": { data: { tensor: { shape: [-1], values: [] } } },
  "/predict": { data: { names: "a" } },
  "/v2/models/{name}/infer": {
    inputs: [{ name: "input", shape: [1], datatype: "FLOAT", data: [1] }],
  },
  "/v2/models/{name}/versions/{version}/infer": { inputs: "x" },
  "/v1/models/{name}:predict": { instances: 3 },
  "/invocations": { dataframe_records: [1] },
};

describe("GET /openapi.json", () => {
  let doc: Document;
  beforeAll(async () => {
    const res = await request(appFor(identityModel())).get("/openapi.json");
    expect(res.status).toBe(200);
    doc = res.body;
  });

  it("documents every protocol route", () => {
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        "/score",
        "/api/v1.0/predictions",
        "/predict",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/versions/{version}/ready",
        "/v2/models/{name}/versions/{version}/infer",
        "/v1/models",
        "/v1/models/{name}",
        "/v1/models/{name}:predict",
        "/invocations",
        "/ping",
        "/health",
        "/version",
      ]),
    );
  });

  it.each(Object.keys(VALID_BODIES))(
    "publishes for POST %s the schema the server validates with",
    async (path) => {
      const schema = doc.paths[path].post.requestBody?.content["application/json"].schema;
      expect(schema).toMatchObject({ type: "object", properties: expect.any(Object) });
      const validate = new Ajv2020({ strict: false }).compile(schema as object);
      expect(validate(VALID_BODIES[path])).toBe(true);
      expect(validate(INVALID_BODIES[path])).toBe(false);

      // The server agrees: the invalid body is refused by validation, never by a later stage.
      const concrete = path.replace("{name}", "identity").replace("{version}", "1");
      const res = await request(appFor(identityModel()))
        .post(concrete)
        .send(INVALID_BODIES[path] as object);
      expect(res.status).toBe(400);
    },
  );

  it("documents CSV for MLflow's /invocations", () => {
    expect(Object.keys(doc.paths["/invocations"].post.requestBody?.content ?? {})).toEqual([
      "application/json",
      "text/csv",
    ]);
  });
});
