import { strict as assert } from "node:assert";
import { CiderD, bleu, captionMetrics, ciderD, lcsLength, rougeL } from "../lib/captioning";
import { readReference } from "./helpers";

/**
 * Reference: test/reference/metrics_reference.py — pycocoevalcap (tylin/coco-caption: Bleu, Cider, Rouge) and
 * NLTK 3.8's corpus_bleu (Debian python3-nltk), which writes test/reference/metrics_reference.json. BLEU/ROUGE-L there are 0–1; ours ×100.
 */
const REF = readReference("metrics_reference.json");

const gts: Record<string, string[]> = {
  a: [
    "a black dog is running through the grass",
    "a dog runs across a green field",
    "the black dog runs on the grass",
    "a dog running in a field",
    "a black dog is running outside",
  ],
  b: [
    "two children play in the water at the beach",
    "kids are playing in the ocean",
    "two kids splash in the waves",
    "children playing in the sea",
    "two young children play in shallow water",
  ],
  c: [
    "a man rides a bike down a dirt path",
    "a cyclist rides on a trail in the woods",
    "a person on a mountain bike",
    "a man is riding his bicycle on a dirt road",
    "a biker rides through the forest",
  ],
  d: [
    "a girl in a pink dress jumps",
    "a little girl jumping on the grass",
    "a young girl in pink is jumping in the air",
    "a child jumps high",
    "a girl is jumping",
  ],
  e: [
    "a group of people stand on a street",
    "people walking down a busy city street",
    "a crowd of people in the city",
    "many people are standing outside a building",
    "a busy street with lots of people",
  ],
};
const res: Record<string, string> = {
  a: "a black dog is running on the grass",
  b: "two children are playing in the water",
  c: "a man is riding a bike on a dirt road",
  d: "a girl in a pink shirt is jumping",
  e: "a man in a red shirt is standing in front of a building",
};
const ids = Object.keys(gts);
const cands = ids.map((i) => res[i].split(" "));
const refs = ids.map((i) => gts[i].map((r) => r.split(" ")));

const near = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

describe("captioning metrics, against pycocoevalcap and NLTK", () => {
  it("BLEU-1…4 equal pycocoevalcap's corpus BLEU (and NLTK's corpus_bleu), ×100", () => {
    const b = bleu(cands, refs);
    b.forEach((v, n) => near(v, 100 * REF.bleu[n], 1e-9, `BLEU-${n + 1}`));
    b.forEach((v, n) => near(v, 100 * REF.nltk_corpus_bleu[n], 1e-6, `BLEU-${n + 1} vs NLTK`));
    bleu([cands[0]], [refs[0]]).forEach((v, n) =>
      near(v, 100 * REF.bleu_single_image_a[n], 1e-9, `one image BLEU-${n + 1}`),
    );
  });

  it("CIDEr-D equals pycocoevalcap's, per image and on average", () => {
    const c = ciderD(cands, refs);
    near(c.score, REF.cider, 1e-9, "CIDEr-D");
    c.perImage.forEach((v, i) => near(v, REF.cider_per_image[i], 1e-9, `CIDEr-D of ${ids[i]}`));
  });

  it("CIDEr-D's document frequencies survive JSON (those of one set left out) and score as pycocoevalcap's", () => {
    const json = JSON.parse(JSON.stringify(new CiderD(refs).toJSON()));
    assert.equal(json.documents, 5);
    assert.equal(json.df["1|dog"], undefined, "dog: image a's references only");
    assert.equal(json.df["1|a"], 4, "every image's references but b's");
    assert.equal(json.df["2|in the"], 4, "b (the water), c (the woods), d (the air), e (the city)");
    const stored = CiderD.fromJSON(json);
    cands.forEach((c, i) => near(stored.score(c, refs[i]), REF.cider_per_image[i], 1e-9, `CIDEr-D of ${ids[i]}`));
    assert.throws(
      () => CiderD.fromJSON({ ...json, format: "x" }, "m/consensus.json"),
      /^Error: m\/consensus.json: not CIDEr-D/,
    );
    assert.throws(() => CiderD.fromJSON({ ...json, df: { "1|a": 9 } }, "f"), /^Error: f: bad entry "1\|a": 9$/);
    assert.throws(() => CiderD.fromJSON({ ...json, documents: 0 }, "f"), /documents must be a positive integer/);
  });

  it("ROUGE-L equals pycocoevalcap's, ×100", () => {
    near(rougeL(cands, refs), 100 * REF.rougeL, 1e-9, "ROUGE-L");
  });

  it("BLEU by hand: clipped counts and the brevity penalty", () => {
    // candidate "the the the" vs reference "the cat": unigram matches clipped to 1 of 3 guesses; c = 3 > r = 2, no penalty
    near(bleu([["the", "the", "the"]], [[["the", "cat"]]])[0], 100 / 3, 1e-6, "clipped BLEU-1");
    // candidate "the cat" vs reference "the cat sat": precision 1, BP = exp(1 − 3/2)
    near(bleu([["the", "cat"]], [[["the", "cat", "sat"]]])[0], 100 * Math.exp(1 - 3 / 2), 1e-6, "brevity penalty");
  });

  it("finds the longest common subsequence", () => {
    assert.equal(lcsLength("a b c d e".split(" "), "a c e f".split(" ")), 3);
    assert.equal(lcsLength([], ["a"]), 0);
  });

  it("scores identical captions at the top and names what is wrong with bad input", () => {
    const m = captionMetrics([["a", "dog", "runs", "on", "grass"]], [[["a", "dog", "runs", "on", "grass"]]]);
    near(m.bleu4, 100, 1e-6, "BLEU-4 of a perfect caption");
    near(m.rougeL, 100, 1e-9, "ROUGE-L of a perfect caption");
    assert.throws(() => bleu([["a"]], []), /1 candidates but 0 reference sets/);
    assert.throws(() => ciderD([["a"]], [[]]), /image 0 has no reference captions/);
  });
});
