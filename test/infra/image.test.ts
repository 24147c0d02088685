import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { BUILD_INPUTS, buildInputFiles, contentTag, gitRevision } from "../../infra/image";
import { REPO_ROOT } from "./harness/stack-config";

/** A content tag: never `latest`, always derived from the build inputs. */
const TAG = /^src-[0-9a-f]{20}$/;

describe("the image's content tag", () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), "mlscore-tag-"));
    const files: Record<string, string> = {
      "package.json": "{}",
      "package-lock.json": "{}",
      ".npmrc": "",
      "tsconfig.json": "{}",
      "service/package.json": "{}",
      "service/tsconfig.json": "{}",
      "service/Dockerfile": "FROM scratch\n",
      "service/src/server.ts": "export {};\n",
      "service/src/http/app.test.ts": "test;\n",
      "service/models/iris.onnx": "model-v1",
      "README.md": "docs\n",
      "infra/index.ts": "export {};\n",
    };
    for (const [file, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
      writeFileSync(path.join(root, file), content);
    }
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("hashes exactly the files the build uses", () => {
    expect(buildInputFiles(root)).toEqual([
      ".npmrc",
      "package-lock.json",
      "package.json",
      "service/Dockerfile",
      "service/models/iris.onnx",
      "service/package.json",
      "service/src/server.ts",
      "service/tsconfig.json",
      "tsconfig.json",
    ]);
  });

  it("changes when the service's code, model or Dockerfile changes", () => {
    const before = contentTag(root);
    expect(before).toMatch(TAG);
    for (const file of [
      "service/src/server.ts",
      "service/models/iris.onnx",
      "service/Dockerfile",
    ]) {
      const original = readFileSync(path.join(root, file));
      writeFileSync(path.join(root, file), "changed");
      expect([file, contentTag(root)]).not.toEqual([file, before]);
      writeFileSync(path.join(root, file), original);
    }
    expect(contentTag(root)).toBe(before);
  });

  it("stays the same when only files outside the image change", () => {
    const before = contentTag(root);
    writeFileSync(path.join(root, "README.md"), "more docs\n");
    writeFileSync(path.join(root, "infra/index.ts"), "export const x = 1;\n");
    writeFileSync(path.join(root, "service/src/http/app.test.ts"), "another test;\n");
    expect(contentTag(root)).toBe(before);
  });

  it("follows .dockerignore's allow-list", () => {
    const allowed = readFileSync(path.join(REPO_ROOT, ".dockerignore"), "utf8")
      .split("\n")
      .filter((line) => line.startsWith("!"))
      .map((line) => line.slice(1));
    expect([...BUILD_INPUTS].filter((input) => input !== "service/Dockerfile").sort()).toEqual(
      allowed.sort(),
    );
  });

  it("reads the git revision, or says unknown outside a checkout", () => {
    expect(gitRevision(REPO_ROOT)).toMatch(/^[0-9a-f]{40}$/);
    expect(gitRevision(root)).toBe("unknown");
  });
});
