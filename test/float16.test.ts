import { strict as assert } from "node:assert";
import { decodeHalf, encodeHalf, fromHalf, toHalf } from "../lib/util";

describe("float16", () => {
  it("encodes reference values bit-exactly (IEEE 754 binary16)", () => {
    // Reference bit patterns as numpy gives them: np.float16(x).view(np.uint16)
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff],
      [65520, 0x7c00],
      [1e-8, 0x0000],
      [2 ** -24, 0x0001],
      [2 ** -14, 0x0400],
      [0.1, 0x2e66],
      [1 / 3, 0x3555],
      [Infinity, 0x7c00],
      [1 + 2 ** -11, 0x3c00],
      [1 + 3 * 2 ** -11, 0x3c02],
      [3.14159, 0x4248],
    ];
    for (const [x, bits] of cases)
      assert.equal(toHalf(x), bits, `toHalf(${x}) = 0x${toHalf(x).toString(16)}, want 0x${bits.toString(16)}`);
    assert.ok(Number.isNaN(fromHalf(toHalf(NaN))));
  });

  it("round-trips within 2^-11 relative error", () => {
    const xs = Float32Array.from({ length: 10000 }, (_, i) => Math.exp(Math.sin(i) * 8) * (i % 2 ? 1 : -1));
    const back = decodeHalf(encodeHalf(xs));
    for (let i = 0; i < xs.length; i++)
      assert.ok(Math.abs(back[i] - xs[i]) <= Math.abs(xs[i]) * 2 ** -11 + 2 ** -25, `${xs[i]} → ${back[i]}`);
  });
});
