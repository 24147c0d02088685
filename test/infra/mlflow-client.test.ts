import { createServer, type Server, type Socket } from "node:net";
import { MlflowClient, RegistryError } from "../../infra/registry/mlflow-client";

const VERSION = { name: "iris", version: "4", source: "s3://models/iris/4", aliases: ["champion"] };
const ANSWER = JSON.stringify({ model_version: VERSION });

/**
 * A tracking server that answers its first request with keep-alive, then behaves as one whose
 * idle timeout fires as the next request arrives: the `drops` requests after the first are read
 * and their connection closed without an answer. Counts the connections it accepted.
 */
async function flakyServer(
  drops: number,
): Promise<{ url: string; server: Server; conns: () => number }> {
  let connections = 0;
  let requests = 0;
  const server = createServer((socket: Socket) => {
    connections += 1;
    socket.on("data", () => {
      requests += 1;
      if (requests > 1 && requests <= 1 + drops) {
        socket.destroy();
        return;
      }
      socket.write(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n" +
          `Content-Length: ${Buffer.byteLength(ANSWER)}\r\n\r\n${ANSWER}`,
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, server, conns: () => connections };
}

describe("MlflowClient on a server that closes kept-alive connections", () => {
  let server: Server | undefined;
  afterEach(() => server?.close());

  it("sends a GET again, once, on a new connection when the kept-alive one drops", async () => {
    const flaky = await flakyServer(1);
    server = flaky.server;
    const client = new MlflowClient(flaky.url, undefined, "models:/iris@champion");
    await expect(client.versionByAlias("iris", "champion")).resolves.toEqual(VERSION);
    // The second call goes out on the kept-alive connection, which the server drops.
    await expect(client.version("iris", "4")).resolves.toEqual(VERSION);
    expect(flaky.conns()).toBe(2);
  });

  it("gives up after the second try, naming the tracking server", async () => {
    const flaky = await flakyServer(2);
    server = flaky.server;
    const client = new MlflowClient(flaky.url, undefined, "models:/iris@champion");
    await client.versionByAlias("iris", "champion");
    const failure = client.version("iris", "4");
    await expect(failure).rejects.toBeInstanceOf(RegistryError);
    await expect(failure).rejects.toThrow(
      `cannot reach the MLflow tracking server at ${flaky.url} (UND_ERR_SOCKET)`,
    );
  });
});
