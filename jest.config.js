/** @type {import('jest').Config} */
module.exports = {
  // onnxruntime-node makes its typed arrays in the main realm; this environment shares them.
  testEnvironment: "<rootDir>/test/fixtures/ort-environment.ts",
  roots: ["<rootDir>/test"],
  // scikit-learn models exported by skl2onnx, made once in a cached Python environment.
  globalSetup: "<rootDir>/test/fixtures/global-setup.ts",
  // The real engine runs in `npm run test:engine` (test/engine/jest.config.js), not here.
  testPathIgnorePatterns: ["/node_modules/", "<rootDir>/test/engine/"],
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json" }] },
  testTimeout: 30000,
};
