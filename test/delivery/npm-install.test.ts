/**
 * `npm ci` downloads nothing but npm packages, with a setting every npm version honours: the
 * service's production install (onnxruntime-node, whose install script would fetch CUDA
 * libraries from NuGet on linux/x64) runs through a proxy that records every host contacted.
 */
import { execFile, execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const ROOT = path.resolve(__dirname, "../..");
const run = promisify(execFile);

/** An HTTPS proxy that lets through CONNECTs to `allowed` only, and records every host asked for. */
async function recordingProxy(allowed: string) {
  const hosts: string[] = [];
  const server = http.createServer((req, res) => {
    hosts.push(new URL(req.url ?? "", "http://unknown").hostname);
    res.writeHead(403).end();
  });
  server.on("connect", (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    const [host, port] = (req.url ?? "").split(":");
    hosts.push(host);
    client.on("error", () => {});
    if (host !== allowed) {
      client.end("HTTP/1.1 403 Forbidden\r\n\r\n");
      return;
    }
    const upstream = net.connect(Number(port), host, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      upstream.write(head);
      upstream.pipe(client).pipe(upstream);
    });
    upstream.on("error", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, hosts, close: () => server.close() };
}

describe("npm ci", () => {
  it("reads the project's .npmrc without a warning about unknown settings", async () => {
    const { stdout, stderr } = await run("npm", ["config", "get", "ignore-scripts"], { cwd: ROOT });
    expect(stdout.trim()).toBe("true");
    expect(stderr).toBe("");
  });

  it("installs the service's dependencies, onnxruntime-node included, from the npm registry alone", async () => {
    const registry = new URL(
      execFileSync("npm", ["config", "get", "registry"], { cwd: ROOT, encoding: "utf8" }).trim(),
    );
    const proxy = await recordingProxy(registry.hostname);
    const dir = mkdtempSync(path.join(os.tmpdir(), "mlscore-npm-ci-"));
    for (const file of ["package.json", "package-lock.json", ".npmrc", "service/package.json"]) {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      cpSync(path.join(ROOT, file), path.join(dir, file));
    }
    // npm's own requests, and (if it ran) onnxruntime's install script through global-agent.
    const env = {
      ...process.env,
      npm_config_proxy: proxy.url,
      npm_config_https_proxy: proxy.url,
      GLOBAL_AGENT_HTTP_PROXY: proxy.url,
    };
    try {
      await run(
        "npm",
        [
          "ci",
          "--workspace",
          "service",
          "--omit=dev",
          "--prefer-offline",
          "--no-audit",
          "--no-fund",
        ],
        { cwd: dir, env },
      );
      expect(new Set(proxy.hosts)).toEqual(new Set(proxy.hosts.length ? [registry.hostname] : []));
      const binaries = path.join(dir, "node_modules/onnxruntime-node/bin/napi-v6/linux/x64");
      expect(existsSync(path.join(binaries, "onnxruntime_binding.node"))).toBe(true);
      expect(existsSync(path.join(binaries, "libonnxruntime_providers_cuda.so"))).toBe(false);

      // Without the setting, the same install step goes to NuGet: the proxy would have seen it.
      const unguarded = await run(
        "npm",
        ["rebuild", "onnxruntime-node", "--ignore-scripts=false"],
        {
          cwd: dir,
          env: { ...env, npm_config_dangerously_allow_all_scripts: "true" },
        },
      ).then(
        () => "exit 0",
        () => "failed",
      );
      expect(unguarded).toBe("failed");
      expect(proxy.hosts).toContain("api.nuget.org");
    } finally {
      proxy.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
