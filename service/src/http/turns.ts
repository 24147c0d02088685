import { performance } from "node:perf_hooks";

/** How long jobs may run back to back before the event loop gets a turn at I/O. */
export const SLICE_MS = 10;

/**
 * Makes the request's heavy work take turns with I/O, so a probe never waits for all of it.
 * `run` takes synchronous jobs (parsing and decoding a body): one at a time, in arrival order,
 * handing the event loop back for I/O whenever the jobs of a slice have used SLICE_MS; without
 * it, bodies that complete in the same loop turn are parsed back to back. A slice lasts until the
 * loop's next check phase, so a job that finds the queue idle starts at once. The model's runs,
 * which onnxruntime makes on the main thread, are paced the same way by the model's Batcher.
 */
export class Turns {
  private readonly waiting: Array<() => void> = [];
  private running = false;
  private sliceOpen = false;
  private sliceStartedAt = 0;

  /** Jobs waiting for their turn. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Runs `job` in its turn; settles as it does. */
  run<T>(job: () => T | Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting.push(() => {
        // An async wrapper turns a job that throws at once into a rejection like any other.
        const result = (async () => job())();
        void result.then(resolve, reject).finally(() => this.next());
      });
      if (!this.running) this.next();
    });
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
