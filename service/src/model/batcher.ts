import { performance } from "node:perf_hooks";
import { rowsOf, split, stack, stackKey, type StackingPlan } from "./batch";
import type { Model, Tensor } from "./model";

export interface BatchingOptions {
  /** Longest a request waits for others to stack with, in ms; 0: every request runs alone. */
  readonly maxDelayMs: number;
  /** Most rows one run stacks. */
  readonly maxRows: number;
  /** How long model runs may take back to back before the event loop gets a turn at I/O. */
  readonly sliceMs: number;
  /** How the model may be run (`planStacking`); asked once, before the first run. */
  readonly plan: () => Promise<StackingPlan>;
  /** Told of the plan once it is known. */
  readonly onPlan?: (plan: StackingPlan) => void;
  /** Told of every run: how long each request it stacked waited for it. */
  readonly onRun?: (waitedMs: readonly number[]) => void;
  /** How many requests are on their way to the model: read, and waiting to be parsed. */
  readonly arriving?: () => number;
}

interface Waiting {
  readonly inputs: readonly Tensor[];
  /** `undefined`: runs alone. */
  readonly key: string | undefined;
  readonly rows: number;
  readonly at: number;
  /** Runs as given, without the padding of a one-row run: a batch that could not be split. */
  readonly plain?: boolean;
  readonly resolve: (outputs: Tensor[]) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * The one place that decides when the model runs, and with what.
 *
 * Pacing: onnxruntime-node runs each call on the main thread (inside a setImmediate), so runs
 * take turns with I/O like any other heavy work: only as many start at once as fit in a slice
 * (`sliceMs`) at the time runs have been taking, and a run stacks no more rows than fit in one.
 *
 * Batching (`maxDelayMs` > 0, and a model that `planStacking` found may stack): requests that
 * reach the model in the same turn of the event loop, or while earlier runs keep it busy, share
 * one run of at most `maxRows` rows, and each gets its own rows of the outputs back. A batch
 * waits for more only while requests that could join it are on their way (read, waiting to be
 * parsed), and never longer than `maxDelayMs`; so under load batches grow on their own, and a
 * lone request never waits. Requests that cannot share a run (other shapes or types, a model
 * without a batch axis) run alone; a shared run that fails is run again request by request.
 */
export class Batcher {
  private readonly queue: Waiting[] = [];
  private running = 0;
  /** How long a run, and one of its rows, held the thread (moving averages); unknown at first. */
  private runMs: number | undefined;
  private rowMs: number | undefined;
  private plan: StackingPlan | undefined;
  private planning: Promise<void> | undefined;
  private batching = false;
  private flushQueued = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly model: Model,
    private readonly options: BatchingOptions,
  ) {}

  predict(inputs: readonly Tensor[]): Promise<Tensor[]> {
    return new Promise<Tensor[]>((resolve, reject) => {
      const rows = rowsOf(inputs) ?? 1;
      const at = performance.now();
      if (!this.plan) {
        // Until the plan is known nothing runs; then every request waiting so far is queued.
        this.planning ??= this.makePlan();
        void this.planning.then(() =>
          this.enqueue({ inputs, key: undefined, rows, at, resolve, reject }),
        );
        return;
      }
      this.enqueue({ inputs, key: undefined, rows, at, resolve, reject });
    });
  }

  private async makePlan(): Promise<void> {
    const plan = await this.options.plan().catch((error: unknown): StackingPlan => ({
      stacks: false,
      padsOneRow: false,
      reason: `planning failed (${(error as Error).message})`,
    }));
    this.plan = plan;
    this.rowMs = plan.rowMs;
    this.batching = plan.stacks && this.options.maxDelayMs > 0 && this.options.maxRows > 1;
    this.options.onPlan?.(plan);
  }

  private enqueue(waiting: Waiting): void {
    const key = this.batching ? stackKey(this.model, waiting.inputs) : undefined;
    this.queue.push({ ...waiting, key });
    if (!this.batching) {
      this.start();
    } else if (!this.flushQueued) {
      // Requests that reach the model later in this turn join; the batch forms at its end.
      this.flushQueued = true;
      setImmediate(() => {
        this.flushQueued = false;
        this.start();
      });
    }
  }

