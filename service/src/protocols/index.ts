import type { Protocol } from "./protocol";
import { kserveV1 } from "./kserve-v1";
import { mlflow } from "./mlflow";
import { score } from "./score";
import { seldon } from "./seldon";
import { v2 } from "./v2";

/** Every wire protocol the service speaks, mounted in this order on one port. */
export const protocols: readonly Protocol[] = [score, seldon, v2, mlflow, kserveV1];
