import { Writable } from "node:stream";
import request from "supertest";
import { createApp } from "../../service/src/app";
import { createLogger } from "../../service/src/log";
import { Metrics } from "../../service/src/http/metrics";
import { IdentityModel } from "../../service/src/model/identity";
import type { Model, Tensor } from "../../service/src/model/model";

/** The service's logger, its lines landing in `lines`, parsed. */
function capturingLogger(level = "info") {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger(level, stream), lines };
}

/** The identity model, except that predict fails inside the "runtime" with a secret in it. */
function brokenModel(): Model {
  const identity = new IdentityModel({ name: "broken", version: "1" });
  return Object.assign(Object.create(identity) as Model, {
    predict: async (_inputs: readonly Tensor[]): Promise<Tensor[]> => {
      throw new Error("runtime exploded at /secret/path");
    },
  });
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("createApp", () => {
  it("answers a runtime fault with a 500 that hides it, and logs it with the request id", async () => {
    const { logger, lines } = capturingLogger();
    const app = createApp({ model: brokenModel(), maxBatchSize: 8, bodyLimitBytes: 4096, logger });
    const response = await request(app)
      .post("/score")
      .set("x-request-id", "fault-1")
      .send({ X: [1, 2] });
    expect(response.status).toBe(500);
    expect(response.body).toEqual({
      error: "internal error; the request id in the x-request-id header locates it in the logs",
    });
    expect(JSON.stringify(response.body)).not.toContain("secret");
    await settle();
    // Warnings and errors: the fault's line only (the info lines say how the model runs).
    expect(lines.filter((line) => (line.level as number) >= 40)).toEqual([
      expect.objectContaining({
        level: 50,
        severity: "ERROR",
        message: "request completed",
        req: expect.objectContaining({ id: "fault-1", method: "POST", url: "/score" }),
        res: { statusCode: 500 },
        err: expect.objectContaining({ message: "runtime exploded at /secret/path" }),
      }),
    ]);
  });

  it("counts requests by route template, not by raw path", async () => {
    const metrics = new Metrics();
    const app = createApp({
      model: new IdentityModel({ name: "identity", version: "1" }),
      maxBatchSize: 8,
      bodyLimitBytes: 4096,
      metrics,
    });
    await request(app).get("/v2/models/identity");
    await request(app).get("/v2/models/other");
    await request(app).get("/no/such/path/123");
    await request(app).get("/no/such/path/456");
    await request(app)
      .post("/score")
      .send({ X: [1] });
    await request(app).post("/score").set("content-type", "application/json").send('{"X": [');
    const text = await metrics.registry.metrics();
    expect(text).toContain(
      'http_request_duration_seconds_count{method="GET",route="/v2/models/:name",status="200"} 1',
    );
    expect(text).toContain(
      'http_request_duration_seconds_count{method="GET",route="/v2/models/:name",status="404"} 1',
    );
    expect(text).toContain(
      'http_request_duration_seconds_count{method="GET",route="unmatched",status="404"} 2',
    );
    // A body that fails to parse is counted under the route it was sent to.
    expect(text).toContain(
      'http_request_duration_seconds_count{method="POST",route="/score",status="400"} 1',
    );
    expect(text).toContain('model_inference_duration_seconds_count{model="identity"} 1');
  });

  it("answers 503 on /readyz once not ready, and 404 in JSON for unknown routes", async () => {
    const app = createApp({
      model: new IdentityModel({ name: "identity", version: "1" }),
      maxBatchSize: 8,
      bodyLimitBytes: 4096,
      isReady: () => false,
    });
    expect((await request(app).get("/readyz")).status).toBe(503);
    expect((await request(app).get("/healthz")).status).toBe(200);
    const missing = await request(app).get("/nope");
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ error: "no route for GET /nope; see GET /openapi.json" });
  });
});
