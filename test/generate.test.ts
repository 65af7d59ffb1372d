import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { DecoderRNN, defaultInitializer } from "../lib/captioning";
import { BeamTrace, beamSearch, beamTree, beamSearchBatch, greedy, beamScore, rankBeams } from "../lib/captioning";
import { CiderD, SENTENCE_END, consensusCaption, consensusCider } from "../lib/captioning";
import { ensembleLogProbs, topK } from "../lib/captioning";
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
    // the tree: each candidate's parent the kept candidate of the step before with its beam index
    const tree = beamTree(steps, g);
    assert.equal(tree.nodes.length, steps.flat().length);
    for (const n of tree.nodes)
      if (n.step === 0) assert.equal(n.parent, undefined);
      else assert.ok(n.parent && n.parent.step === n.step - 1 && n.parent.fate === "kept");
    // the returned caption is a chain of kept extensions, then its <EOS>, ending at the caption's log-probability
    assert.deepEqual(
      tree.path.slice(0, g.ids.length).map((n) => [n.word, n.fate]),
      g.ids.map((w) => [w, "kept"]),
    );
    assert.ok(tree.path.every((n, t) => n.parent === (t ? tree.path[t - 1] : undefined)));
    assert.equal(tree.path.length, g.ids.length + (g.finished ? 1 : 0));
    if (g.finished) assert.deepEqual([tree.path.at(-1)!.word, tree.path.at(-1)!.fate], [EOS, "finished"]);
    assert.ok(Math.abs(tree.path.at(-1)!.score - g.logProb) < 1e-4);
    // a caption this search did not return has no path
    assert.throws(() => beamTree(steps, { ...g, ids: [...g.ids].reverse().concat([0]) }), /not in the search's tree/);
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

  describe("an ensemble of decoders", () => {
    const peaked = (seed: number) => {
      const d = new DecoderRNN(config, defaultInitializer(seed));
      d.fcn.assign(d.fcn.mul(8)); // distributions peaked enough for the captions to end
      return d;
    };

    it("averages the members' word probabilities: log of the mean, a word one member rules out kept", () => {
      const l = (xs: number[]) => Float32Array.from(xs, Math.log);
      const got = ensembleLogProbs([l([0.5, 0.5, 0, 0]), l([0.9, 0.1, 1, 0])]);
      const want = [0.7, 0.3, 0.5, 0];
      got.forEach((x, i) => assert.ok(Math.abs(Math.exp(x) - want[i]) < 1e-6, `word ${i}: ${Math.exp(x)}`));
      assert.equal(got[3], -Infinity);
      // far below float32's exp range: still the log of the mean, not NaN
      const tiny = ensembleLogProbs([Float32Array.of(-1000), Float32Array.of(-1000 + Math.log(3))]);
      assert.ok(Math.abs(tiny[0] - (-1000 + Math.log(2))) < 1e-3);
    });

    it("topK gives tf.topk's values and words, ties to the lower word", async () => {
      const N = 4;
      const V = 30;
      const x = Float32Array.from({ length: N * V }, (_, i) => ((i * 7919) % 11) - 5); // many ties
      for (const k of [1, 3, 5]) {
        const mine = topK(x, N, k);
        const ref = tf.topk(tf.tensor2d(x, [N, V]), k);
        assert.deepEqual(Array.from(mine.values), Array.from(await ref.values.data()), `k ${k}: values`);
        assert.deepEqual(Array.from(mine.indices), Array.from(await ref.indices.data()), `k ${k}: words`);
        tf.dispose([ref.values, ref.indices]);
      }
    });

    it("of one decoder twice decodes as that decoder", async () => {
      const d = peaked(3);
      const f = tf.randomUniform([3, 49, 16], 0, 1, "float32", 5) as tf.Tensor3D;
      for (const search of [
        (c: DecoderRNN | DecoderRNN[]) => greedy(c, f, 8),
        (c: DecoderRNN | DecoderRNN[]) => beamSearchBatch(c, f, 3, 8),
      ]) {
        const [one, two] = [await search(d), await search([d, d])];
        one.forEach((g, i) => {
          assert.deepEqual(two[i].ids, g.ids);
          assert.ok(Math.abs(two[i].logProb - g.logProb) < 1e-4);
          g.alphas.forEach((a, t) => a.forEach((v, r) => assert.ok(Math.abs(v - two[i].alphas[t][r]) < 1e-6)));
        });
      }
      f.dispose();
      d.dispose();
    });

    it("chooses each greedy word by the mean probability, and beam search scores captions by it", async () => {
      const members = [peaked(3), peaked(4)];
      const f = features();
      /** Σ_t log mean_m p_m(w_t | w_<t), teacher-forced, and whether each w_t was the mean's most probable word. */
      const ensembleScore = async (ids: number[], finished: boolean) => {
        const words = finished ? [...ids, EOS] : ids;
        const caps = tf.tensor2d([[1, ...words]], [1, words.length + 1], "int32");
        const probs = await Promise.all(
          members.map(async (m) => (await tf.softmax(m.forward(f, caps).logits).array()) as number[][][]),
        );
        caps.dispose();
        let logProb = 0;
        let argmax = true;
        words.forEach((w, t) => {
          const mean = probs[0][0][t].map((p, v) => (p + probs[1][0][t][v]) / 2);
          logProb += Math.log(mean[w]);
          argmax &&= mean[w] === Math.max(...mean);
        });
        return { logProb, argmax };
      };
      const [g] = await greedy(members, f, 8);
      const gs = await ensembleScore(g.ids, g.finished);
      assert.ok(gs.argmax, "every greedy word is the ensemble's most probable");
      assert.ok(Math.abs(g.logProb - gs.logProb) < 1e-4, `${g.logProb} vs ${gs.logProb}`);
      const [singleA] = await greedy(members[0], f, 8);
      const [singleB] = await greedy(members[1], f, 8);
      assert.ok(
        g.ids.join() !== singleA.ids.join() || g.ids.join() !== singleB.ids.join(),
        "the ensemble's caption is not simply both members'",
      );
      const [b] = await beamSearchBatch(members, f, 3, 8);
      assert.ok(Math.abs(b.logProb - (await ensembleScore(b.ids, b.finished)).logProb) < 1e-4);
      assert.ok(b.logProb >= g.logProb - 1e-5 || !g.finished, "beam 3 finds no less probable a caption than greedy");
      b.alphas.forEach((a) => assert.ok(Math.abs(a.reduce((x, y) => x + y, 0) - 1) < 1e-5, "mean α sums to 1"));
      f.dispose();
      members.forEach((m) => m.dispose());
    });
  });

  it("frees every intermediate tensor", async () => {
    const decoder = new DecoderRNN(config, defaultInitializer(3));
    const f = features();
    const two = tf.concat([f, f]) as tf.Tensor3D;
    const before = tf.memory().numTensors;
    await greedy(decoder, f, 5);
    await beamSearch(decoder, f, 3, 5);
    await beamSearchBatch(decoder, two, 3, 5);
    await greedy([decoder, decoder], f, 5);
    await beamSearchBatch([decoder, decoder], two, 3, 5);
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
    assert.deepEqual(rankBeams([short, long], 0), [short, long], "plain log-probability: the short caption");
    // α = 1: −2.0 / (8/6) = −1.5 against −2.6 / (13/6) = −1.2
    assert.deepEqual(rankBeams([short, long], 1), [long, short]);
    const tie = { ids: [4, 6], logProb: -2.0 };
    assert.deepEqual(rankBeams([short, tie], 0), [short, tie], "equals keep their order");
  });
});

