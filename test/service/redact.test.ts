import { withoutUrlSecrets } from "../../service/src/redact";

describe("withoutUrlSecrets", () => {
  it.each([
    [
      "model download from https://storage.example/m.onnx?X-Goog-Signature=abc&X-Goog-Date=1 failed",
      "model download from https://storage.example/m.onnx failed",
    ],
    ["https://user:password@host.example/m.onnx#part", "https://host.example/m.onnx"],
    ["gs://bucket/models/m.onnx?generation=7", "gs://bucket/models/m.onnx"],
    ["Failed to parse URL from https://h/x?sig=a b", "Failed to parse URL from https://h/x b"],
    ["no URL here?a=b", "no URL here?a=b"],
  ])("%s", (text, expected) => {
    expect(withoutUrlSecrets(text)).toBe(expected);
  });

  it("keeps a JSON log line valid JSON", () => {
    const line = JSON.stringify({ message: 'cannot fetch "https://h/m.onnx?sig=SECRET"', n: 1 });
    const cleaned = withoutUrlSecrets(line);
    expect(JSON.parse(cleaned)).toEqual({ message: 'cannot fetch "https://h/m.onnx"', n: 1 });
  });
});
