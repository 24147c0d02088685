import type { Express } from "express";
import request, { type Response } from "supertest";
import type { Model } from "../../../service/src/model/model";
import { BODY_LIMIT_BYTES, IRIS_ROWS, MAX_BATCH_SIZE, appFor, irisModel } from "./support";

/** One POST route of one protocol: how to wrap rows in its body and read its error format. */
interface Route {
  readonly protocol: string;
  readonly path: string;
  readonly body: (rows: unknown[]) => unknown;
  /** Asserts the protocol's error format and returns the message. */
  readonly message: (res: Response) => string;
}

const FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"];

const ROUTES: readonly Route[] = [
  {
    protocol: "/score",
    path: "/score",
    body: (rows) => ({ X: rows }),
    message: (res) => {
      expect(Object.keys(res.body)).toEqual(["error"]);
      return res.body.error;
    },
  },
  {
    protocol: "Seldon v1",
    path: "/api/v1.0/predictions",
    body: (rows) => ({ data: { names: FEATURES, ndarray: rows } }),
    message: (res) => {
      expect(res.body.status).toMatchObject({ code: res.status, status: "FAILURE" });
      expect(typeof res.body.status.reason).toBe("string");
      return res.body.status.info;
    },
  },
  {
    protocol: "v2",
    path: "/v2/models/iris/infer",
    body: (rows) => ({
      inputs: [
        {
          name: "input",
          datatype: "FP32",
          shape: [rows.length, Array.isArray(rows[0]) ? rows[0].length : 0],
          data: rows,
        },
      ],
    }),
    message: (res) => {
      expect(Object.keys(res.body)).toEqual(["error"]);
      return res.body.error;
    },
  },
  {
    protocol: "KServe v1",
    path: "/v1/models/iris:predict",
    body: (rows) => ({ instances: rows }),
    message: (res) => {
      expect(Object.keys(res.body)).toEqual(["error"]);
      return res.body.error;
    },
  },
  {
    protocol: "MLflow",
    path: "/invocations",
    body: (rows) => ({ dataframe_split: { columns: FEATURES, data: rows } }),
    message: (res) => {
      expect(Object.keys(res.body).sort()).toEqual(["error_code", "message"]);
      expect(res.body.error_code).toMatch(/^[A-Z_]+$/);
      return res.body.message;
    },
  },
];

const PLACEHOLDER = "__VALUE__";
/** The body for `rows` with a raw JSON token where the placeholder string was. */
const rawBody = (route: Route, rows: unknown[], token: string): string =>
  JSON.stringify(route.body(rows)).replace(`"${PLACEHOLDER}"`, token);

describe.each(ROUTES)("bad input to $protocol ($path)", (route) => {
  let iris: Model;
  let app: Express;
  beforeAll(async () => {
    iris = await irisModel();
    app = appFor(iris);
  });
  afterAll(() => iris.close());

  const post = () => request(app).post(route.path);
  const expectError = async (res: Response, status: number, pattern: RegExp) => {
    expect(res.status).toBe(status);
    expect(route.message(res)).toMatch(pattern);
  };
  const withValue = (value: unknown) => [[1, 2, value, 4]];

  it("answers malformed JSON with 400", async () => {
    const res = await post().set("Content-Type", "application/json").send('{"X": [1,');
    await expectError(res, 400, /malformed JSON/);
  });

  it("answers a NaN literal (not JSON) with 400", async () => {
    const res = await post()
      .set("Content-Type", "application/json")
      .send(rawBody(route, withValue(PLACEHOLDER), "NaN"));
    await expectError(res, 400, /malformed JSON/);
  });

  it("answers a number that overflows to Infinity with 400", async () => {
    const res = await post()
      .set("Content-Type", "application/json")
      .send(rawBody(route, withValue(PLACEHOLDER), "1e999"));
    await expectError(res, 400, /\[0\]\[2\] is Infinity, expected a finite number/);
  });

  it.each(["NaN", "Infinity", "-inf"])(
    'answers the string "%s" for a number with 400',
    async (text) => {
      const res = await post().send(route.body(withValue(text)) as object);
      await expectError(
        res,
        400,
        new RegExp(`\\[0\\]\\[2\\] is the string "${text}", expected a number.*no NaN or Infinity`),
      );
    },
  );

  it.each([
    ["a word", "abc", /the string "abc", expected a number/],
    ["null", null, /is null, expected a number/],
    ["an object", { v: 1 }, /is an object, expected a number/],
    ["a boolean", true, /is true, expected a number/],
  ])("answers %s where a number is due with 400", async (_what, value, pattern) => {
    const res = await post().send(route.body(withValue(value)) as object);
    await expectError(res, 400, pattern);
  });

  it.each([
    ["text/plain", "1,2,3,4"],
    ["application/x-www-form-urlencoded", "X=1"],
    ["application/octet-stream", "\u0000\u0001"],
  ])("answers Content-Type %s with 415 naming the type to send", async (type, body) => {
    const res = await post().set("Content-Type", type).send(body);
    await expectError(res, 415, /not supported here; send application\/json/);
  });

  it("answers a body without any Content-Type with 415", async () => {
    const res = await request(app)
      .post(route.path)
      .set("Content-Type", "")
      .send(Buffer.from(JSON.stringify(route.body(IRIS_ROWS))));
    expect(res.status).toBe(415);
  });

  it("answers a request without a body with 400", async () => {
    const res = await post();
    await expectError(res, 400, /no body/);
  });

  it.each([
    ["an empty object", {}],
    ["a JSON array", [1, 2]],
  ])("answers %s (fields missing) with 400", async (_what, body) => {
    const res = await post().send(body);
    expect(res.status).toBe(400);
    expect(route.message(res).length).toBeGreaterThan(10);
  });

  it("answers rows of the wrong width with 400 naming the model's shape", async () => {
    const res = await post().send(
      route.body([
        [1, 2, 3],
        [4, 5, 6],
      ]) as object,
    );
    await expectError(res, 400, /3 values|shape \[2, 3\]/);
  });

  it("answers ragged rows with 400", async () => {
    const res = await post().send(
      route.body([
        [1, 2, 3, 4],
        [1, 2, 3],
      ]) as object,
    );
    await expectError(res, 400, /3 values|rectangular|nested as shape/);
  });

  it("answers an empty batch with 400", async () => {
    const res = await post().send(route.body([]) as object);
    await expectError(res, 400, /empty batch/);
  });

  it("answers a batch over the limit with 413", async () => {
    const rows = Array.from({ length: MAX_BATCH_SIZE + 1 }, () => IRIS_ROWS[0]);
    const res = await post().send(route.body(rows) as object);
    await expectError(
      res,
      413,
      new RegExp(`${MAX_BATCH_SIZE + 1} rows, over this server's limit of ${MAX_BATCH_SIZE}`),
    );
  });

  it("answers a body over the size limit with 413", async () => {
    const rows = Array.from({ length: 200 }, () => [
      1.123456789, 2.123456789, 3.123456789, 4.123456789,
    ]);
    const res = await post().send(route.body(rows) as object);
    await expectError(res, 413, new RegExp(`limit of ${BODY_LIMIT_BYTES} bytes`));
  });

  it("answers arrays nested thousands deep with 400", async () => {
    const deep = "[".repeat(1500) + "]".repeat(1500);
    const res = await post()
      .set("Content-Type", "application/json")
      .send(rawBody(route, [PLACEHOLDER], deep));
    expect(res.status).toBe(400);
  });

  it("keeps serving after all of that", async () => {
    const res = await post().send(route.body(IRIS_ROWS) as object);
    expect(res.status).toBe(200);
  });
});