describe("consensus decoding (minimum Bayes risk with CIDEr-D)", () => {
  before(setupBackend);
  const w = (s: string) => s.split(" ");
  const references = [
    "a dog runs on the grass",
    "a black dog runs through the grass",
    "a cat sleeps on a bed",
    "two men talk",
  ];
  const cider = new CiderD(references.map((r) => [w(r)]));
  /** As trainCider scores consensus: every reference ended with SENTENCE_END. */
  const ended = new CiderD(references.map((r) => [[...w(r), SENTENCE_END]]));

  it("picks the candidate with the highest mean CIDEr-D against the others, not the likeliest", () => {
    const cands = ["a cat sleeps", "a dog runs on the grass", "a black dog runs on the grass", "a dog runs"].map(w);
    const end = (c: string[]) => [...c, SENTENCE_END];
    const mean = cands.map((c, i) => ended.score(end(c), cands.filter((_, j) => j !== i).map(end)));
    const pick = consensusCaption(cands, ended);
    assert.equal(pick, mean.indexOf(Math.max(...mean)));
    assert.notEqual(pick, 0, "the outlier the beam ranked first is not the consensus");
    assert.ok(mean[0] < 0.1 && mean[pick] > 3, JSON.stringify(mean));
  });

  it("counts the end of the sentence: a caption cut off mid-phrase no longer wins as everyone's prefix", () => {
    const cands = [
      "a dog runs on a",
      "a dog runs on the grass",
      "a dog runs in the grass",
      "a dog runs on a field of grass",
    ];
    const words = cands.map(w);
    const withoutEnd = words.map((c, i) =>
      cider.score(
        c,
        words.filter((_, j) => j !== i),
      ),
    );
    assert.equal(withoutEnd.indexOf(Math.max(...withoutEnd)), 0, "without the end, the cut-off caption agrees most");
    assert.equal(cands[consensusCaption(words, ended)], "a dog runs on the grass");
    // stored document frequencies counted without the end are refused by name, with what to do
    assert.throws(
      () => consensusCider(cider.toJSON(), "m/consensus.json"),
      /m\/consensus.json was stored before consensus decoding counted the end of the sentence: export it again/,
    );
    assert.equal(consensusCider(ended.toJSON(), "m/consensus.json").documentFrequency([SENTENCE_END]), 4);
  });

  it("one candidate, or candidates that all agree, give the beam's own first choice", () => {
    assert.equal(consensusCaption([w("a dog")], cider), 0);
    assert.equal(consensusCaption([w("a dog runs"), w("a dog runs"), w("a dog runs")], cider), 0);
  });

  it("beam search returns its candidates best first by beamScore, the caption their first, each scored as decoded", async () => {
    for (const seed of [3, 4]) {
      const decoder = new DecoderRNN(config, defaultInitializer(seed));
      const f = features();
      for (const alpha of [0, 1]) {
        const b = await beamSearch(decoder, f, 4, 8, alpha);
        const c = b.candidates!;
        assert.ok(c.length >= 1 && c.length <= 4);
        assert.deepEqual([c[0].ids, c[0].logProb], [b.ids, b.logProb]);
        const scores = c.map((x) => beamScore(x.logProb, x.ids.length, alpha));
        for (let i = 1; i < c.length; i++) assert.ok(scores[i] <= scores[i - 1], JSON.stringify(scores));
        for (const x of c) {
          assert.equal(x.alphas.length, x.ids.length);
          assert.ok(Math.abs(x.logProb - (await sequenceLogProb(decoder, f, x.ids, x.finished))) < 1e-4);
        }
      }
      f.dispose();
      decoder.dispose();
    }
  });
});
