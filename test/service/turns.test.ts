import { stat } from "node:fs";
import { Turns } from "../../service/src/http/turns";

/** Keeps the thread busy, as parsing a big body or onnxruntime's run does. */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/** Resolves once `events` holds `count` entries. */
async function untilLogged(events: string[], count: number): Promise<void> {
  while (events.length < count) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe("Turns", () => {
  it("lets I/O in between heavy jobs queued in the same turn", async () => {
    const turns = new Turns();
    const events: string[] = [];
    // An I/O completion (one round trip to the thread pool) that is due while the jobs run.
    stat(__filename, () => events.push("io"));
    for (let i = 1; i <= 6; i++) {
      void turns.run(() => {
        busy(15);
        events.push(`job ${i}`);
      });
    }
    await untilLogged(events, 7);
    expect(events.indexOf("io")).toBeLessThan(events.indexOf("job 3"));
  });

  it("passes a job's result and error through", async () => {
    const turns = new Turns();
    await expect(turns.run(() => 42)).resolves.toBe(42);
    await expect(
      turns.run(() => {
        throw new Error("bad body");
      }),
    ).rejects.toThrow("bad body");
  });
});