describe("bad input specific to one protocol", () => {
  let iris: Model;
  let app: Express;
  beforeAll(async () => {
    iris = await irisModel();
    app = appFor(iris);
  });
  afterAll(() => iris.close());

  it("v2: an unknown datatype is 400 listing the valid ones", async () => {
    const res = await request(app)
      .post("/v2/models/iris/infer")
      .send({ inputs: [{ name: "input", shape: [1, 4], datatype: "FLOAT", data: [1, 2, 3, 4] }] });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(
      /inputs\[0\].datatype must be one of BOOL, UINT8.*FP64, BYTES \(got "FLOAT"\)/,
    );
  });

  it("v2 and Seldon: data that does not fill the shape is 400", async () => {
    const v2 = await request(app)
      .post("/v2/models/iris/infer")
      .send({ inputs: [{ name: "input", shape: [2, 4], datatype: "FP32", data: [1, 2, 3, 4] }] });
    expect(v2.status).toBe(400);
    expect(v2.body.error).toMatch(
      /inputs\[0\].data has 4 values, but inputs\[0\].shape \[2, 4\] needs 8/,
    );
    const seldon = await request(app)
      .post("/predict")
      .send({ data: { tensor: { shape: [1, 4], values: [1, 2, 3, 4, 5] } } });
    expect(seldon.status).toBe(400);
    expect(seldon.body.status.info).toMatch(
      /data.tensor.values has 5 values, but data.tensor.shape \[1, 4\] needs 4/,
    );
  });

  it.each([
    ["/v2/models/nope/infer", (res: Response) => res.body.error],
    ["/v2/models/iris/versions/7/infer", (res: Response) => res.body.error],
    ["/v1/models/nope:predict", (res: Response) => res.body.error],
  ])("POST %s for an unknown model or version is 404", async (path, message) => {
    const res = await request(app).post(path).send({ instances: IRIS_ROWS });
    expect(res.status).toBe(404);
    expect(message(res)).toMatch(/not served here|no version/);
  });

  it("MLflow: a CSV body over the size limit is 413 in MLflow's format", async () => {
    const csv = FEATURES.join(",") + "\n" + "1.25,2.5,3.75,4.125\n".repeat(300);
    const res = await request(app).post("/invocations").set("Content-Type", "text/csv").send(csv);
    expect(res.status).toBe(413);
    expect(res.body).toEqual({
      error_code: "BAD_REQUEST",
      message: expect.stringMatching(/limit of 4096 bytes/),
    });
  });

  it.each(["/score", "/predict", "/v2/models/iris/infer", "/v1/models/iris:predict"])(
    "CSV sent to %s (JSON only) is 415",
    async (path) => {
      const res = await request(app).post(path).set("Content-Type", "text/csv").send("a,b\n1,2\n");
      expect(res.status).toBe(415);
    },
  );

  it("an unsupported charset is 415", async () => {
    const res = await request(app)
      .post("/score")
      .set("Content-Type", "application/json; charset=latin9")
      .send(JSON.stringify({ X: IRIS_ROWS }));
    expect(res.status).toBe(415);
    expect(res.body.error).toMatch(/UTF-8/);
  });
});