  /** How many runs may be under way at once: as many as fit in one turn of the event loop. */
  private runSlots(): number {
    return this.runMs === undefined
      ? 1
      : Math.max(1, Math.floor(this.options.sliceMs / this.runMs));
  }

  private rowBudget(): number {
    if (this.rowMs === undefined) return 1;
    const fit = Math.floor(this.options.sliceMs / Math.max(this.rowMs, 1e-6));
    return Math.min(this.options.maxRows, Math.max(1, fit));
  }

  private start(): void {
    while (this.running < this.runSlots() && this.queue.length > 0) {
      const batch = this.take();
      if (this.shouldWait(batch)) {
        this.queue.unshift(...batch);
        this.waitFor(batch[0]);
        return;
      }
      this.run(batch);
    }
  }

  /**
   * Whether `batch` should wait for more: only while requests are on their way to the model that
   * could fill it, and never past MAX_BATCH_DELAY_MS. Waiting for requests that may never come
   * would only add latency: at low load, or with one client, every request runs at once.
   */
  private shouldWait(batch: readonly Waiting[]): boolean {
    if (batch[0].key === undefined || (this.options.arriving?.() ?? 0) === 0) return false;
    const rows = batch.reduce((sum, each) => sum + each.rows, 0);
    return rows < this.rowBudget() && performance.now() - batch[0].at < this.options.maxDelayMs;
  }

  private waitFor(head: Waiting): void {
    if (this.timer) return;
    const due = head.at + this.options.maxDelayMs - performance.now();
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.start();
      },
      Math.max(0, due),
    );
  }

  /** The first waiting request and those that stack with it, as many rows as fit; out of the queue. */
  private take(): Waiting[] {
    const head = this.queue.shift()!;
    if (head.key === undefined) return [head];
    const budget = this.rowBudget();
    const batch = [head];
    let rows = head.rows;
    for (let i = 0; i < this.queue.length && rows < budget;) {
      const next = this.queue[i];
      if (next.key === head.key && rows + next.rows <= budget) {
        batch.push(next);
        rows += next.rows;
        this.queue.splice(i, 1);
      } else i++;
    }
    return batch;
  }

  private run(batch: readonly Waiting[]): void {
    this.running++;
    const calledAt = performance.now();
    this.options.onRun?.(batch.map((each) => calledAt - each.at));
    const rows = batch.map((each) => each.rows);
    const total = rows.reduce((sum, count) => sum + count, 0);
    const padded = total === 1 && this.plan?.padsOneRow === true && !batch[0].plain;
    const requests = batch.map((each) => each.inputs);
    // onnxruntime-node runs the model in an immediate queued by `predict`; one queued just before
    // it runs just before it, so from there to the answer is the time the run held the thread.
    let startedAt = calledAt;
    setImmediate(() => (startedAt = performance.now()));
    this.model
      .predict(stack(padded ? [requests[0], requests[0]] : requests))
      .then(
        (outputs) => {
          if (batch.length === 1 && !padded) return batch[0].resolve(outputs);
          const answers = split(outputs, padded ? [1, 1] : rows);
          if (!answers) return this.runAlone(batch, true);
          batch.forEach((each, i) => each.resolve(answers[i]));
        },
        (error: unknown) => {
          if (batch.length === 1) return batch[0].reject(error);
          // One request's values may be what failed the run: the others must not fail with it.
          this.runAlone(batch);
        },
      )
      .finally(() => {
        const ms = performance.now() - startedAt;
        this.runMs = this.runMs === undefined ? ms : 0.8 * this.runMs + 0.2 * ms;
        const perRow = ms / Math.max(1, total);
        this.rowMs = this.rowMs === undefined ? perRow : 0.8 * this.rowMs + 0.2 * perRow;
        this.running--;
        this.start();
      });
  }

  /** Runs each request of a batch that failed, or could not be split (`plain`), alone, first. */
  private runAlone(batch: readonly Waiting[], plain = false): void {
    this.queue.unshift(...batch.map((each) => ({ ...each, key: undefined, plain })));
  }
}
