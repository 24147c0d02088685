import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createApp } from "../../service/src/app";
import { createExpressServer } from "../../service/src/http/express-server";
import { Metrics } from "../../service/src/http/metrics";
import { loadModel } from "../../service/src/model/load";
import type { Model, Tensor } from "../../service/src/model/model";
import { warmUp, warmUpRequests } from "../../service/src/warm-up";
import { sklearnModelPath } from "../fixtures/sklearn-models";
import { identityModel, irisModel } from "./protocols/support";

/** Serves `model` on loopback, runs the warm-up against it, and counts what arrived. */
async function warmUpAgainst(model: Model, requests: number, maxMs?: number) {
  const metrics = new Metrics();
  const app = createApp({ model, maxBatchSize: 64, bodyLimitBytes: 1_000_000, metrics });
  const server: Server = createExpressServer(app);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const result = await warmUp(server.address() as AddressInfo, model, requests, maxMs);
    const { values } = await metrics.requestDuration.get();
    const counted = values.filter((value) => value.metricName?.endsWith("_count"));
    const byStatus = (status: string) =>
      counted
        .filter((value) => value.labels.status === status)
        .reduce((sum, value) => sum + value.value, 0);
    return { result, ok: byStatus("200"), refused: byStatus("400") };
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

describe("the warm-up", () => {
  it("sends every protocol a row the iris classifier answers, then the rest of its requests", async () => {
    const iris = await irisModel();
    try {
      expect(warmUpRequests(iris).map((request) => request.path)).toEqual([
        "/v2/models/iris/infer",
        "/score",
        "/api/v1.0/predictions",
        "/v1/models/iris:predict",
        "/invocations",
      ]);
      const { result, ok, refused } = await warmUpAgainst(iris, 200);
      expect(result).toEqual({ requests: 200, refused: 0, ms: expect.any(Number) });
      expect({ ok, refused }).toEqual({ ok: 200, refused: 0 });
    } finally {
      await iris.close();
    }
  });

  it("feeds a model of one input per column rows of its columns", async () => {
    const churn = await loadModel({
      uri: sklearnModelPath("churn_pipeline"),
      name: "churn",
      version: "1",
      maxBytes: 1e7,
    });
    try {
      const { result, ok } = await warmUpAgainst(churn, 50);
      expect(result).toMatchObject({ requests: 50, refused: 0 });
      expect(ok).toBe(50);
    } finally {
      await churn.close();
    }
  });

  it("stops after its time however many requests are left, for a slow model", async () => {
    // 20 ms a run on the thread, as a large model's run holds it: 3000 runs would take a minute.
    const slow: Model = {
      ...identityModel(),
      predict: async (inputs: readonly Tensor[]) => {
        const until = performance.now() + 20;
        while (performance.now() < until);
        return [{ ...inputs[0], name: "output" }];
      },
    };
    const { result, ok } = await warmUpAgainst(slow, 3000, 300);
    // Every protocol's body once, then as many as fit in 300 ms: 20 ms a run, plus the last
    // round of runs already under way when the time was up.
    expect(result.requests).toBeGreaterThanOrEqual(5);
    expect(result.requests).toBeLessThan(60);
    expect(result.ms).toBeLessThan(300 + 16 * 20 + 1000);
    expect(ok).toBe(result.requests);
  });

  it("sends a body the service refuses only once, and stops when it refuses them all", async () => {
    // A model that answers NaN whatever it is given: every protocol refuses the answer (400).
    const nan: Model = {
      ...identityModel(),
      predict: async (inputs: readonly Tensor[]) => [
        { ...inputs[0], name: "output", data: new Float32Array(inputs[0].data.length).fill(NaN) },
      ],
    };
    const { result, ok, refused } = await warmUpAgainst(nan, 1000);
    expect(result).toMatchObject({ requests: 5, refused: 5 });
    expect({ ok, refused }).toEqual({ ok: 0, refused: 5 });
  });
});
