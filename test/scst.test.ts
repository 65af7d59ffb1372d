import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { DecoderRNN, captionLoss, defaultInitializer } from "../lib/captioning";
import { sampleCaptions } from "../lib/captioning";
import { CiderD, ciderD } from "../lib/captioning";
import { OnnxTrainer } from "../lib/captioning";
import {
  captionReward,
  defaultScstConfig,
  rewardedWords,
  scstAdvantages,
  trainScst,
  wordLogProbs,
} from "../lib/captioning";
import { SENTENCE_END } from "../lib/captioning";
import { buildVocabulary } from "../lib/data";
import { defaultTrainConfig, epochDir, loadCheckpoint, train } from "../lib/captioning";
import { loadOrt } from "../lib/engine";
import { setupBackend, syntheticFeatureData, tmpDir } from "./helpers";

const tiny = { vocabSize: 9, embedSize: 4, attentionDim: 5, encoderDim: 6, decoderDim: 7, dropout: 0.3 };
const feats = (B: number) =>
  tf.tensor3d(
    Array.from({ length: B * 4 * 6 }, (_, i) => 0.5 + 0.5 * Math.sin(0.37 * i)),
    [B, 4, 6],
  );

describe("self-critical sequence training", function () {
  this.timeout(600_000);
  before(setupBackend);

  it("samples each word from the model's softmax (first-word frequencies over 3,000 draws), repeatably by seed", async () => {
    const d = new DecoderRNN(tiny, defaultInitializer(3));
    const f = feats(1);
    const draws = await sampleCaptions(d, f, { samples: 3000, seed: 7, maxLen: 1 });
    const p = tf.tidy(() => {
      const s = d.step(
        tf.gather(d.embedding, tf.tensor1d([1], "int32")) as tf.Tensor2D,
        d.attention.projectFeatures(f),
        f,
        d.initHidden(f),
      );
      return tf.softmax(d.output(s.h, false));
    });
    const probs = Array.from(await p.data());
    const counts = new Array(tiny.vocabSize).fill(0);
    for (const g of draws) counts[g.ids[0] ?? 2]++; // <EOS> (2) ends a caption with no word
    probs.forEach((q, v) => {
      const sd = Math.sqrt((q * (1 - q)) / 3000);
      assert.ok(Math.abs(counts[v] / 3000 - q) < 4 * sd + 1e-3, `word ${v}: ${counts[v] / 3000} vs p = ${q}`);
    });
    const again = await sampleCaptions(d, f, { samples: 50, seed: 7, maxLen: 5 });
    const other = await sampleCaptions(d, f, { samples: 50, seed: 8, maxLen: 5 });
    assert.deepEqual(
      again.map((g) => g.ids),
      (await sampleCaptions(d, f, { samples: 50, seed: 7, maxLen: 5 })).map((g) => g.ids),
    );
    assert.notDeepEqual(
      again.map((g) => g.ids),
      other.map((g) => g.ids),
    );
    tf.dispose([f, p]);
    d.dispose();
  });

  it("the advantage-weighted loss is Σ w_b·(−log p of caption b's words) / tokens, and ONNX Runtime's gradient equals tfjs autodiff's", async () => {
    const d = new DecoderRNN(tiny, defaultInitializer(5));
    const f = feats(3);
    const c = tf.tensor2d(
      [
        [1, 4, 5, 2, 0],
        [1, 6, 2, 0, 0],
        [1, 7, 8, 3, 2],
      ],
      [3, 5],
      "int32",
    );
    const w = [0.5, -1.25, 2];
    const out = d.forward(f, c, { training: false });
    const loss = (await captionLoss(out, c, { lambda: 0, captionWeights: tf.tensor1d(w) }).loss.data())[0];
    // by hand: log-softmax of each real target word, weighted by its caption
    const logp = (await tf.logSoftmax(out.logits).array()) as number[][][];
    const ids = (await c.array()) as number[][];
    let sum = 0,
      tokens = 0;
    ids.forEach((row, b) =>
      row.slice(1).forEach((y, t) => {
        if (y !== 0) {
          sum += -w[b] * logp[b][t][y];
          tokens++;
        }
      }),
    );
    assert.ok(Math.abs(loss - sum / tokens) < 1e-5, `${loss} vs ${sum / tokens}`);
    if (loadOrt()) {
      const { grads } = tf.variableGrads(
        () => captionLoss(d.forward(f, c, { training: false }), c, { lambda: 0, captionWeights: tf.tensor1d(w) }).loss,
        d.variables,
      );
      const trainer = new OnnxTrainer(tiny, 4);
      const r = await trainer.step(
        await OnnxTrainer.parameters(d),
        (await f.data()) as Float32Array,
        (await c.data()) as Int32Array,
        3,
        5,
        {
          seed: 1,
          lambda: 0,
          dropout: 0,
          captionWeights: w,
        },
      );
      assert.ok(Math.abs(r.loss - loss) < 1e-5);
      const names = Object.keys(grads);
      d.variables.forEach((v, i) => {
        const ours = Array.from(grads[names[i]].dataSync());
        const onnx = Array.from(Object.values(r.grads)[i]);
        ours.forEach((g, j) =>
          assert.ok(Math.abs(g - onnx[j]) < 1e-5 + 1e-4 * Math.abs(g), `${v.name}[${j}]: ${g} vs ${onnx[j]}`),
        );
      });
      await assert.rejects(
        trainer.step(await OnnxTrainer.parameters(d), new Float32Array(72), new Int32Array(15), 3, 5, {
          seed: 1,
          lambda: 0.5,
          dropout: 0,
          captionWeights: w,
        }),
        /captionWeights need lambda 0/,
      );
      await trainer.dispose();
      tf.dispose(Object.values(grads));
    }
    tf.dispose([f, c, out.logits, out.alphas]);
    d.dispose();
  });

  it("CIDEr-D with fixed document frequencies scores as pycocoevalcap's corpus CIDEr-D when built from the same references", () => {
    const refs = [
      [
        ["a", "dog", "runs"],
        ["a", "brown", "dog"],
      ],
      [
        ["two", "cats", "sleep"],
        ["cats", "on", "a", "bed"],
      ],
      [["a", "man", "rides"]],
    ];
    const cands = [
      ["a", "dog"],
      ["two", "cats", "on", "a", "bed"],
      ["a", "man", "rides", "a", "bike"],
    ];
    const scorer = new CiderD(refs);
    const { perImage } = ciderD(cands, refs);
    cands.forEach((c, i) => assert.equal(scorer.score(c, refs[i]), perImage[i]));
  });

  it("advantages: the greedy caption's reward, or the mean of the image's other samples, as baseline", () => {
    const rewards = [1, 2, 3, 0.5, 0.5, 2];
    assert.deepEqual(scstAdvantages(rewards, 3, [2, 1]), [-1, 0, 1, -0.5, -0.5, 1]);
    // the others' means: (2+3)/2, (1+3)/2, (1+2)/2; (0.5+2)/2, (0.5+2)/2, (0.5+0.5)/2
    assert.deepEqual(scstAdvantages(rewards, 3), [-1.5, 0, 1.5, -0.75, -0.75, 1.5]);
    assert.throws(() => scstAdvantages([1, 2], 1), /at least 2 samples per image/);
  });

  it("wordLogProbs: each target word's log-probability, 0 at <PAD>; the cross-entropy is minus their mean", async () => {
    const d = new DecoderRNN(tiny, defaultInitializer(4));
    const f = feats(2);
    const c = tf.tensor2d(
      [
        [1, 5, 6, 2],
        [1, 7, 2, 0],
      ],
      [2, 4],
      "int32",
    );
    const out = d.forward(f, c);
    const lp = await wordLogProbs(out, c).array();
    const probs = (await tf.softmax(out.logits).array()) as number[][][];
    assert.ok(Math.abs(lp[0][1] - Math.log(probs[0][1][6])) < 1e-5); // step 2 of caption 0 predicts word 6
    assert.ok(lp[1][2] === 0); // <PAD> (−0 × 0)
    const ce = (await captionLoss(out, c, { lambda: 0 }).crossEntropy.data())[0];
    const sum = lp.flat().reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(ce + sum / 5) < 1e-6, `${ce} vs ${-sum / 5}`);
    tf.dispose([f, c, out.logits, out.alphas]);
    d.dispose();
  });

  it("the reward adds the weighted per-caption BLEU-4 to CIDEr-D (a hand-computed BLEU-4)", () => {
    const refs = [
      ["two", "cats", "sleep"],
      ["cats", "on", "a", "bed"],
    ];
    const cand = ["two", "cats", "on", "a", "bed"];
    const cider = new CiderD([refs, [["a", "dog", "runs"]]]);
    assert.equal(captionReward(cider, cand, refs), cider.score(cand, refs));
    assert.equal(captionReward(cider, cand, refs, 0), cider.score(cand, refs));
    // closest reference length 4 < 5 words: no brevity penalty; n-gram precisions 5/5, 4/4, 2/3, 1/2
    const bleu4 = (1 * 1 * (2 / 3) * (1 / 2)) ** (1 / 4);
    assert.ok(Math.abs(captionReward(cider, cand, refs, 0.5) - (cider.score(cand, refs) + 0.5 * bleu4)) < 1e-7);
    // no 3-gram in two words: BLEU-4 is pycocoevalcap's floor, (10⁻¹⁵/10⁻⁹)^(2/4) × brevity penalty e^(1 − 3/2)
    const short = ["two", "cats"];
    const floor = Math.sqrt(1e-6) * Math.exp(1 - 3 / 2);
    assert.ok(Math.abs(captionReward(cider, short, refs, 1) - cider.score(short, refs) - floor) < 1e-9);
  });

  it("with the sentence end counted, a caption cut off mid-phrase earns less than the whole phrase it starts", () => {
    const refs = [
      ["a", "man", "in", "a", "red", "shirt", "runs"],
      ["a", "man", "in", "a", "red", "shirt"],
      ["a", "runner", "in", "red"],
    ];
    const vocab = buildVocabulary(refs, 1);
    const gen = (text: string, finished: boolean) => ({
      ids: vocab.numericalize(text),
      alphas: [],
      logProb: 0,
      finished,
    });
    const cut = gen("a man in a red", true);
    const whole = gen("a man in a red shirt", true);
    const ended = refs.map((r) => [...r, SENTENCE_END]);
    const counted = { ...defaultScstConfig(), sentenceEnd: true };
    const ignored = { ...defaultScstConfig(), sentenceEnd: false };
    assert.deepEqual(rewardedWords(cut, vocab, counted), ["a", "man", "in", "a", "red", SENTENCE_END]);
    assert.deepEqual(rewardedWords(cut, vocab, ignored), ["a", "man", "in", "a", "red"]);
    // a caption cut at maxLen, not ended by the model, is not given an end it never chose
    assert.deepEqual(rewardedWords(gen("a man in a red", false), vocab, counted), ["a", "man", "in", "a", "red"]);
    const withEnd = new CiderD([ended, [["a", "dog", SENTENCE_END]]]);
    const without = new CiderD([refs, [["a", "dog"]]]);
    const score = (c: CiderD, g: typeof cut, cfg: typeof counted, r: string[][]) =>
      captionReward(c, rewardedWords(g, vocab, cfg), r, 1);
    const gapWith = score(withEnd, whole, counted, ended) - score(withEnd, cut, counted, ended);
    const gapWithout = score(without, whole, ignored, refs) - score(without, cut, ignored, refs);
    assert.ok(gapWith > gapWithout + 0.05, `the cut-off penalty ${gapWith} vs ${gapWithout} without the end counted`);
    assert.equal(defaultScstConfig().sentenceEnd, true, "new self-critical runs count the end");
  });

  it("raises the train captions' reward over a few epochs on the synthetic scenes, with either baseline", async () => {
    const { vocab, cache, trainSet } = await syntheticFeatureData(80, 9);
    const xe = path.join(tmpDir(), "xe", "checkpoint");
    const dims = {
      vocabSize: vocab.size,
      embedSize: 32,
      attentionDim: 32,
      encoderDim: 2048,
      decoderDim: 64,
      dropout: 0.3,
    };
    const quiet = { quiet: true, log: () => {} };
    (
      await train({
        train: trainSet,
        vocab,
        // the cross-entropy start this test was sized on (λ = 1/49, the default until λ = 0)
        config: { ...defaultTrainConfig(dims), epochs: 2, lr: 3e-3, batchSize: 32, lambda: 1 / 49 },
        out: xe,
        ...quiet,
      })
    ).decoder.dispose();
    const out = path.join(tmpDir(), "scst", "checkpoint");
    const config = {
      epochs: 4,
      lr: 2e-4,
      clipNorm: 5,
      seed: 1,
      beam: 1,
      scst: { ...defaultScstConfig(), batchSize: 16, baseline: "greedy" as const },
    };
    const r = await trainScst({ from: xe, train: trainSet, config, out, keepEpochs: true, ...quiet });
    // --keep-epochs: every epoch's weights beside the checkpoint, without optimiser state; the last equals it
    const kept = fs.readdirSync(path.join(path.dirname(out), "epochs")).sort();
    assert.deepEqual(kept, ["1", "2", "3", "4"]);
    assert.ok(!fs.existsSync(path.join(epochDir(out, 4), "optimizer")));
    const [last, four] = [await loadCheckpoint(out), await loadCheckpoint(epochDir(out, 4))];
    assert.equal(four.epoch, 4);
    const lastWeights = last.decoder.namedVariables();
    for (const [name, w] of Object.entries(four.decoder.namedVariables()))
      assert.deepEqual(Array.from(w.dataSync()), Array.from(lastWeights[name].dataSync()), name);
    const first = (await loadCheckpoint(epochDir(out, 1))).decoder.namedVariables();
    assert.notDeepEqual(Array.from(first["decoder/fcn"].dataSync()), Array.from(lastWeights["decoder/fcn"].dataSync()));
    r.decoder.dispose();
    const greedy = r.history.epoch.map((e) => e.greedyReward!);
    assert.equal(greedy.length, 4);
    const sample = r.history.epoch.map((e) => e.sampleReward!);
    assert.ok(
      greedy[3] > greedy[0] + 0.1,
      `greedy CIDEr-D by epoch: ${greedy.map((g) => g.toFixed(3))}; samples ${sample.map((g) => g.toFixed(3))}`,
    );
    // the other samples' mean as baseline: no greedy decoding, and the sampled captions' reward rises
    const mean = await trainScst({
      from: xe,
      train: trainSet,
      config: { ...config, lr: 1e-3, scst: { ...config.scst, baseline: "mean" } },
      out: path.join(tmpDir(), "scst-mean", "checkpoint"),
      ...quiet,
    });
    mean.decoder.dispose();
    const sampled = mean.history.epoch.map((e) => e.sampleReward!);
    assert.ok(mean.history.epoch.every((e) => e.greedyReward === undefined));
    assert.ok(sampled[3] > sampled[0] + 0.03, `sampled CIDEr-D by epoch: ${sampled.map((g) => g.toFixed(3))}`);
    cache.close();
  });
});
