/**
 * What loading a model of a given size costs a scoring pod: memory at the peak, time, and scratch
 * disk. The stack derives the pod's limits, its startup probe and the service's timeouts from
 * these, and refuses a memory limit they say cannot hold the model. One definition of each rule.
 */

/** Bytes in a mebibyte: Kubernetes quantities and the rules below count in Mi. */
export const MIB = 2 ** 20;

/**
 * Memory a scoring process needs besides its model: Node, Express, onnxruntime, the metrics and the
 * request-body budget. `npm run bench:model-load` measured the load's peak at 140 MiB + 2.05 × the
 * model (50, 200 and 500 MiB models, from a file, https:// and gs://); the request bodies a
 * serving pod may hold at once (MAX_BODY_BYTES_IN_FLIGHT, 32 MiB) and headroom bring it to 256 MiB.
 */
export const MODEL_LOAD_BASE_BYTES = 256 * MIB;

/**
 * Peak memory per byte of model while it loads: the file is streamed to /tmp, then onnxruntime
 * reads it and builds its session, holding the bytes and the initialized weights at once. Measured
 * 2.05, rounded up.
 */
export const MODEL_LOAD_MEMORY_FACTOR = 2.1;

/** Peak resident memory of a scoring process loading a model of `modelBytes`. */
export function modelLoadPeakBytes(modelBytes: number): number {
  return MODEL_LOAD_BASE_BYTES + MODEL_LOAD_MEMORY_FACTOR * modelBytes;
}

/** Fixed part of the load time: process start, the first connection, the session's set-up. */
const MODEL_LOAD_FIXED_SECONDS = 60;
/**
 * The slowest download the stack plans for, 8 MiB/s (about 64 Mbit/s): a laptop's broadband to an
 * https:// host. Inside Google Cloud, Cloud Storage serves several times that.
 */
const MODEL_LOAD_BYTES_PER_SECOND = 8 * MIB;

/**
 * Seconds the service may spend fetching, verifying and loading a model of `modelBytes`
 * (its MODEL_LOAD_TIMEOUT_SECONDS): 60 s plus the download at 8 MiB/s.
 */
export function modelLoadTimeoutSeconds(modelBytes: number): number {
  return MODEL_LOAD_FIXED_SECONDS + Math.ceil(modelBytes / MODEL_LOAD_BYTES_PER_SECOND);
}

/**
 * How long the startup probe lets a pod load its model: the service's own timeout plus 30 s, so a
 * slow load fails with the service's message (and exit 1) before the kubelet kills it silently.
 */
export function startupWindowSeconds(modelBytes: number): number {
  return modelLoadTimeoutSeconds(modelBytes) + 30;
}

/**
 * Size of the pod's /tmp: the downloaded model (kept there so a restarted container verifies it
 * by hash instead of downloading it again), one partial download beside it, and 64 MiB of slack.
 */
export function scratchBytes(modelBytes: number): number {
  return 2 * modelBytes + 64 * MIB;
}

/** `bytes` as a Kubernetes quantity in Mi, rounded up. */
export function mebibytes(bytes: number): string {
  return `${Math.ceil(bytes / MIB)}Mi`;
}
