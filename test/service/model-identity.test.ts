import { IdentityModel } from "../../service/src/model/identity";
import type { Tensor } from "../../service/src/model/model";

describe("IdentityModel", () => {
  const model = new IdentityModel({ name: "echo", version: "7" });

  it("declares one open input and one open output, on the identity platform", () => {
    expect(model).toMatchObject({ name: "echo", version: "7", platform: "identity" });
    expect(model.inputs).toEqual([{ name: "input", datatype: null, shape: null }]);
    expect(model.outputs).toEqual([{ name: "output", datatype: null, shape: null }]);
    expect(model.primaryOutput).toBe("output");
  });

  it.each<[string, Omit<Tensor, "name">]>([
    ["FP32 matrix", { datatype: "FP32", shape: [2, 2], data: Float32Array.of(1.5, -2, 0, 3) }],
    [
      "INT64 beyond 2^53",
      { datatype: "INT64", shape: [1], data: BigInt64Array.of(2n ** 62n + 1n) },
    ],
    ["BYTES vector", { datatype: "BYTES", shape: [2], data: ["a", "ü"] }],
    ["BOOL scalar", { datatype: "BOOL", shape: [], data: [true] }],
    ["empty rank-3 tensor", { datatype: "FP64", shape: [0, 5, 2], data: [] }],
  ])("returns a %s unchanged as `output`", async (_, tensor) => {
    const [output] = await model.predict([{ name: "whatever", ...tensor }]);
    expect(output).toEqual({ name: "output", ...tensor });
    expect(output.data).toBe(tensor.data);
  });

  it("rejects a call with no tensor or with two, naming the count", async () => {
    const one: Tensor = { name: "input", datatype: "FP32", shape: [1], data: [1] };
    await expect(model.predict([])).rejects.toThrow("takes exactly 1 input tensor, got 0");
    await expect(model.predict([one, one])).rejects.toThrow("got 2");
  });

  it("closes without error, more than once", async () => {
    await model.close();
    await expect(model.close()).resolves.toBeUndefined();
  });
});
