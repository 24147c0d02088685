/**
 * The service under issue 8's hostile clients, as a process: its memory stays bounded and its
 * liveness probe keeps answering, whatever the clients do. The bounds are the pod's (512 MiB
 * memory limit, 2 s liveness timeout) with room to spare, not timings of the happy path;
 * `npm run bench:hostile` prints the numbers these attacks really produce.
 */
import {
  bigBodies,
  fullScoreBody,
  POD_HEAP,
  probeHealth,
  residentMiB,
  stalledBodies,
  zerosBody,
} from "../../service/bench/attacks";
import { startService, type ServiceProcess } from "./support/service-process";

/** Half the pod's default memory limit (512Mi). */
const RSS_BOUND_MIB = 256;
/** Half the liveness probe's timeout (2 s). */
const PROBE_BOUND_MS = 1_000;
const MiB = 1024 * 1024;

describe("hostile clients", () => {
  let service: ServiceProcess | undefined;
  afterEach(() => {
    service?.child.kill("SIGKILL");
    service = undefined;
  });

  it("150 connections that stall their 5 MiB bodies: memory stays bounded, each is answered within seconds", async () => {
    // The limit the service had before, set explicitly, so only the bytes in flight bound it.
    service = await startService({
      MAX_BODY_BYTES: String(5 * MiB),
      BODY_TIMEOUT_SECONDS: "3",
      NODE_OPTIONS: POD_HEAP,
    });
    const probe = await probeHealth(service.url);
    const statuses = await stalledBodies(service.url, {
      connections: 150,
      declaredBytes: 5 * MiB,
      keepOpenMs: 20_000,
    });
    const health = await probe.stop();

    // Those that fit in MAX_BODY_BYTES_IN_FLIGHT time out; the others are refused at once.
    expect(Object.keys(statuses).sort()).toEqual(["408", "503"]);
    expect(statuses["408"]).toBeLessThanOrEqual(6);
    expect(residentMiB(service.child.pid!).peak).toBeLessThan(RSS_BOUND_MIB);
    expect(health.failures).toBe(0);
    expect(health.worstMs).toBeLessThan(PROBE_BOUND_MS);
    const after = await fetch(`${service.url}/score`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ X: [[5.1, 3.5, 1.4, 0.2]] }),
    });
    expect(after.status).toBe(200);
  });

  it("big bodies in parallel: /healthz keeps answering and memory stays bounded", async () => {
    service = await startService({ NODE_OPTIONS: POD_HEAP });
    const ready = service.logs.find((line) => line.message === "ready") as {
      limits: { maxBodyBytes: number };
    };
    const limit = ready.limits.maxBodyBytes;
    const probe = await probeHealth(service.url);
    // Issue 8's repro (12 × 5 MiB of zeros) and bodies just under the limit, valid and not.
    const statuses = await bigBodies(service.url, {
      parallel: 12,
      bodies: [zerosBody(5 * MiB), fullScoreBody(1024, limit - 16), zerosBody(limit - 16)],
      durationMs: 4_000,
    });
    const health = await probe.stop();

    expect(Object.keys(statuses).sort()).toEqual(["200", "400", "413"]);
    expect(health.probes).toBeGreaterThan(20);
    expect(health.failures).toBe(0);
    expect(health.worstMs).toBeLessThan(PROBE_BOUND_MS);
    expect(residentMiB(service.child.pid!).peak).toBeLessThan(RSS_BOUND_MIB);
  });
});
