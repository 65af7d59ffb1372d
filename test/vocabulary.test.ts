import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { tokenize } from "../lib/data";
import { EOS, PAD, SOS, UNK, Vocabulary, buildVocabulary, countWords, vocabularySizes } from "../lib/data";
import { FLICKR8K_WORD_COUNTS, loadVocabulary, readWordCounts, saveVocabulary, trainCaptions } from "../lib/data";
import { SHARED_FLICKR, tinyFlickr, tmpDir } from "./helpers";

describe("tokenize", () => {
  it("lower-cases and drops punctuation as PTB does, keeping words as written and hyphenated words whole", () => {
    assert.deepEqual(tokenize("A child in a pink dress is climbing up a set of stairs in an entry way ."), [
      "a",
      "child",
      "in",
      "a",
      "pink",
      "dress",
      "is",
      "climbing",
      "up",
      "a",
      "set",
      "of",
      "stairs",
      "in",
      "an",
      "entry",
      "way",
    ]);
    assert.deepEqual(tokenize("A dog shakes its head near the shore , a red ball next to it ."), [
      "a",
      "dog",
      "shakes",
      "its",
      "head",
      "near",
      "the",
      "shore",
      "a",
      "red",
      "ball",
      "next",
      "to",
      "it",
    ]);
    assert.deepEqual(tokenize("Two-year-old kids don't swim!"), ["two-year-old", "kids", "do", "n't", "swim"]);
    // No respelling (wink's normal forms gave "thru", "gray"); clitics split as PTB: "dog's" → "dog" "'s", "I'm" → "i" "'m".
    assert.deepEqual(tokenize("The dog's toy goes through the grey door; I'm sure"), [
      "the",
      "dog",
      "'s",
      "toy",
      "goes",
      "through",
      "the",
      "grey",
      "door",
      "i",
      "'m",
      "sure",
    ]);
    // A hyphen between spaces is punctuation, not a join; quotes, brackets and "..." are dropped, "&" and "3:30" kept.
    assert.deepEqual(tokenize('men - in "orange" (t-shirts) & tug-of-war... at 3:30'), [
      "men",
      "in",
      "orange",
      "t-shirts",
      "&",
      "tug-of-war",
      "at",
      "3:30",
    ]);
    assert.deepEqual(tokenize("   "), []);
  });
});

describe("Vocabulary", () => {
  const caps = ["a dog runs", "a dog jumps", "A cat runs .", "a dog"];

  it("keeps words that reach the threshold, reserved ids first, then by frequency", () => {
    // counts: a 4, dog 3, runs 2, cat 1, jumps 1
    assert.deepEqual(countWords(caps), [
      ["a", 4],
      ["dog", 3],
      ["runs", 2],
      ["cat", 1],
      ["jumps", 1],
    ]);
    const v = buildVocabulary(caps, 2);
    assert.deepEqual(v.itos, ["<PAD>", "<SOS>", "<EOS>", "<UNK>", "a", "dog", "runs"]);
    assert.deepEqual([PAD, SOS, EOS, UNK], [0, 1, 2, 3]);
    assert.equal(v.size, 7);
    assert.deepEqual(v.counts, [0, 0, 0, 0, 4, 3, 2]);
    assert.equal(buildVocabulary(caps, 1).size, 9);
    assert.equal(buildVocabulary(caps, 5).size, 4);
    assert.deepEqual(vocabularySizes(countWords(caps), [1, 2, 3, 5]), [9, 7, 6, 4]);
    assert.throws(() => buildVocabulary(caps, 0), /freqThreshold must be ≥ 1/);
  });

  it("numericalizes with <UNK> for unknown words and decodes up to <EOS>", () => {
    const v = buildVocabulary(caps, 2);
    assert.deepEqual(v.numericalize("A cat runs!"), [4, UNK, 6]);
    assert.deepEqual(v.encode("a dog"), [SOS, 4, 5, EOS]);
    assert.deepEqual(v.decode([SOS, 4, 5, 6, EOS, 4, PAD]), ["a", "dog", "runs"]);
    assert.deepEqual(v.decode([4, UNK]), ["a", "<UNK>"]);
    assert.throws(() => v.decode([99]), /id 99 is outside 0\.\.6/);
  });

  it("saves and loads as versioned JSON", () => {
    const f = path.join(tmpDir(), "vocab.json");
    const v = buildVocabulary(caps, 2);
    saveVocabulary(v, f);
    const back = loadVocabulary(f);
    assert.deepEqual(back.itos, v.itos);
    assert.deepEqual(back.counts, v.counts);
    assert.equal(back.freqThreshold, 2);
    assert.deepEqual(back.numericalize("a dog runs"), v.numericalize("a dog runs"));
  });

  it("refuses a vocabulary of another format version, naming the file", () => {
    const f = path.join(tmpDir(), "old.json");
    fs.writeFileSync(f, JSON.stringify({ ...buildVocabulary(caps, 2).toJSON(), version: 0 }));
    assert.throws(
      () => loadVocabulary(f),
      new RegExp(`vocabulary file ${f} has vocabulary format version 0; this attend-tell reads version 1`),
    );
    fs.writeFileSync(f, JSON.stringify({ words: [] }));
    assert.throws(() => loadVocabulary(f), /is not an attend-tell vocabulary/);
    assert.throws(() => loadVocabulary(f + ".missing"), /does not exist/);
    assert.throws(() => new Vocabulary(["<SOS>", "<PAD>", "<EOS>", "<UNK>"], 1), /id 0 must be <PAD>/);
  });

  it("is built from the train split only", async () => {
    const dir = await tinyFlickr();
    const train = trainCaptions(dir);
    assert.equal(train.length, 4, "a.jpg and b.jpg, two captions each");
    const v = buildVocabulary(train, 1);
    assert.ok(v.has("dog"));
    assert.ok(!v.has("bicycle"), "bicycle occurs only in the dev caption");
  });

  it("ships Flickr8k's train word counts (notebook 01's long tail), checksummed: a damaged copy is refused", () => {
    const counts = readWordCounts();
    assert.ok(counts.length > 5000, `${counts.length} words`);
    assert.deepEqual(counts[0], ["a", counts[0][1]]);
    assert.ok(
      counts.every(([, n], i) => i === 0 || n <= counts[i - 1][1]),
      "most frequent first",
    );
    // the threshold trade-off it is there to show: thousands of ids at 1, far fewer at 5
    const [all, five] = vocabularySizes(counts, [1, 5]);
    assert.ok(all > 2 * five, `${all} ids at threshold 1, ${five} at 5`);
    const f = path.join(tmpDir(), "counts.json");
    fs.writeFileSync(f, fs.readFileSync(FLICKR8K_WORD_COUNTS, "utf8").replace('["dog",', '["dgo",'));
    assert.throws(() => readWordCounts(f), new RegExp(`${f} is damaged: sha256 [0-9a-f]{64}, expected`));
  });

  it("the shipped word counts are those of Flickr8k's train captions (where Flickr8k is present)", function () {
    if (!SHARED_FLICKR) this.skip();
    assert.deepEqual(readWordCounts(), countWords(trainCaptions(SHARED_FLICKR)));
  });
});
