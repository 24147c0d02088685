import http from "node:http";
import { freePort } from "../../service/bench/load";
import { DEFAULT_WARM_UP_REQUESTS } from "../../service/src/warm-up";
import { failedStart, startService, type ServiceProcess } from "./support/service-process";

/** Posts `{"X": [...]}` in two halves with a pause between them, so it is in flight for a while. */
function slowScore(
  url: string,
  values: number[],
  pauseMs: number,
  agent: http.Agent | false = false,
) {
  const body = JSON.stringify({ X: values });
  const half = Math.floor(body.length / 2);
  const { hostname, port } = new URL(url);
  return new Promise<{ status: number; body: string; connection?: string }>((resolve, reject) => {
    const req = http.request(
      {
        hostname,
        port,
        path: "/score",
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => (text += chunk.toString()));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: text, connection: res.headers.connection }),
        );
      },
    );
    const finish = setTimeout(() => req.end(body.slice(half)), pauseMs);
    req.on("error", (error) => {
      clearTimeout(finish);
      reject(error);
    });
    req.write(body.slice(0, half));
  });
}

const until = async (check: () => boolean, timeoutMs = 5_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

describe("server process", () => {
  let service: ServiceProcess | undefined;
  afterEach(() => {
    service?.child.kill("SIGKILL");
    service = undefined;
  });

  it("starts on the built-in iris model, answers probes and echoes a request id", async () => {
    service = await startService();
    const ready = service.logs.find((line) => line.message === "ready")!;
    expect(ready).toMatchObject({
      model: { name: "iris", platform: "onnxruntime" },
      // Every protocol's made-up row answered 200, then thousands more before ready.
      warmUp: { requests: DEFAULT_WARM_UP_REQUESTS, refused: 0, ms: expect.any(Number) },
    });
    expect(service.logs.map((line) => line.message)).toContain(
      "concurrent requests share model runs (waiting up to 1 ms)",
    );
    expect(ready.startupMs).toEqual(expect.any(Number));
    // Cloud Logging's fields, so GKE shows the level; pino's number for everything else.
    expect(ready).toMatchObject({
      severity: "INFO",
      level: 30,
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    });
    expect(ready).not.toHaveProperty("msg");

    expect((await fetch(`${service.url}/healthz`)).status).toBe(200);
    const readyz = await fetch(`${service.url}/readyz`, { headers: { "x-request-id": "req-42" } });
    expect(readyz.status).toBe(200);
    expect(readyz.headers.get("x-request-id")).toBe("req-42");
    const generated = await fetch(`${service.url}/healthz`);
    expect(generated.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);

    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    expect(metrics).toContain('model_info{name="iris",version="1",platform="onnxruntime"} 1');
    expect(metrics).toMatch(
      /http_request_duration_seconds_count\{method="GET",route="\/readyz",status="200"\} 1/,
    );
    // The warm-up's requests and model runs are not clients' traffic: none is counted.
    expect(metrics).not.toMatch(/method="POST"/);
    expect(metrics).toMatch(/^model_batch_size_count 0$/m);
    expect(metrics).toMatch(/^model_batch_wait_seconds_count 0$/m);
  });

  it("answers /readyz 503 while it warms up, and 200 only after the warm-up's last answer", async () => {
    const port = await freePort();
    const probes: number[] = [];
    // Probes from the moment the process starts, each under an id the debug log shows.
    const probing = (async () => {
      while (probes.at(-1) !== 200) {
        const status = await fetch(`http://127.0.0.1:${port}/readyz`, {
          headers: { "x-request-id": `probe-${probes.length}` },
        }).then(
          (response) => response.status,
          () => 0,
        );
        probes.push(status);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    service = await startService({
      PORT: String(port),
      LOG_LEVEL: "debug",
      WARM_UP_REQUESTS: "500",
    });
    await probing;
    // The log, in the order the service answered: every warm-up request, the probes, `ready`.
    const answered = () =>
      service!.logs.flatMap((line) => {
        if (line.message === "ready") return ["ready"];
        const { req, res } = line as { req?: { id: string }; res?: { statusCode: number } };
        if (!req || !res) return [];
        return [req.id.startsWith("warm-up-") ? "warm-up" : `${req.id} ${res.statusCode}`];
      });
    await until(() => answered().some((entry) => entry.endsWith(" 200")));
    const order = answered();
    const warmUps = order.filter((entry) => entry === "warm-up");
    expect(warmUps).toHaveLength(500);
    const [firstWarmUp, lastWarmUp] = [order.indexOf("warm-up"), order.lastIndexOf("warm-up")];
    const during = order.slice(firstWarmUp, lastWarmUp).filter((entry) => entry !== "warm-up");
    expect(during.length).toBeGreaterThan(0);
    expect(during.filter((entry) => !/^probe-\d+ 503$/.test(entry))).toEqual([]);
    // `ready` is logged after the warm-up's last answer, and the first 200 after it.
    const firstOk = order.findIndex((entry) => entry.endsWith(" 200"));
    expect(order.indexOf("ready")).toBeGreaterThan(lastWarmUp);
    expect(firstOk).toBeGreaterThan(order.indexOf("ready"));
    expect(probes.slice(0, -1).filter((status) => status !== 0 && status !== 503)).toEqual([]);
  });

  it("reports ready without a warm-up when WARM_UP_REQUESTS=0", async () => {
    service = await startService({ WARM_UP_REQUESTS: "0", MAX_BATCH_DELAY_MS: "0" });
    const ready = service.logs.find((line) => line.message === "ready")!;
    expect(ready).not.toHaveProperty("warmUp");
    expect(ready).toMatchObject({ limits: { maxBatchDelayMs: 0 } });
    const answer = await fetch(`${service.url}/v2/models/iris/infer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        inputs: [{ name: "input", datatype: "FP32", shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }],
      }),
    });
    // A one-row run, padded as with batching on: the answer does not depend on the setting.
    const { outputs } = (await answer.json()) as { outputs: { data: number[] }[] };
    expect(outputs[1].data).toEqual([0.9823799, 0.017619837, 2.2470935e-7]);
    // Planned with the first request, since no warm-up came before it.
    await until(() =>
      service!.logs.some((line) => line.message === "requests run alone: MAX_BATCH_DELAY_MS is 0"),
    );
  });

  it("logs client errors at warn with the request id, and successes only at debug", async () => {
    service = await startService({ MODEL_URI: "identity" });
    const post = (body: string, id: string) =>
      fetch(`${service!.url}/score`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-request-id": id },
        body,
      });
    expect((await post(JSON.stringify({ X: [1, 2] }), "good-one")).status).toBe(200);
    expect((await post("{not json", "bad-one")).status).toBe(400);
    await until(() => service!.logs.some((line) => line.level === 40));
    const completed = service.logs.filter((line) => String(line.message).startsWith("request "));
    expect(completed).toEqual([
      expect.objectContaining({ level: 40, req: expect.objectContaining({ id: "bad-one" }) }),
    ]);
  });

  it("logs every request at LOG_LEVEL=debug", async () => {
    service = await startService({ MODEL_URI: "identity", LOG_LEVEL: "debug" });
    await fetch(`${service.url}/score`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "trace-me" },
      body: JSON.stringify({ X: [1, 2] }),
    });
    const completed = () =>
      service!.logs.filter((entry) => entry.message === "request completed") as {
        req: { id: string };
      }[];
    await until(() => completed().some((line) => line.req.id === "trace-me"));
    const line = completed().find((entry) => entry.req.id === "trace-me");
    expect(line).toMatchObject({ level: 20, res: { statusCode: 200 } });
    // The warm-up's requests, each under an id that says so.
    const ids = completed().map((entry) => entry.req.id);
    expect(ids.filter((id) => id.startsWith("warm-up-"))).toHaveLength(DEFAULT_WARM_UP_REQUESTS);
  });

  it("on SIGTERM finishes the request in flight, refuses new connections and exits 0", async () => {
    service = await startService({ MODEL_URI: "identity" });
    const inFlight = slowScore(service.url, [1, 2, 3], 500);
    await new Promise((resolve) => setTimeout(resolve, 100));
    service.child.kill("SIGTERM");
    await until(() => service!.logs.some((line) => line.message === "draining"));

    await expect(fetch(`${service.url}/healthz`)).rejects.toThrow();
    const answer = await inFlight;
    expect(answer).toEqual({ status: 200, body: '{"score":[1,2,3]}', connection: "close" });
    expect(await service.exited).toBe(0);
    expect(service.logs.map((line) => line.message)).toEqual(
      expect.arrayContaining(["draining", "stopped"]),
    );
  });

  it("on SIGTERM closes keep-alive connections: answers in flight say close, idle ones end, exit 0 at once", async () => {
    service = await startService({ MODEL_URI: "identity", SHUTDOWN_GRACE_SECONDS: "30" });
    const agent = new http.Agent({ keepAlive: true });
    const { hostname, port } = new URL(service.url);
    // One connection left idle after an answer, as a pooling client leaves it.
    const idle = await new Promise<http.IncomingMessage>((resolve) =>
      http.get({ hostname, port, path: "/healthz", agent }, (res) =>
        res.resume().on("end", () => resolve(res)),
      ),
    );
    expect(idle.headers.connection).toBe("keep-alive");
    // Another whose request headers arrived before the signal and whose body arrives after it.
    const inFlight = slowScore(service.url, [1, 2, 3], 500, agent);
    await new Promise((resolve) => setTimeout(resolve, 150));
    const signalledAt = Date.now();
    service.child.kill("SIGTERM");

    expect(await inFlight).toEqual({ status: 200, body: '{"score":[1,2,3]}', connection: "close" });
    expect(await service.exited).toBe(0);
    // Not the grace period (30 s), nor the keep-alive timeout (65 s): as soon as it is answered.
    expect(Date.now() - signalledAt).toBeLessThan(5_000);
    agent.destroy();
  });

  it("logs and counts a request whose client went away before the answer", async () => {
    service = await startService({ MODEL_URI: "identity" });
    const { hostname, port } = new URL(service.url);
    const req = http.request({
      hostname,
      port,
      path: "/score",
      method: "POST",
      agent: false,
      headers: {
        "content-type": "application/json",
        "content-length": "100",
        "x-request-id": "gone",
      },
    });
    req.on("error", () => {});
    req.write('{"X": [1,');
    await new Promise((resolve) => setTimeout(resolve, 200));
    req.destroy();
    await until(() =>
      service!.logs.some((line) => line.message === "request aborted by the client"),
    );
    const line = service.logs.find((entry) => entry.message === "request aborted by the client");
    expect(line).toMatchObject({
      level: 40,
      severity: "WARNING",
      req: { id: "gone", method: "POST", url: "/score", route: "/score" },
      res: { statusCode: 499 },
    });
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    expect(metrics).toMatch(
      /http_request_duration_seconds_count\{method="POST",route="\/score",status="499"\} 1/,
    );
  });

  it("gives up on a request that outlasts SHUTDOWN_GRACE_SECONDS and exits 1", async () => {
    service = await startService({ MODEL_URI: "identity", SHUTDOWN_GRACE_SECONDS: "1" });
    const stuck = slowScore(service.url, [1], 60_000).catch((error: Error) => error);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const signalledAt = Date.now();
    service.child.kill("SIGTERM");
    expect(await service.exited).toBe(1);
    expect(Date.now() - signalledAt).toBeLessThan(3_000);
    // The request fails: no answer, whose object would have no message.
    expect(await stuck).toMatchObject({
      message: expect.stringMatching(/socket hang up|ECONNRESET/),
    });
  });

  it.each([
    [{ PORT: "http" }, 'mlscore: PORT must be a whole number from 0 to 65535 (got "http")\n'],
    [
      { MODEL_URI: "/nonexistent/model.onnx" },
      "mlscore: model file /nonexistent/model.onnx cannot be read (ENOENT)\n",
    ],
  ])("exits 1 with one line naming the problem for %j", async (env, line) => {
    expect(await failedStart(env)).toEqual({ code: 1, stderr: line });
  });

  it("exits 1 when the port is taken", async () => {
    service = await startService({ MODEL_URI: "identity" });
    const port = new URL(service.url).port;
    expect(await failedStart({ MODEL_URI: "identity", PORT: port })).toEqual({
      code: 1,
      stderr: `mlscore: cannot listen on 127.0.0.1:${port}: EADDRINUSE\n`,
    });
  });
});
