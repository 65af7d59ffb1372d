import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { sha256Hex } from "../lib/util/sha256";
import { Rng } from "../lib/util";

/** The plain-TypeScript SHA-256 the explorer falls back to where the page has no crypto.subtle. */
describe("sha256Hex", () => {
  it("gives FIPS 180-4's digests of 'abc' and of the empty message", () => {
    const utf8 = (s: string) => new TextEncoder().encode(s);
    assert.equal(sha256Hex(utf8("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert.equal(sha256Hex(utf8("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });

  it("equals Node's sha256 at every padding boundary and over a megabyte, also on a view into a larger buffer", () => {
    const rng = new Rng(3);
    for (const n of [1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 2 ** 20 + 7]) {
      const whole = Uint8Array.from({ length: n + 11 }, () => rng.int(256));
      const view = whole.subarray(5, 5 + n); // an offset into the buffer, as fetched data may be
      assert.equal(sha256Hex(view), createHash("sha256").update(view).digest("hex"), `${n} bytes`);
    }
  });
});
