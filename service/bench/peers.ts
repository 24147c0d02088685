/**
 * What mlscore is measured against: a bare node:http JSON echo as the ceiling, and Seldon's
 * MLServer serving the same iris classifier from scikit-learn, installed from PyPI into a cached
 * virtual environment on first use (`mlserver/requirements.txt`, about a minute and 530 MB).
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ensureVirtualEnv, run } from "../../test/fixtures/python-env";
import { freePort, type ServerSpec } from "./load";

/** The least a Node server can do to answer a JSON POST. */
const ECHO_SERVER = `
const http = require("node:http");
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = JSON.stringify(JSON.parse(Buffer.concat(chunks).toString()));
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
});
server.listen(Number(process.env.PORT), "127.0.0.1");
`;

export function echoServer(port: number): ServerSpec {
  return {
    argv: [process.execPath, "-e", ECHO_SERVER],
    env: { PORT: String(port) },
    readyPath: "/",
    readyPost: true,
  };
}

const MLSERVER_DIR = path.join(__dirname, "mlserver");

/** The virtual environment with MLServer, made when missing. */
export function mlserverEnv(): string {
  return ensureVirtualEnv("mlserver", path.join(MLSERVER_DIR, "requirements.txt"));
}

/**
 * MLServer serving the iris classifier (`mlserver/iris_model.py`) on `port`, with
 * `parallelWorkers` inference processes (0: inference in the server process). Its gRPC and
 * metrics servers get free ports of their own.
 */
export async function mlserver(port: number, parallelWorkers: number): Promise<ServerSpec> {
  const venv = mlserverEnv();
  const python = path.join(venv, "bin", "python");
  const root = mkdtempSync(path.join(os.tmpdir(), "mlscore-mlserver-"));
  const ports = [port, await freePort(), await freePort()].map(String);
  run(
    python,
    [path.join(MLSERVER_DIR, "iris_model.py"), root, ...ports, String(parallelWorkers)],
    "training the iris model for MLServer",
  );
  return {
    argv: [python, path.join(venv, "bin", "mlserver"), "start", root],
    env: {},
    readyPath: "/v2/models/iris/ready",
    readyTimeoutMs: 60_000,
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}
