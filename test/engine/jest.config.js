/**
 * `npm run test:engine`: the real engine against a control plane the test starts. Kept out of
 * `npm test` (the quick loop) by the root config; its steps run in order in one file.
 * @type {import('jest').Config}
 */
module.exports = {
  rootDir: "../..",
  roots: ["<rootDir>/test/engine"],
  testEnvironment: "node",
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json" }] },
  // One file at a time: each starts a control plane of its own.
  maxWorkers: 1,
  // One step (an `up` that waits for a rollout) may take minutes on two busy cores.
  testTimeout: 15 * 60 * 1000,
};
