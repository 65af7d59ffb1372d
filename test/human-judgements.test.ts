import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { averageRanks, judgedPairs, kendallTauB, readExpertAnnotations, spearman } from "../lib/matching";
import { tmpDir } from "./helpers";

describe("agreement with human judgements", () => {
  // Reference: SciPy 1.10.1 (Debian python3-scipy), stats.kendalltau (τ-b), stats.spearmanr, stats.rankdata:
  //   x = [0.31, 0.52, 0.52, 0.10, 0.77, 0.45, 0.45, 0.9, 0.2, 0.6]
  //   y = [1, 2.333333, 3, 1, 4, 2.333333, 2, 3.666667, 1, 3]
  const x = [0.31, 0.52, 0.52, 0.1, 0.77, 0.45, 0.45, 0.9, 0.2, 0.6];
  const y = [1, 2.333333, 3, 1, 4, 2.333333, 2, 3.666667, 1, 3];

  it("ranks with ties averaged, as scipy.stats.rankdata", () => {
    assert.deepEqual(averageRanks(x), [3.0, 6.5, 6.5, 1.0, 9.0, 4.5, 4.5, 10.0, 2.0, 8.0]);
  });

  it("gives SciPy's Kendall τ-b and Spearman ρ with ties on both sides", () => {
    assert.ok(Math.abs(kendallTauB(x, y) - 0.8680370799067418) < 1e-12, `${kendallTauB(x, y)}`);
    assert.ok(Math.abs(spearman(x, y) - 0.953489720806149) < 1e-12, `${spearman(x, y)}`);
    assert.equal(kendallTauB([1, 2, 3], [3, 2, 1]), -1);
    assert.throws(() => spearman([1, 2], [1]), /2 values against 1/);
  });

  it("reads ExpertAnnotations.txt, names the line of a bad judgement, and pairs judgements with captions", () => {
    const dir = tmpDir();
    const file = path.join(dir, "ExpertAnnotations.txt");
    fs.writeFileSync(
      file,
      "a.jpg\tb.jpg#1\t1\t2\t2\na.jpg\ta.jpg#0\t4\t4\t3\nc.jpg\tb.jpg#0\t1\t1\t1\nb.jpg\tz.jpg#0\t2\t2\t2\n",
    );
    assert.equal(readExpertAnnotations(file).length, 4);
    const captions: Record<string, string[]> = { "a.jpg": ["a dog"], "b.jpg": ["a cat", "two cats"] };
    const r = judgedPairs(
      dir,
      (im) => captions[im] ?? [],
      (im) => im !== "c.jpg",
    );
    assert.deepEqual(r.pairs, [
      { image: "a.jpg", caption: "two cats", human: 5 / 3 },
      { image: "a.jpg", caption: "a dog", human: 11 / 3 },
    ]);
    assert.equal(r.missingImage, 1);
    assert.equal(r.missingCaption, 1);
    fs.writeFileSync(file, "a.jpg\tb.jpg#1\t1\t2\t2\na.jpg\ta.jpg#0\t4\t5\t3\n");
    assert.throws(
      () => readExpertAnnotations(file),
      new RegExp(`${file.replace(/[.]/g, "\\.")}:2: judgement 5 is not an integer from 1 to 4`),
    );
  });
});
