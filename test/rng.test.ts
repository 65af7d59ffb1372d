import { strict as assert } from "node:assert";
import { Rng } from "../lib/util";

describe("Rng", () => {
  it("is deterministic per seed and differs across seeds", () => {
    const a = new Rng(7),
      b = new Rng(7),
      c = new Rng(8);
    const xs = Array.from({ length: 5 }, () => a.next());
    assert.deepEqual(
      Array.from({ length: 5 }, () => b.next()),
      xs,
    );
    assert.notDeepEqual(
      Array.from({ length: 5 }, () => c.next()),
      xs,
    );
    for (const x of xs) assert.ok(x >= 0 && x < 1);
  });

  it("resumes from its saved state", () => {
    const a = new Rng(3);
    a.next();
    a.next();
    const b = Rng.fromState(a.state);
    assert.deepEqual([b.next(), b.next(), b.int(100)], [a.next(), a.next(), a.int(100)]);
  });

  it("shuffles into a permutation, the same one for the same seed", () => {
    const p = new Rng(1).shuffle([...Array(50).keys()]);
    assert.deepEqual(
      [...p].sort((x, y) => x - y),
      [...Array(50).keys()],
    );
    assert.deepEqual(new Rng(1).shuffle([...Array(50).keys()]), p);
    assert.notDeepEqual(p, [...Array(50).keys()]);
  });

  it("draws integers uniformly enough to cover the range", () => {
    const r = new Rng(5);
    const seen = new Set(Array.from({ length: 200 }, () => r.int(6)));
    assert.deepEqual([...seen].sort(), [0, 1, 2, 3, 4, 5]);
    assert.throws(() => r.pick([]), /empty/);
    assert.throws(() => new Rng(NaN), /finite/);
  });
});
