/**
 * The request header that pins a request to one side while a canary runs: `stable` or `canary`.
 * The gateway's route matches it; the smoke test sends it. Dependency-free, so both import it.
 */
export const VARIANT_HEADER = "x-mlscore-variant";

/** The sides a request can be pinned to. */
export const VARIANTS = ["stable", "canary"] as const;

/** One side: the stable model or the canary. */
export type Variant = (typeof VARIANTS)[number];
