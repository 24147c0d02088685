/** @type {import('jest').Config} */
module.exports = {
  // onnxruntime-node makes its typed arrays in the main realm; this environment shares them.
  testEnvironment: "<rootDir>/test/fixtures/ort-environment.ts",
  roots: ["<rootDir>/test"],
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json" }] },
  testTimeout: 30000,
};
