import { performance } from "node:perf_hooks";

/** How long jobs may run back to back before the event loop gets a turn at I/O. */
const SLICE_MS = 10;

/**
 * Runs the request's heavy work (parsing and decoding a body, running the model) one job at a
 * time, in arrival order, and hands the event loop back for I/O whenever the jobs since the last
 * hand-back have used SLICE_MS. Without it, bodies that complete in the same loop turn are parsed
 * back to back (and onnxruntime, which runs on the main thread, runs every queued prediction in
 * one go), so a probe waits for all of them; with it, a probe waits for at most one job and a
 * slice.
 */
export class Turns {
  private readonly waiting: Array<() => void> = [];
  private running = false;
  private sliceStartedAt = Number.NEGATIVE_INFINITY;

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

  private next(): void {
    const start = this.waiting.shift();
    this.running = start !== undefined;
    if (!start) return;
    if (performance.now() - this.sliceStartedAt < SLICE_MS) {
      start();
      return;
    }
    // An immediate queued now runs after the poll phase, where waiting sockets are served.
    setImmediate(() => {
      this.sliceStartedAt = performance.now();
      start();
    });
  }
}
