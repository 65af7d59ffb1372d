import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { cutOffRate, isCutOff } from "../lib/captioning";
import { readCaptions, resolveLayout, tokenize } from "../lib/data";
import { SHARED_FLICKR } from "./helpers";

describe("captions cut off mid-phrase", () => {
  const words = (s: string) => s.split(" ");

  it("flags a caption that ends on an open determiner, possessive, conjunction or preposition", () => {
    for (const s of [
      "a man in a black shirt is sitting on a",
      "a little boy in a black shirt is standing in front of a",
      "a dog with a ball in its",
      "a man and",
      "a group of",
      "a dog is running with",
    ])
      assert.ok(isCutOff(words(s)), s);
  });

  it("flags an article followed only by colour and size words: a noun phrase never given its noun", () => {
    for (const s of ["a football player in a red", "a dog in a black and white", "a girl holding a small"])
      assert.ok(isCutOff(words(s)), s);
  });

  it("keeps the endings human captions use: adverbs, pronouns, adjectives after a verb, nouns spelt like adjectives", () => {
    for (const s of [
      "two brown dogs are playing in the snow",
      "a man is standing outside",
      "a woman hugging her",
      "a man with a hat on",
      "the dog is black and white",
      "a boy jumps from one bed to another",
      "people gathered around in the dark",
      "a brown dog on a grassy plain",
      "a dog looks up",
    ])
      assert.ok(!isCutOff(words(s)), s);
    assert.ok(isCutOff([]), "an empty caption has no end");
  });

  it("is a share of the captions", () => {
    assert.equal(cutOffRate([words("a dog runs"), words("a dog runs on a"), words("a cat"), words("a red")]), 0.5);
    assert.equal(cutOffRate([]), 0);
  });

  it("Flickr8k's human captions: about one in a thousand is cut off", function () {
    if (!SHARED_FLICKR) return this.skip();
    const layout = resolveLayout(SHARED_FLICKR);
    if (!fs.existsSync(layout.captionsFile)) return this.skip();
    const refs = readCaptions(layout.captionsFile).map((r) => tokenize(r.caption));
    assert.ok(refs.length > 40_000, path.basename(layout.captionsFile));
    const rate = cutOffRate(refs);
    assert.ok(rate > 0.0005 && rate < 0.002, `${(100 * rate).toFixed(2)} %`);
  });
});
