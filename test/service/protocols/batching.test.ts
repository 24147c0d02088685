import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createApp } from "../../../service/src/app";
import { createExpressServer } from "../../../service/src/http/express-server";
import { Metrics } from "../../../service/src/http/metrics";
import { loadModel } from "../../../service/src/model/load";
import type { Model } from "../../../service/src/model/model";
import { rowSum, tableLookup } from "../../fixtures/batch-models";
import { kerasDense } from "../../fixtures/onnx-models";
import {
  SKLEARN_MODELS,
  expectedAnswers,
  sklearnModelPath,
  type Expected,
} from "../../fixtures/sklearn-models";
import { IRIS_ROWS, irisModel, onnxModel } from "./support";

/**
 * Batching's promise, on the wire: a request's answer is byte for byte the one it gets with
 * batching off, on every protocol, for the real models, while requests do share runs. Each model
 * gets two apps: one stacking concurrent requests (MAX_BATCH_DELAY_MS 1) and one running each
 * request alone (0). Every request is sent to the first all at once, and to the second one by
 * one.
 */

interface Served {
  readonly url: string;
  readonly metrics: Metrics;
  close(): Promise<void>;
}

async function serve(model: Model, maxBatchDelayMs: number): Promise<Served> {
  const metrics = new Metrics();
  const app = createApp({
    model,
    maxBatchSize: 64,
    bodyLimitBytes: 1_000_000,
    maxBatchDelayMs,
    metrics,
  });
  const server: Server = createExpressServer(app);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    metrics,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface Call {
  readonly path: string;
  readonly body: string;
  readonly type?: string;
}

async function send(url: string, call: Call): Promise<string> {
  const response = await fetch(`${url}${call.path}`, {
    method: "POST",
    headers: { "content-type": call.type ?? "application/json" },
    body: call.body,
  });
  return `${response.status} ${await response.text()}`;
}

/** Runs that stacked more than one request, read from `model_batch_size`. */
async function stackedRuns(metrics: Metrics): Promise<{ runs: number; requests: number }> {
  const { values } = await metrics.batchSize.get();
  const sum = values.find((value) => value.metricName === "model_batch_size_sum")?.value ?? 0;
  const count = values.find((value) => value.metricName === "model_batch_size_count")?.value ?? 0;
  return { runs: count, requests: sum };
}

/**
 * Sends `calls` all at once to a batching app and one by one to an app that does not batch, and
 * expects the same answers, with some runs shared. Returns the answers and both apps' runs.
 */
async function expectSameAnswers(model: Model, calls: readonly Call[]) {
  const batching = await serve(model, 1);
  const alone = await serve(model, 0);
  try {
    const together = await Promise.all(calls.map((call) => send(batching.url, call)));
    const oneByOne: string[] = [];
    for (const call of calls) oneByOne.push(await send(alone.url, call));
    expect(together).toEqual(oneByOne);
    const batched = await stackedRuns(batching.metrics);
    expect(batched.runs).toBeLessThan(batched.requests);
    const single = await stackedRuns(alone.metrics);
    expect(single.runs).toBe(single.requests);
    return { answers: together, batched, single };
  } finally {
    await batching.close();
    await alone.close();
  }
}

const json = (path: string, body: unknown): Call => ({ path, body: JSON.stringify(body) });
const csv = (columns: readonly string[], rows: readonly unknown[][]): Call => ({
  path: "/invocations",
  type: "text/csv",
  body: [columns.join(","), ...rows.map((row) => row.join(","))].join("\n") + "\n",
});

/** Requests of one to three of `rows` in every protocol that sends rows, and in v2. */
interface Table {
  readonly columns: readonly string[];
  readonly rows: Expected["rows"];
}

function callsFor(name: string, e: Table, v2: V2Input[]): Call[] {
  const calls: Call[] = [];
  e.rows.forEach((_, i) => {
    const rows = e.rows.slice(i, i + 1 + (i % 3));
    const records = rows.map((row) => Object.fromEntries(e.columns.map((c, j) => [c, row[j]])));
    calls.push(
      json("/score", { X: rows }),
      json("/api/v1.0/predictions", { data: { names: e.columns, ndarray: rows } }),
      json("/predict", {
        data: { tensor: { shape: [rows.length, e.columns.length], values: rows.flat() } },
      }),
      json(`/v1/models/${name}:predict`, { instances: records }),
      json("/invocations", { dataframe_split: { columns: e.columns, data: rows } }),
      csv(e.columns, rows),
      json(`/v2/models/${name}/infer`, { id: String(i), inputs: v2Tensors(v2, rows) }),
    );
  });
  return calls;
}

interface V2Input {
  readonly name: string;
  readonly datatype: string;
}

/** v2 input tensors for `rows`: one tensor of whole rows, or one column per input. */
function v2Tensors(inputs: readonly V2Input[], rows: readonly unknown[][]) {
  if (inputs.length === 1) {
    const [input] = inputs;
    return [{ ...input, shape: [rows.length, rows[0].length], data: rows.flat() }];
  }
  return inputs.map((input, c) => ({
    ...input,
    shape: [rows.length, 1],
    data: rows.map((row) => row[c]),
  }));
}

const v2Inputs = (model: Model): V2Input[] =>
  model.inputs.map(({ name, datatype }) => ({ name, datatype: datatype ?? "FP32" }));

describe("batching on the wire", () => {
  it("gives the iris classifier's answers byte for byte, on every protocol", async () => {
    const iris = await irisModel();
    try {
      const rows = [...IRIS_ROWS, [6.0, 2.9, 4.5, 1.5], [4.8, 3.0, 1.4, 0.1], [7.7, 2.6, 6.9, 2.3]];
      const columns = iris.featureNames ?? [];
      await expectSameAnswers(iris, callsFor("iris", { columns, rows }, v2Inputs(iris)));
    } finally {
      await iris.close();
    }
  });

  it.each(SKLEARN_MODELS)(
    "gives scikit-learn's %s answers byte for byte, on every protocol",
    async (name) => {
      const model = await loadModel({
        uri: sklearnModelPath(name),
        name,
        version: "1",
        maxBytes: 1e7,
      });
      try {
        const expected = expectedAnswers(name);
        const e = { columns: expected.columns, rows: expected.rows.slice(0, 8) };
        await expectSameAnswers(model, callsFor(name, e, v2Inputs(model)));
      } finally {
        await model.close();
      }
    },
  );

  it("never stacks requests whose rows differ in length, and stacks those that do not", async () => {
    const model = await onnxModel(rowSum(), "row_sum");
    try {
      const rows = [[1], [1, 2], [1, 2, 3], [4, 5], [6], [7, 8, 9], [1, 2, 3, 4]];
      const calls = rows.flatMap((row, i) => [
        json("/v2/models/row_sum/infer", {
          inputs: [{ name: "x", datatype: "FP32", shape: [1, row.length], data: row }],
        }),
        json("/score", { X: [row, row.map((value) => value * i)] }),
      ]);
      const { answers } = await expectSameAnswers(model, calls);
      rows.forEach((row, i) => {
        const sum = row.reduce((a, b) => a + b, 0);
        expect(JSON.parse(answers[2 * i].slice(4)).outputs[0].data).toEqual([sum]);
        expect(answers[2 * i + 1]).toBe(`200 {"score":[[${sum}],[${sum * i}]]}`);
      });
    } finally {
      await model.close();
    }
  });

  it("answers a bad request in a batch as it would alone, and its batch-mates as if it had not come", async () => {
    const model = await onnxModel(tableLookup(), "lookup");
    try {
      const v2 = (...indices: number[]) =>
        json("/v2/models/lookup/infer", {
          inputs: [{ name: "i", datatype: "INT64", shape: [indices.length, 1], data: indices }],
        });
      // Indices outside -10..9 fail onnxruntime's run; the others are refused before the model.
      const calls: Call[] = [
        v2(1),
        v2(99),
        v2(2, 3),
        json("/score", { X: [[4], [-11]] }),
        v2(5),
        { path: "/v2/models/lookup/infer", body: '{"inputs": [' },
        json("/score", { X: [[1, 2]] }),
        v2(-1),
        json("/score", { X: [["a"]] }),
        v2(100),
        json("/score", { X: [[7], [8]] }),
      ];
      const { answers, batched, single } = await expectSameAnswers(model, calls);
      // The bad requests' answers are those they get alone (checked above); the rest succeed.
      const succeeded = answers.flatMap((answer, i) => (answer.startsWith("200 ") ? [i] : []));
      expect(succeeded).toEqual([0, 2, 4, 7, 10]);
      const data = (answer: string) => JSON.parse(answer.slice(4)).outputs[0].data;
      expect([0, 2, 4, 7].map((i) => data(answers[i]))).toEqual([[1.5], [2.5, 3.5], [5.5], [9.5]]);
      expect(answers[10]).toBe('200 {"score":[[7.5],[8.5]]}');
      // An index the model's own run refuses is the client's data: 400, naming the node and why.
      for (const [i, index] of [
        [1, 99],
        [9, 100],
      ]) {
        expect(answers[i]).toMatch(/^400 /);
        expect(JSON.parse(answers[i].slice(4)).error).toBe(
          'the model cannot run on these values: its Gather node "Gather" says: indices element ' +
            `out of data bounds, idx=${index} must be within the inclusive range [-10,9]`,
        );
      }
      expect(answers[3]).toMatch(/^400 .*idx=-11 must be within/);
      // Runs that a bad index failed were shared: their requests ran again, alone, and counted twice.
      expect(batched.requests).toBeGreaterThan(single.requests);
    } finally {
      await model.close();
    }
  });

  it("gives a Keras network's answers byte for byte", async () => {
    const model = await onnxModel(kerasDense(), "dense");
    try {
      const rows = [
        [0.1, 0.2, 0.3, 0.4],
        [1, -1, 0.5, 2],
        [3, 0, -2, 1],
        [0, 0, 0, 0],
      ];
      const calls = rows.flatMap((_, i) => {
        const some = rows.slice(i, i + 1 + (i % 2));
        return [
          json("/score", { X: some }),
          json(`/v2/models/dense/infer`, { inputs: v2Tensors(v2Inputs(model), some) }),
        ];
      });
      await expectSameAnswers(model, calls);
    } finally {
      await model.close();
    }
  });
});
