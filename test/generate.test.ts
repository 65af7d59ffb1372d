import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { DecoderRNN, defaultInitializer } from "../lib/captioning";
import { BeamTrace, beamSearch, beamSearchBatch, greedy, beamScore, bestBeam } from "../lib/captioning";
import { EOS } from "../lib/data";
import { setupBackend } from "./helpers";

const config = { vocabSize: 12, embedSize: 8, encoderDim: 16, attentionDim: 8, decoderDim: 16, dropout: 0 };
const features = () => tf.randomUniform([1, 49, 16], 0, 1, "float32", 5) as tf.Tensor3D;

/** Log-probability of a given word sequence (then <EOS> if finished), teacher-forced: to check the searches. */
async function sequenceLogProb(decoder: DecoderRNN, f: tf.Tensor3D, ids: number[], finished: boolean): Promise<number> {
  const words = finished ? [...ids, EOS] : ids;
  const caps = tf.tensor2d([[1, ...words]], [1, words.length + 1], "int32");
  const logp = tf.logSoftmax(decoder.forward(f, caps).logits);
  const lp = (await logp.array()) as number[][][];
  return words.reduce((a, w, t) => a + lp[0][t][w], 0);
}

describe("caption generation", () => {
  before(setupBackend);

  it("greedy returns words with one 49-region attention vector each, and their log-probability", async () => {
    const decoder = new DecoderRNN(config, defaultInitializer(3));
    const f = features();
    const [g] = await greedy(decoder, f, 6);
    assert.ok(g.ids.length <= 6 && g.ids.length === g.alphas.length);
    for (const a of g.alphas) {
      assert.equal(a.length, 49);
      assert.ok(Math.abs(a.reduce((x, y) => x + y, 0) - 1) < 1e-5, "α sums to 1 over the regions");
    }
    assert.ok(Math.abs(g.logProb - (await sequenceLogProb(decoder, f, g.ids, g.finished))) < 1e-4);
    decoder.dispose();
  });

  it("beam search with k = 1 is greedy, and a wider beam never finds a less probable caption", async () => {
    for (const seed of [3, 4, 5]) {
      const decoder = new DecoderRNN(config, defaultInitializer(seed));
      const f = features();
      const [g] = await greedy(decoder, f, 8);
      const b1 = await beamSearch(decoder, f, 1, 8);
      assert.deepEqual(b1.ids, g.ids);
      const b3 = await beamSearch(decoder, f, 3, 8);
      assert.ok(
        b3.logProb >= g.logProb - 1e-5 || !g.finished,
        `seed ${seed}: beam ${b3.logProb} < greedy ${g.logProb}`,
      );
      assert.ok(
        Math.abs(b3.logProb - (await sequenceLogProb(decoder, f, b3.ids, b3.finished))) < 1e-4,
        "beam score = the caption's log-probability",
      );
      assert.equal(b3.alphas.length, b3.ids.length);
      decoder.dispose();
    }
  });

  it("beam search over a batch of images finds each image's caption of the search one image at a time", async () => {
    // (seed, <EOS> bias, k) where the five images' searches end at different steps (found by trying)
    for (const [seed, eosBias, k] of [
      [3, 0.4, 1],
      [4, 0.1, 3],
    ]) {
      const decoder = new DecoderRNN(config, defaultInitializer(seed));
      const b = decoder.bFcn.arraySync() as number[];
      b[EOS] += eosBias;
      decoder.bFcn.assign(tf.tensor1d(b));
      const f = tf.randomUniform([5, 49, 16], 0, 4, "float32", 9) as tf.Tensor3D;
      const batch = await beamSearchBatch(decoder, f, k, 8);
      assert.equal(batch.length, 5);
      const lengths = new Set<number>();
      for (let i = 0; i < 5; i++) {
        const fi = f.slice([i, 0, 0], [1, 49, 16]);
        const one = await beamSearch(decoder, fi, k, 8);
        fi.dispose();
        assert.deepEqual(batch[i].ids, one.ids, `k ${k}, image ${i}`);
        assert.equal(batch[i].finished, one.finished);
        assert.ok(Math.abs(batch[i].logProb - one.logProb) < 1e-4);
        batch[i].alphas.forEach((a, t) => a.forEach((v, r) => assert.ok(Math.abs(v - one.alphas[t][r]) < 1e-5)));
        lengths.add(one.ids.length);
      }
      assert.ok(lengths.size > 1, `k ${k}: the images' captions end at different steps (${[...lengths]})`);
      f.dispose();
      decoder.dispose();
    }
  });

  it("traces the search: k candidates per beam each step, the kept ones best first, the caption a chain of them", async () => {
    const decoder = new DecoderRNN(config, defaultInitializer(7));
    decoder.fcn.assign(decoder.fcn.mul(10)); // peaked distributions: the captions end
    const f = features();
    const steps: Parameters<BeamTrace>[2][] = [];
    const [g] = await beamSearchBatch(decoder, f, 3, 10, 0, undefined, (t, image, cands) => {
      assert.equal(image, 0);
      assert.equal(t, steps.length);
      steps.push(cands);
    });
    assert.equal(steps[0].length, 3, "step 0 expands the single start beam");
    for (const cands of steps) {
      assert.ok(
        cands.every((c, j) => j === 0 || cands[j - 1].score >= c.score),
        "best first",
      );
      assert.ok(cands.filter((c) => c.fate !== "dropped").length <= 3);
    }
    // the returned caption: each word a kept extension of the beam the word before it survived as (the start beam: 0)
    let beam = 0;
    for (let t = 0; t < g.ids.length; t++) {
      const kept = steps[t].filter((c) => c.fate === "kept");
      beam = kept.findIndex((c) => c.beam === beam && c.word === g.ids[t]);
      assert.ok(beam >= 0, `word ${t} extends the beam it came from`);
    }
    if (g.finished)
      assert.ok(steps[g.ids.length].some((c) => c.beam === beam && c.word === EOS && c.fate === "finished"));
    decoder.dispose();
  });

  it("always returns a caption, even when no beam ever emits <EOS>", async () => {
    const decoder = new DecoderRNN(config, defaultInitializer(7));
    const b = decoder.bFcn.arraySync() as number[];
    b[EOS] = -1e4; // <EOS> is never chosen
    decoder.bFcn.assign(tf.tensor1d(b));
    const f = features();
    const r = await beamSearch(decoder, f, 3, 5);
    assert.equal(r.finished, false);
    assert.equal(r.ids.length, 5, "cut at maxLen");
    const [g] = await greedy(decoder, f, 5);
    assert.equal(g.finished, false);
    assert.equal(g.ids.length, 5);
    decoder.dispose();
  });

  it("frees every intermediate tensor", async () => {
    const decoder = new DecoderRNN(config, defaultInitializer(3));
    const f = features();
    const two = tf.concat([f, f]) as tf.Tensor3D;
    const before = tf.memory().numTensors;
    await greedy(decoder, f, 5);
    await beamSearch(decoder, f, 3, 5);
    await beamSearchBatch(decoder, two, 3, 5);
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([f, two]);
    decoder.dispose();
  });
});

describe("length normalisation of beam search", () => {
  it("divides the log-probability by GNMT's ((5 + |y|) / 6)^α, |y| counting <EOS>, and picks by it", () => {
    assert.equal(beamScore(-3, 4, 0), -3);
    assert.ok(Math.abs(beamScore(-3, 4, 1) - -3 / (10 / 6)) < 1e-12);
    assert.ok(Math.abs(beamScore(-3, 7, 0.5) - -3 / Math.sqrt(13 / 6)) < 1e-12);
    const short = { ids: [4, 5], logProb: -2.0 };
    const long = { ids: [4, 5, 6, 7, 8, 9, 10], logProb: -2.6 };
    assert.equal(bestBeam([short, long], 0), short, "plain log-probability: the short caption");
    // α = 1: −2.0 / (8/6) = −1.5 against −2.6 / (13/6) = −1.2
    assert.equal(bestBeam([short, long], 1), long);
  });
});
