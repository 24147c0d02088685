import { stat } from "node:fs";
import fc from "fast-check";
import { planStacking, type StackingPlan } from "../../service/src/model/batch";
import { Batcher, type BatchingOptions } from "../../service/src/model/batcher";
import type { Model, Tensor } from "../../service/src/model/model";
import { rowSum, tableLookup } from "../fixtures/batch-models";
import { identityModel, irisModel, onnxModel } from "./protocols/support";

/** Keeps the thread busy, as onnxruntime's run does. */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/**
 * A model that runs as onnxruntime-node does, synchronously inside an immediate, for `msPerRow`
 * a row, and answers each row of `x` [N, 2] with its sum. It records the rows of every run, and
 * fails any run that holds the value `poison`.
 */
function summingModel(msPerRow: number, poison = Number.NaN) {
  const runs: number[] = [];
  const model: Model = {
    ...identityModel(),
    name: "sum",
    platform: "test",
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 2] }],
    outputs: [{ name: "sum", datatype: "FP32", shape: [-1] }],
    primaryOutput: "sum",
    predict: (inputs) =>
      new Promise<Tensor[]>((resolve, reject) =>
        setImmediate(() => {
          const [x] = inputs;
          const rows = x.shape[0];
          runs.push(rows);
          busy(msPerRow * rows);
          const data = x.data as Float32Array;
          if (data.includes(poison)) return reject(new Error("the runtime failed"));
          const sums = Float32Array.from({ length: rows }, (_, i) => data[2 * i] + data[2 * i + 1]);
          resolve([{ name: "sum", datatype: "FP32", shape: [rows], data: sums }]);
        }),
      ),
  };
  return { model, runs };
}

const rows = (...values: number[][]): Tensor[] => [
  {
    name: "x",
    datatype: "FP32",
    shape: [values.length, 2],
    data: Float32Array.from(values.flat()),
  },
];

const sumsOf = async (answer: Promise<Tensor[]>) =>
  Array.from((await answer)[0].data as Float32Array);

const STACKS: StackingPlan = { stacks: true, padsOneRow: false, rowMs: 0.01 };

function batcher(model: Model, options: Partial<BatchingOptions> = {}): Batcher {
  return new Batcher(model, {
    maxDelayMs: 1,
    maxRows: 64,
    sliceMs: 10,
    plan: () => Promise.resolve(STACKS),
    ...options,
  });
}

