import {
  defaultBodyLimit,
  resolveBodyLimits,
  UNBOUNDED_MODEL_BODY_BYTES,
} from "../../service/src/http/body-limit";
import { IdentityModel } from "../../service/src/model/identity";
import type { Model } from "../../service/src/model/model";
import { identityOf, kerasDense } from "../fixtures/onnx-models";
import { irisModel, onnxModel } from "./protocols/support";

const KiB = 1024;
const MiB = 1024 * KiB;

describe("the default body limit", () => {
  const models: Model[] = [];
  afterAll(() => Promise.all(models.map((model) => model.close())));
  const keep = async (model: Promise<Model>) => {
    models.push(await model);
    return models[models.length - 1];
  };

  it("is MAX_BATCH_SIZE rows of the model's inputs: 64 KiB + rows × values × (32 + name + 4)", async () => {
    // iris: 4 values a row, feature names of up to 12 characters ("sepal_length").
    const iris = await keep(irisModel());
    expect(defaultBodyLimit(iris, 1024)).toBe(64 * KiB + 1024 * 4 * (32 + 12 + 4));
    expect(defaultBodyLimit(iris, 1024)).toBe(256 * KiB);
    expect(defaultBodyLimit(iris, 1)).toBe(64 * KiB + 4 * 48);
    // A model without feature names: 32 bytes a value.
    const keras = await keep(onnxModel(kerasDense(), "keras"));
    expect(defaultBodyLimit(keras, 100)).toBe(64 * KiB + 100 * 4 * 32);
  });

  it("falls back to 1 MiB where the model does not bound a row", async () => {
    // Shape ["N"]: one value a row, but strings have no bounded size.
    const strings = await keep(onnxModel(identityOf("string"), "strings"));
    expect(defaultBodyLimit(strings, 1024)).toBe(UNBOUNDED_MODEL_BODY_BYTES);
    expect(defaultBodyLimit(new IdentityModel({ name: "i", version: "1" }), 1024)).toBe(MiB);
  });

  it("never exceeds the bytes in flight; a configured limit raises the default bytes in flight", async () => {
    const iris = await keep(irisModel());
    expect(resolveBodyLimits({ model: iris, maxBatchSize: 1_000_000 })).toEqual({
      limitBytes: 32 * MiB,
      bytesInFlight: 32 * MiB,
    });
    expect(
      resolveBodyLimits({ model: iris, maxBatchSize: 1024, bytesInFlight: 100 * KiB }),
    ).toEqual({ limitBytes: 100 * KiB, bytesInFlight: 100 * KiB });
    expect(resolveBodyLimits({ model: iris, maxBatchSize: 1024, limitBytes: 64 * MiB })).toEqual({
      limitBytes: 64 * MiB,
      bytesInFlight: 64 * MiB,
    });
  });
});
