import type { Model, Tensor, TensorSpec } from "./model";

/**
 * The original tutorial's demo model: answers with its input, whatever its element type and
 * shape. Useful to check the protocols and the deployment without any real model.
 */
export class IdentityModel implements Model {
  readonly name: string;
  readonly version: string;
  readonly platform = "identity";
  readonly inputs: readonly TensorSpec[] = [{ name: "input", datatype: null, shape: null }];
  readonly outputs: readonly TensorSpec[] = [{ name: "output", datatype: null, shape: null }];
  readonly primaryOutput = "output";

  constructor(options: { readonly name: string; readonly version: string }) {
    this.name = options.name;
    this.version = options.version;
  }

  /** Returns the single input as `output`, with its datatype, shape and data untouched. */
  async predict(inputs: readonly Tensor[]): Promise<Tensor[]> {
    if (inputs.length !== 1) {
      throw new Error(`identity model takes exactly 1 input tensor, got ${inputs.length}`);
    }
    const [input] = inputs;
    return [{ name: "output", datatype: input.datatype, shape: input.shape, data: input.data }];
  }

  /** Nothing to free. */
  async close(): Promise<void> {}
}
