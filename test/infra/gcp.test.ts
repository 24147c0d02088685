import { gcsBucket } from "../../infra/gcp/model-reader";

const GCS_MODEL_URI = "gs://models-bucket/iris/v1/model.onnx";

describe("gcsBucket", () => {
  it.each([
    [GCS_MODEL_URI, "models-bucket"],
    ["gs://b.example.com/m.onnx", "b.example.com"],
  ])("%s → %s", (uri, bucket) => {
    expect(gcsBucket(uri)).toBe(bucket);
  });

  it.each([
    [undefined],
    ["https://storage.googleapis.com/models-bucket/m.onnx"],
    ["/app/models/iris.onnx"],
    ["gs://models-bucket"],
    ["gs://models-bucket/"],
    ["gs:///m.onnx"],
  ])("finds no bucket in %s", (uri) => {
    expect(gcsBucket(uri)).toBeUndefined();
  });
});
