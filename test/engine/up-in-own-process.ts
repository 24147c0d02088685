import * as path from "node:path";
import { inlineStack } from "./engine-run";

/**
 * `pulumi up` of one of the engine test's stacks, in a Node.js process of its own, for a run whose
 * program throws. The SDK then also leaves the program's error as an unhandled rejection; in a
 * plain process the Automation API's handler takes it, as the language host's does under the CLI,
 * but jest's sandbox would report it as a failure of the whole test file. Prints the engine's
 * output and the error, and exits 1 when `up` fails.
 *
 * Arguments: <binDir> <work folder> <stack>; MLSCORE_ENGINE_UP_OPTIONS (JSON) holds the `up`
 * options and MLSCORE_ENGINE_ENV (JSON) the engine's environment.
 */
async function main(): Promise<void> {
  const [binDir, work, stackName] = process.argv.slice(2);
  const env = JSON.parse(process.env.MLSCORE_ENGINE_ENV ?? "{}") as Record<string, string>;
  const options = JSON.parse(process.env.MLSCORE_ENGINE_UP_OPTIONS ?? "{}") as object;
  const stack = await inlineStack(stackName, path.resolve(binDir), work, env);
  try {
    await stack.up({ ...options, onOutput: (text) => process.stdout.write(text) });
  } catch (error) {
    process.stdout.write(`\nup failed: ${(error as Error).message}\n`);
    process.exitCode = 1;
  }
}

void main();
