import * as path from "node:path";

/**
 * The project folder, where Pulumi.yaml, the lockfile and service/ are: the image's build context,
 * and what paths in config are relative to.
 */
export const PROJECT_DIR = path.resolve(__dirname, "..");
