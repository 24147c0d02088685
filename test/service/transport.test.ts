import http from "node:http";
import zlib from "node:zlib";
import { startService, type ServiceProcess } from "./support/service-process";

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  /** Whether the client saw `100 Continue` first. */
  readonly continued: boolean;
}

/**
 * Sends a POST with `headers` and the first `sent` bytes of its body, and no more unless the
 * server says `100 Continue` (then all of `body`). Resolves with the answer.
 */
function post(
  url: string,
  path: string,
  headers: http.OutgoingHttpHeaders,
  body: Buffer,
  sent = body.length,
): Promise<Answer> {
  const { hostname, port } = new URL(url);
  return new Promise<Answer>((resolve, reject) => {
    let continued = false;
    const req = http.request({ hostname, port, path, method: "POST", agent: false, headers });
    req.on("continue", () => {
      continued = true;
      req.end(body);
    });
    req.on("response", (res) => {
      let text = "";
      res.on("data", (chunk: Buffer) => (text += chunk.toString()));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, continued }),
      );
    });
    // The server may close the connection while this side still writes a body it refused.
    req.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code !== "EPIPE" && error.code !== "ECONNRESET") reject(error);
    });
    if (headers.expect === undefined) req.write(body.subarray(0, sent));
    else req.flushHeaders();
  });
}

const JSON_TYPE = { "content-type": "application/json" };

describe("request bodies on the wire", () => {
  let service: ServiceProcess;
  beforeAll(async () => {
    service = await startService({
      MODEL_URI: "identity",
      MAX_BODY_BYTES: "4096",
      MAX_BODY_BYTES_IN_FLIGHT: "6000",
      BODY_TIMEOUT_SECONDS: "1",
    });
  });
  afterAll(() => service.child.kill("SIGKILL"));

  it("refuses a declared length over the limit at once, before the body is sent", async () => {
    const startedAt = Date.now();
    const answer = await post(
      service.url,
      "/score",
      { ...JSON_TYPE, "content-length": String(1024 ** 3) },
      Buffer.alloc(64 * 1024, " "),
    );
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toEqual({
      error: "request body is larger than the limit of 4096 bytes; send smaller batches",
    });
    expect(answer.headers.connection).toBe("close");
    // 64 KiB of a declared 1 GiB were sent: the answer cannot have waited for the rest.
    expect(Date.now() - startedAt).toBeLessThan(3_000);
  });

  it("answers Expect: 100-continue with the 413 instead of a 100, and a good body with a 100", async () => {
    const refused = await post(
      service.url,
      "/score",
      { ...JSON_TYPE, "content-length": String(1024 ** 3), expect: "100-continue" },
      Buffer.alloc(0),
    );
    expect(refused).toMatchObject({ status: 413, continued: false });
    const body = Buffer.from(JSON.stringify({ X: [1, 2] }));
    const accepted = await post(
      service.url,
      "/score",
      { ...JSON_TYPE, "content-length": String(body.length), expect: "100-continue" },
      body,
    );
    expect(accepted).toMatchObject({ status: 200, continued: true, body: '{"score":[1,2]}' });
  });

  it("answers a body that stalls with 408 after BODY_TIMEOUT_SECONDS, and closes the connection", async () => {
    const body = Buffer.from(JSON.stringify({ X: [1, 2, 3] }));
    const startedAt = Date.now();
    const answer = await post(
      service.url,
      "/v2/models/identity/infer",
      { ...JSON_TYPE, "content-length": String(body.length) },
      body,
      10,
    );
    expect(answer.status).toBe(408);
    expect(JSON.parse(answer.body)).toEqual({
      error: "the request body did not arrive within 1 s; send it without pauses",
    });
    expect(answer.headers.connection).toBe("close");
    expect(Date.now() - startedAt).toBeLessThan(3_000);
  });

  it("answers 503 with Retry-After while the bodies in flight fill MAX_BODY_BYTES_IN_FLIGHT", async () => {
    const body = Buffer.alloc(4000, " ");
    const declared = { ...JSON_TYPE, "content-length": String(body.length) };
    // Holds 4000 of the 6000 bytes until it times out.
    const holding = post(service.url, "/score", declared, body, 100);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const refused = await post(service.url, "/score", declared, body);
    expect(refused.status).toBe(503);
    expect(refused.headers["retry-after"]).toBe("1");
    expect(JSON.parse(refused.body).error).toMatch(/retry in a moment/);
    expect((await holding).status).toBe(408);
    // Once the first is answered, its bytes are free again.
    const small = Buffer.from(JSON.stringify({ X: [1] }));
    const after = await post(
      service.url,
      "/score",
      { ...JSON_TYPE, "content-length": String(small.length) },
      small,
    );
    expect(after.status).toBe(200);
  });

  it("reads a chunked body against the same limit", async () => {
    const { hostname, port } = new URL(service.url);
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        { hostname, port, path: "/score", method: "POST", agent: false, headers: JSON_TYPE },
        (res) => resolve(res.statusCode ?? 0),
      );
      req.on("error", (error: NodeJS.ErrnoException) => {
        if (error.code !== "EPIPE" && error.code !== "ECONNRESET") reject(error);
      });
      // No Content-Length: Node sends it chunked.
      for (let i = 0; i < 10; i++) req.write(Buffer.alloc(1000, " "));
      req.end();
    });
    expect(status).toBe(413);
  });

  it("reads gzip bodies, counting the limit in decoded bytes, and refuses a bomb or junk", async () => {
    const gzip = (text: string) => zlib.gzipSync(Buffer.from(text));
    const send = (body: Buffer, encoding = "gzip") =>
      post(
        service.url,
        "/score",
        { ...JSON_TYPE, "content-encoding": encoding, "content-length": String(body.length) },
        body,
      );
    expect(await send(gzip(JSON.stringify({ X: [1, 2] })))).toMatchObject({
      status: 200,
      body: '{"score":[1,2]}',
    });
    // 100 KiB of spaces compress to a few hundred bytes, and decode past the 4096-byte limit.
    const bomb = gzip(`{"X": [1]${" ".repeat(100 * 1024)}}`);
    expect(bomb.length).toBeLessThan(4096);
    const refused = await send(bomb);
    expect(refused.status).toBe(413);
    const junk = await send(Buffer.from("not gzip at all"));
    expect(junk.status).toBe(400);
    expect(JSON.parse(junk.body).error).toMatch(/^the body is not valid gzip data: /);
    // Junk that is found out before the rest of the body has arrived is answered all the same.
    const early = await post(
      service.url,
      "/score",
      { ...JSON_TYPE, "content-encoding": "gzip", "content-length": "4000" },
      Buffer.alloc(4000, "x"),
      100,
    );
    expect(early.status).toBe(400);
    const unknown = await send(Buffer.from("{}"), "zstd");
    expect(unknown.status).toBe(415);
    expect(JSON.parse(unknown.body).error).toBe(
      "Content-Encoding zstd is not supported; send the body as identity, gzip, deflate, br",
    );
  });

  it("counts a body refused before its route's handler under that route", async () => {
    await post(
      service.url,
      "/score",
      { ...JSON_TYPE, "content-length": "5000" },
      Buffer.alloc(0),
      0,
    );
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    expect(metrics).toMatch(
      /http_request_duration_seconds_count\{method="POST",route="\/score",status="413"\} [1-9]/,
    );
    expect(metrics).not.toMatch(/route="unmatched",status="413"/);
    expect(metrics).toMatch(/http_request_body_bytes_in_flight 0/);
  });
});
