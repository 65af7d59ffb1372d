import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { Vocabulary } from "../lib/data";
import { writeCheckpoint } from "../lib/util/checkpoint";
import { FeatureCaptionDataset } from "../lib/encoder";
import {
  DecoderConfig,
  DecoderRNN,
  TrainConfig,
  bestDir,
  defaultTrainConfig,
  epochDir,
  loadCaptioner,
  loadCheckpoint,
  lrAfter,
  parseEpochDir,
  selectionState,
  summaryHistory,
  train,
} from "../lib/captioning";
import { evaluationDir } from "../lib/cli/captioning";
import { projectRoot } from "../lib/util/paths";
import { setupBackend, syntheticFeatureData, tmpDir } from "./helpers";

describe("training on cached features", function () {
  this.timeout(600_000);
  let vocab: Vocabulary;
  let trainSet: FeatureCaptionDataset;
  let valSet: FeatureCaptionDataset;
  let cfg: TrainConfig;
  const quiet = { quiet: true, log: () => {} };

  before(async () => {
    await setupBackend();
    ({ vocab, trainSet, valSet } = await syntheticFeatureData(60, 3));
    cfg = {
      ...defaultTrainConfig({
        vocabSize: vocab.size,
        embedSize: 32,
        attentionDim: 32,
        encoderDim: 2048,
        decoderDim: 64,
        dropout: 0.3,
      }),
      epochs: 3,
      lr: 3e-3,
      lambda: 1 / 49,
      printEvery: 1000,
    };
  });

  it("lowers the loss, and resuming from a checkpoint gives the same numbers as an uninterrupted run", async () => {
    const a = path.join(tmpDir(), "a");
    const full = await train({ train: trainSet, val: valSet, vocab, config: cfg, out: a, ...quiet });
    assert.equal(full.history.epoch.length, 3);
    const [first, last] = [full.history.epoch[0], full.history.epoch[2]];
    // From ~ln(vocabulary) ≈ 3.3 nats; 24 small batches are enough to learn the templates' frequent words.
    assert.ok(
      full.history.epoch.every((e, i) => i === 0 || e.trainCrossEntropy < full.history.epoch[i - 1].trainCrossEntropy),
      JSON.stringify(full.history.epoch),
    );
    assert.ok(last.trainCrossEntropy < first.trainCrossEntropy - 0.3, JSON.stringify(full.history.epoch));
    assert.ok(last.trainLoss < first.trainLoss);
    assert.ok(full.history.epoch.every((e) => Number.isFinite(e.valLoss!) && e.valCrossEntropy! < e.valLoss!));
    full.decoder.dispose();

    const b = path.join(tmpDir(), "b");
    (
      await train({
        train: trainSet,
        val: valSet,
        vocab,
        config: { ...cfg, epochs: 2 },
        out: b,
        keepEpochs: true,
        ...quiet,
      })
    ).decoder.dispose();
    const resumed = await train({
      train: trainSet,
      val: valSet,
      vocab,
      config: cfg,
      out: b,
      resume: true,
      keepEpochs: true,
      ...quiet,
    });
    // --keep-epochs across the resume: every epoch kept, the last one's weights the checkpoint's
    assert.deepEqual(fs.readdirSync(path.join(path.dirname(b), "epochs")).sort(), ["1", "2", "3"]);
    const kept = await loadCheckpoint(epochDir(b, 3));
    assert.ok(kept.weightsOnly);
    for (const [name, w] of Object.entries(kept.decoder.namedVariables()))
      assert.deepEqual(Array.from(w.dataSync()), Array.from(resumed.decoder.namedVariables()[name].dataSync()), name);
    // evaluate's default output for a kept epoch names the run and the epoch, inside the run folder
    assert.deepEqual(parseEpochDir(epochDir(b, 3)), { run: path.dirname(b), epoch: 3 });
    assert.equal(parseEpochDir(path.join(path.dirname(b), "epochs", "03")), undefined);
    assert.equal(evaluationDir(epochDir(b, 3), kept.weightsOnly), path.join(path.dirname(b), "evaluation-epoch-3"));
    assert.equal(evaluationDir(b, false), path.dirname(b));
    assert.equal(evaluationDir("models/captioner-x", true), path.join(projectRoot(), "runs", "captioner-x"));
    kept.decoder.dispose();
    resumed.decoder.dispose();
    assert.equal(resumed.history.batch.length, full.history.batch.length);
    resumed.history.batch.forEach((r, i) =>
      assert.ok(
        Math.abs(r.loss - full.history.batch[i].loss) < 1e-5,
        `batch ${i}: resumed ${r.loss} vs uninterrupted ${full.history.batch[i].loss}`,
      ),
    );

    const ck = await loadCheckpoint(a);
    assert.equal(ck.epoch, 3);
    assert.deepEqual(ck.vocab.itos, vocab.itos);
    assert.deepEqual(fs.readdirSync(path.dirname(a)).sort(), ["a"], "no temporary folders left");
    ck.decoder.dispose();
  });

  const added: [string, Partial<DecoderConfig>, (d: DecoderRNN) => tf.Variable | undefined][] = [
    ["a region layer (2048 → 256)", { regionLayer: true, regionDim: 256 }, (d) => d.Wf],
  ];
  for (const [label, variant, weight] of added)
    it(`trains ${label} (loss falls), and its checkpoint loads back with the added weights and gives the model's logits`, async () => {
      const out = path.join(tmpDir(), "variant");
      const config = { ...cfg, epochs: 2, decoder: { ...cfg.decoder, ...variant } };
      const r = await train({ train: trainSet, val: valSet, vocab, config, out, ...quiet });
      const [first, last] = r.history.epoch;
      assert.ok(last.trainCrossEntropy < first.trainCrossEntropy, JSON.stringify(r.history.epoch));
      const ck = await loadCheckpoint(out);
      assert.deepEqual(ck.decoder.config, r.decoder.config);
      assert.ok(weight(ck.decoder), "the added weights load");
      assert.deepEqual(await weight(ck.decoder)!.data(), await weight(r.decoder)!.data());
      const b = (await valSet.loader({ batchSize: 4, shuffle: false, seed: 1 }).epoch(0).next()).value!;
      const [a, c] = [r.decoder, ck.decoder].map((d) => d.forward(b.features, b.captions).logits.dataSync());
      assert.deepEqual(a, c);
      tf.dispose([b.features, b.captions]);
      r.decoder.dispose();
      ck.decoder.dispose();
    });

  it("selects by dev BLEU-4: keeps the best epoch, halves the lr on a plateau, stops, and resumes the schedule", async () => {
    // An lr too small to change the captions: dev BLEU-4 stays where it is, so every epoch after the first is a plateau.
    const plateau = { beam: 1, patience: 1, factor: 0.5, stopAfter: 2 };
    const run = path.join(tmpDir(), "run");
    const out = path.join(run, "checkpoint");
    const r = await train({
      train: trainSet,
      val: valSet,
      vocab,
      config: { ...cfg, epochs: 6, lr: 1e-12, plateau },
      out,
      ...quiet,
    });
    r.decoder.dispose();
    const e = r.history.epoch;
    assert.equal(e.length, 3, "stopped after 2 epochs without a better BLEU-4");
    assert.ok(
      e.every((x) => x.devBleu4 === e[0].devBleu4 && x.devBleu4! >= 0),
      JSON.stringify(e),
    );
    assert.deepEqual(
      e.map((x) => x.lr),
      [1e-12, 5e-13, 2.5e-13],
    );
    assert.deepEqual(selectionState(r.history), { best: e[0].devBleu4, bestEpoch: 1, since: 2 });
    const best = await loadCheckpoint(bestDir(out));
    assert.equal(best.epoch, 1);
    best.decoder.dispose();
    // Resumed with a longer patience, it continues from the decayed lr.
    const more = await train({
      train: trainSet,
      val: valSet,
      vocab,
      config: { ...cfg, epochs: 4, plateau: { ...plateau, stopAfter: 0 } },
      out,
      resume: true,
      ...quiet,
    });
    more.decoder.dispose();
    assert.deepEqual(
      more.history.epoch.map((x) => x.lr),
      [1e-12, 5e-13, 2.5e-13, 1.25e-13],
    );
  });

  it("loads several checkpoints as an ensemble only when they share the vocabulary and the feature map", async () => {
    const dir = tmpDir();
    const a = path.join(dir, "a");
    (await train({ train: trainSet, vocab, config: { ...cfg, epochs: 1 }, out: a, ...quiet })).decoder.dispose();
    const one = await loadCaptioner([a]);
    assert.ok(one.decoder instanceof DecoderRNN, "one folder: the decoder itself");
    one.dispose();
    const two = await loadCaptioner([a, a]);
    assert.ok(Array.isArray(two.decoder) && two.decoder.length === 2 && two.decoder[0] !== two.decoder[1]);
    assert.equal(two.vocab.size, vocab.size);
    two.dispose();
    /** A checkpoint of a fresh decoder of `config` with vocabulary `v`. */
    const write = async (name: string, v: Vocabulary, config: DecoderConfig) => {
      const d = new DecoderRNN(config);
      const meta = {
        format: "attend-tell/caption-checkpoint",
        version: 1,
        epoch: 1,
        config: { ...cfg, decoder: config },
        weightsOnly: true,
      };
      await writeCheckpoint(path.join(dir, name), { weights: d.namedVariables(), vocab: v, history: {}, meta });
      d.dispose();
      return path.join(dir, name);
    };
    const swapped = [...vocab.itos];
    [swapped[5], swapped[6]] = [swapped[6], swapped[5]];
    const b = await write("b", new Vocabulary(swapped, 1), cfg.decoder);
    await assert.rejects(
      loadCaptioner([a, b]),
      new RegExp(`^Error: ${b}: its vocabulary differs from ${a}'s \\(id 5 is "${swapped[5]}", not "${swapped[6]}"\\)`),
    );
    const c = await write("c", vocab, { ...cfg.decoder, encoderDim: 1024, featureMap: "conv4-pooled" });
    await assert.rejects(loadCaptioner([a, c]), /c: it reads feature map conv4-pooled, .*a reads conv5/);
  });

  it("stops on a NaN loss with a clear message and keeps the last good checkpoint", async () => {
    const c = path.join(tmpDir(), "c");
    (await train({ train: trainSet, vocab, config: { ...cfg, epochs: 1 }, out: c, ...quiet })).decoder.dispose();
    const poisoned = Object.create(trainSet) as FeatureCaptionDataset;
    poisoned.collate = (items) => {
      const batch = trainSet.collate(items);
      return { ...batch, features: batch.features.mul(NaN) } as typeof batch;
    };
    await assert.rejects(
      train({ train: poisoned, vocab, config: { ...cfg, epochs: 2 }, out: c, resume: true, ...quiet }),
      /loss is NaN at epoch 2, batch 1: stopping; the last good checkpoint in .* is kept/,
    );
    assert.equal((await loadCheckpoint(c)).epoch, 1);
  });

  it("the main job's summary counts epochs from 1 and records the lr each epoch ended with, not the base lr", () => {
    const c = { ...cfg, lr: 1e-3, epochs: 4, lrSchedule: "cosine" as const };
    const rec = { trainLoss: 1, trainCrossEntropy: 1, seconds: 1, captionsPerSecond: 1 };
    const h = summaryHistory(
      [0, 1, 2].map((epoch) => ({ ...rec, epoch, lr: 1e-3 })),
      c,
      100,
    );
    assert.deepEqual(
      h.map((e) => e.epoch),
      [1, 2, 3],
    );
    h.forEach((e, i) => assert.equal(e.lr, lrAfter(c, (i + 1) * 100 - 1, 100)));
    assert.ok(h[0].lr! > h[1].lr! && h[1].lr! > h[2].lr!, "the cosine schedule falls");
    // a plateau decay halves the base rate of the epochs after it
    const decayed = summaryHistory(
      [
        { ...rec, epoch: 0, lr: 5e-4 },
        { ...rec, epoch: 1, lr: 5e-4 },
      ],
      { ...cfg, lr: 1e-3 },
      100,
    );
    assert.deepEqual(
      decayed.map((e) => e.lr),
      [1e-3, 5e-4],
    );
  });

  it("decays the learning rate along half a cosine over the run (--lr-schedule cosine), after any warm-up", () => {
    const c = { ...cfg, lr: 1e-3, epochs: 4, lrSchedule: "cosine" as const };
    assert.equal(lrAfter(c, 0, 100), 1e-3);
    assert.ok(Math.abs(lrAfter(c, 200, 100) - 5e-4) < 1e-12, "half way: half the lr");
    assert.ok(Math.abs(lrAfter(c, 300, 100) - 1e-3 * 0.5 * (1 + Math.cos((Math.PI * 3) / 4))) < 1e-12);
    assert.ok(lrAfter(c, 399, 100) > 0 && lrAfter(c, 399, 100) < 1e-6, "small, not 0, at the last caption");
    assert.equal(lrAfter({ ...c, lrSchedule: "constant" }, 300, 100), 1e-3);
    const warm = { ...c, lrWarmupEpochs: 1 };
    assert.ok(Math.abs(lrAfter(warm, 49, 100) - 1e-3 * 0.5 * 0.5 * (1 + Math.cos(Math.PI * (49 / 400)))) < 1e-12);
  });

  it("warms the learning rate up linearly over the first epochs (--lr-warmup), from the first step on", async () => {
    const c = { ...cfg, lr: 1e-3, lrWarmupEpochs: 2 };
    assert.equal(lrAfter(c, 0, 100), 1e-3 / 200);
    assert.equal(lrAfter(c, 99, 100), (1e-3 * 100) / 200);
    assert.equal(lrAfter(c, 199, 100), 1e-3);
    assert.equal(lrAfter(c, 5000, 100), 1e-3);
    assert.equal(lrAfter({ ...c, lrWarmupEpochs: 0 }, 0, 100), 1e-3);
    const run = async (w: number) => {
      const r = await train({
        train: trainSet,
        vocab,
        config: { ...cfg, epochs: 1, lrWarmupEpochs: w },
        out: path.join(tmpDir(), "w"),
        ...quiet,
      });
      r.decoder.dispose();
      return r.history.batch.map((b) => b.loss);
    };
    const [plain, warm] = [await run(0), await run(2)];
    assert.equal(warm[0], plain[0], "the first loss comes before any update");
    assert.notEqual(warm[1], plain[1], "the first update is smaller");
  });
});
