import { GoldenError } from "./gate/golden";
import { readGateConfig, runGate } from "./gate/run";

/**
 * The canary gate, `node dist/gate.js`: a Kubernetes Job the stack runs before a new model gets
 * traffic. It sends the golden requests to the model and exits 0 only when every answer is as
 * expected; the stack's route waits for the Job, so a failure stops `pulumi up` there.
 */
async function main(): Promise<number> {
  const print = (line: string) => process.stdout.write(`${line}\n`);
  try {
    const config = readGateConfig(process.env);
    return (await runGate(config, print)) ? 0 : 1;
  } catch (error) {
    // A bad environment, an unreadable or malformed golden file: the stack's mistake, named.
    const what = error instanceof GoldenError ? "the golden requests file " : "";
    print(`gate failed: ${what}${(error as Error).message}`);
    return 1;
  }
}

void main().then((code) => {
  process.exitCode = code;
});
