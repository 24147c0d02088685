// Validates GitHub Actions workflow files with @actions/workflow-parser (the parser behind
// GitHub's own Actions language service) and prints {file: [errors]} as JSON. Run it with tsx:
// the package is ESM-only and imports its JSON schema without import attributes, which plain
// Node rejects and jest's CommonJS runtime cannot load.
import { readFileSync } from "node:fs";
import {
  NoOperationTraceWriter,
  convertWorkflowTemplate,
  parseWorkflow,
} from "@actions/workflow-parser";

const report = {};
for (const name of process.argv.slice(2)) {
  const parsed = parseWorkflow(
    { name, content: readFileSync(name, "utf8") },
    new NoOperationTraceWriter(),
  );
  const errors = parsed.context.errors.getErrors().map((error) => error.message);
  if (parsed.value !== undefined) {
    // Conversion resolves jobs, needs, matrices and expressions beyond the schema.
    const template = await convertWorkflowTemplate(parsed.context, parsed.value);
    for (const error of template.errors ?? []) {
      if (!errors.includes(error.Message)) {
        errors.push(error.Message);
      }
    }
  }
  report[name] = errors;
}
process.stdout.write(JSON.stringify(report));