/** Resolves once `events` holds `count` entries. */
async function untilLogged(events: string[], count: number): Promise<void> {
  while (events.length < count) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe("Batcher", () => {
  it("stacks requests that reach the model together into one run, and answers each its own rows", async () => {
    const { model, runs } = summingModel(0);
    const runner = batcher(model);
    const answers = [
      runner.predict(rows([1, 2])),
      runner.predict(rows([3, 4], [5, 6])),
      runner.predict(rows([7, 8])),
    ];
    expect(await Promise.all(answers.map(sumsOf))).toEqual([[3], [7, 11], [15]]);
    expect(runs).toEqual([4]);
  });

  it("runs every request alone when MAX_BATCH_DELAY_MS is 0, or the plan says the model cannot stack", async () => {
    for (const [options, plan] of [
      [{ maxDelayMs: 0 }, STACKS],
      [{}, { stacks: false, padsOneRow: false, reason: "no batch axis" }],
    ] as const) {
      const { model, runs } = summingModel(0);
      const runner = batcher(model, { ...options, plan: () => Promise.resolve(plan) });
      const answers = [runner.predict(rows([1, 2])), runner.predict(rows([3, 4], [5, 6]))];
      expect(await Promise.all(answers.map(sumsOf))).toEqual([[3], [7, 11]]);
      expect(runs).toEqual([1, 2]);
    }
  });

  it("holds a batch for requests on their way to the model, up to MAX_BATCH_DELAY_MS", async () => {
    const { model, runs } = summingModel(0);
    let arriving = 1;
    const runner = batcher(model, { maxDelayMs: 50, arriving: () => arriving });
    const startedAt = performance.now();
    const first = runner.predict(rows([1, 2]));
    await new Promise((resolve) => setTimeout(resolve, 10));
    const second = runner.predict(rows([3, 4]));
    expect(await Promise.all([first, second].map(sumsOf))).toEqual([[3], [7]]);
    expect(runs).toEqual([2]);
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(49);

    // Nothing on its way: the request runs in the turn it arrived in, whatever the delay allows.
    arriving = 0;
    const lone = performance.now();
    expect(await sumsOf(runner.predict(rows([5, 6])))).toEqual([11]);
    expect(performance.now() - lone).toBeLessThan(25);
    expect(runs).toEqual([2, 1]);
  });

  it("stacks at most MAX_BATCH_SIZE rows into a run, and never splits a request", async () => {
    const { model, runs } = summingModel(0);
    const runner = batcher(model, { maxRows: 3 });
    const answers = [
      runner.predict(rows([1, 1], [1, 1])),
      runner.predict(rows([2, 2], [2, 2])),
      runner.predict(rows([3, 3])),
      runner.predict(rows([4, 4], [4, 4], [4, 4], [4, 4])),
    ];
    expect(await Promise.all(answers.map(sumsOf))).toEqual([[2, 2], [4, 4], [6], [8, 8, 8, 8]]);
    expect(runs).toEqual([3, 2, 4]);
  });

  it("pads a run of one row with a copy of it when the plan says so, and answers that row once", async () => {
    const { model, runs } = summingModel(0);
    const runner = batcher(model, {
      plan: () => Promise.resolve({ ...STACKS, padsOneRow: true }),
    });
    expect(await sumsOf(runner.predict(rows([1, 2])))).toEqual([3]);
    expect(runs).toEqual([2]);
    // Batching off still pads: a request's answer must not depend on it.
    const off = batcher(model, {
      maxDelayMs: 0,
      plan: () => Promise.resolve({ ...STACKS, padsOneRow: true }),
    });
    expect(await sumsOf(off.predict(rows([5, 6])))).toEqual([11]);
    expect(runs).toEqual([2, 2]);
  });

  it("runs each request of a failed stacked run alone, so only the bad one fails", async () => {
    const { model, runs } = summingModel(0, 666);
    const runner = batcher(model);
    const good = runner.predict(rows([1, 2]));
    const bad = runner.predict(rows([666, 0]));
    const alsoGood = runner.predict(rows([3, 4]));
    await expect(bad).rejects.toThrow("the runtime failed");
    expect(await sumsOf(good)).toEqual([3]);
    expect(await sumsOf(alsoGood)).toEqual([7]);
    expect(runs).toEqual([3, 1, 1, 1]);
  });

  it("plans once, with the first request, and holds requests until the plan is known", async () => {
    const { model, runs } = summingModel(0);
    let plans = 0;
    const runner = batcher(model, {
      plan: async () => {
        plans++;
        await new Promise((resolve) => setTimeout(resolve, 20));
        return STACKS;
      },
    });
    const answers = [runner.predict(rows([1, 2])), runner.predict(rows([3, 4]))];
    expect(await Promise.all(answers.map(sumsOf))).toEqual([[3], [7]]);
    expect(await sumsOf(runner.predict(rows([5, 6])))).toEqual([11]);
    expect(plans).toBe(1);
    expect(runs).toEqual([2, 1]);
  });

  it.each([
    ["one at a time", { maxDelayMs: 0 }],
    ["stacked", {}],
  ])(
    "runs slow predictions %s with I/O in between, holding the thread about a slice at most",
    async (_how, options) => {
      // 20 ms a row: a slice holds one, so stacking cannot put two in a run either.
      const { model, runs } = summingModel(20);
      const runner = batcher(model, {
        ...options,
        plan: () => Promise.resolve({ ...STACKS, rowMs: 20 }),
      });
      const events: string[] = [];
      // An I/O completion (one round trip to the thread pool) that is due while the runs go on.
      stat(__filename, () => events.push("io"));
      for (let i = 1; i <= 5; i++) {
        void runner.predict(rows([i, i])).then(() => events.push(`prediction ${i}`));
      }
      await untilLogged(events, 6);
      expect(events.indexOf("io")).toBeLessThan(events.indexOf("prediction 3"));
      expect(runs).toEqual([1, 1, 1, 1, 1]);
    },
  );

  it("finds out about a real model with planStacking before its first run", async () => {
    const { model, runs } = summingModel(0);
    const plans: StackingPlan[] = [];
    const runner = batcher(model, {
      plan: () => planStacking(model),
      onPlan: (plan) => plans.push(plan),
    });
    expect(await sumsOf(runner.predict(rows([1, 2])))).toEqual([3]);
    expect(plans).toEqual([{ stacks: true, padsOneRow: false, rowMs: expect.any(Number) }]);
    // planStacking's own runs: one row, two, then the check's three requests and their stack.
    expect(runs).toEqual([1, 2, 1, 2, 1, 4, 1]);
  });
});

describe("Batcher on real models (property)", () => {
  const served: Model[] = [];
  afterAll(() => Promise.all(served.map((model) => model.close())));

  /** Runs `requests` all at once through a batching Batcher and one by one through one that is not. */
  async function bothWays(model: Model, requests: readonly Tensor[][]) {
    const options = { maxRows: 64, sliceMs: 10, plan: () => planStacking(model) };
    const together = new Batcher(model, { ...options, maxDelayMs: 1 });
    const alone = new Batcher(model, { ...options, maxDelayMs: 0 });
    const shared = await Promise.all(requests.map((inputs) => together.predict(inputs)));
    const single: Tensor[][] = [];
    for (const inputs of requests) single.push(await alone.predict(inputs));
    return { shared, single };
  }

  const value = fc.float({ min: -10, max: 10, noNaN: true });

  it("answers every request bit for bit as when it runs alone: iris, rows of 4", async () => {
    const iris = await irisModel();
    served.push(iris);
    const request = fc
      .array(fc.array(value, { minLength: 4, maxLength: 4 }), { minLength: 1, maxLength: 4 })
      .map((rows): Tensor[] => [
        {
          name: "input",
          datatype: "FP32",
          shape: [rows.length, 4],
          data: Float32Array.from(rows.flat()),
        },
      ]);
    await fc.assert(
      fc.asyncProperty(fc.array(request, { minLength: 2, maxLength: 12 }), async (requests) => {
        const { shared, single } = await bothWays(iris, requests);
        expect(shared).toEqual(single);
      }),
      { numRuns: 40 },
    );
  });

  it("fails only the request whose values onnxruntime refuses, though it shared the run", async () => {
    const model = await onnxModel(tableLookup(), "lookup");
    served.push(model);
    const runs: number[] = [];
    const runner = new Batcher(model, {
      maxDelayMs: 1,
      maxRows: 64,
      sliceMs: 10,
      plan: () => planStacking(model),
      onRun: (waitedMs) => runs.push(waitedMs.length),
    });
    const indices = (...values: number[]): Tensor[] => [
      {
        name: "i",
        datatype: "INT64",
        shape: [values.length, 1],
        data: BigInt64Array.from(values, BigInt),
      },
    ];
    const answers = await Promise.allSettled(
      [indices(1), indices(2, 3), indices(99), indices(-1)].map((inputs) => runner.predict(inputs)),
    );
    const values = answers.map((answer) =>
      answer.status === "fulfilled" ? Array.from(answer.value[0].data as Float32Array) : "failed",
    );
    expect(values).toEqual([[1.5], [2.5, 3.5], "failed", [9.5]]);
    expect((answers[2] as PromiseRejectedResult).reason).toHaveProperty(
      "message",
      expect.stringContaining("idx=99"),
    );
    // One shared run of all four, which the bad index failed; then each request alone.
    expect(runs).toEqual([4, 1, 1, 1, 1]);
  });

  it("answers every request bit for bit as when it runs alone: rows of any length", async () => {
    const model = await onnxModel(rowSum(), "row_sum");
    served.push(model);
    const request = fc
      .tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 }))
      .chain(([count, width]) =>
        fc
          .array(value, { minLength: count * width, maxLength: count * width })
          .map((values): Tensor[] => [
            { name: "x", datatype: "FP32", shape: [count, width], data: Float32Array.from(values) },
          ]),
      );
    await fc.assert(
      fc.asyncProperty(fc.array(request, { minLength: 2, maxLength: 12 }), async (requests) => {
        const { shared, single } = await bothWays(model, requests);
        expect(shared).toEqual(single);
      }),
      { numRuns: 40 },
    );
  });
});
