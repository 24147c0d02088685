import type { Model, Tensor } from "./model";

/**
 * `model` with `predict` replaced, every other member passed through: how the app times
 * predictions and makes them take turns without changing the model it was given.
 */
export function withPredict(
  model: Model,
  predict: (inputs: readonly Tensor[]) => Promise<Tensor[]>,
): Model {
  return Object.freeze({
    name: model.name,
    version: model.version,
    platform: model.platform,
    inputs: model.inputs,
    outputs: model.outputs,
    primaryOutput: model.primaryOutput,
    featureNames: model.featureNames,
    classNames: model.classNames,
    close: () => model.close(),
    predict,
  });
}
