import { performance } from "node:perf_hooks";

/** How long jobs may run back to back before the event loop gets a turn at I/O. */
const SLICE_MS = 10;

/**
 * Makes the request's heavy work take turns with I/O, so a probe never waits for all of it.
 * `run` takes synchronous jobs (parsing and decoding a body): one at a time, in arrival order,
 * handing the event loop back for I/O whenever the jobs of a slice have used SLICE_MS; without
 * it, bodies that complete in the same loop turn are parsed back to back. A slice lasts until the
 * loop's next check phase, so a job that finds the queue idle starts at once. `predict` paces
 * the model's runs, which onnxruntime makes on the main thread.
 */
export class Turns {
  private readonly waiting: Array<() => void> = [];
  private running = false;
  private sliceOpen = false;
  private sliceStartedAt = 0;
  private readonly waitingPredictions: Array<() => void> = [];
  private predicting = 0;
  /** How long predictions have been taking, call to answer (a moving average); one at first. */
  private predictionMs = SLICE_MS;

  /** Runs `job` in its turn; settles as it does. */
  run<T>(job: () => T | Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting.push(() => {
        let result: Promise<T>;
        try {
          result = Promise.resolve(job());
        } catch (error) {
          result = Promise.reject(error as Error);
        }
        result.then(resolve, reject).finally(() => this.next());
      });
      if (!this.running) this.next();
    });
  }

  /**
   * Runs a prediction once fewer are in flight than fit in a slice at the time predictions have
   * been taking. onnxruntime runs each on the main thread, one after another in the same loop
   * turn: quick ones (a few microseconds for iris) go many at a time, slow ones one by one. As
   * more run in one turn, each one's time to answer grows, which lowers how many may start.
   */
  predict<T>(job: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waitingPredictions.push(() => {
        this.predicting++;
        const startedAt = performance.now();
        job()
          .then(resolve, reject)
          .finally(() => {
            this.predictionMs = 0.8 * this.predictionMs + 0.2 * (performance.now() - startedAt);
            this.predicting--;
            this.startPredictions();
          });
      });
      this.startPredictions();
    });
  }

  private startPredictions(): void {
    const fit = Math.max(1, Math.floor(SLICE_MS / Math.max(this.predictionMs, 0.001)));
    while (this.predicting < fit) {
      const start = this.waitingPredictions.shift();
      if (!start) return;
      start();
    }
  }

  private next(): void {
    const start = this.waiting.shift();
    this.running = start !== undefined;
    if (!start) return;
    if (!this.sliceOpen || performance.now() - this.sliceStartedAt < SLICE_MS) {
      this.openSlice();
      start();
      return;
    }
    // An immediate queued now runs after the poll phase, where waiting sockets are served.
    setImmediate(() => {
      this.openSlice();
      start();
    });
  }

  private openSlice(): void {
    if (this.sliceOpen) return;
    this.sliceOpen = true;
    this.sliceStartedAt = performance.now();
    setImmediate(() => {
      this.sliceOpen = false;
    });
  }
}
