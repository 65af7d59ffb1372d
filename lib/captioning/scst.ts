/**
 * Self-critical sequence training (Rennie et al., CVPR 2017), after cross-entropy training: the decoder samples
 * captions from its own distribution, each is rewarded by its CIDEr-D against the image's references, and a
 * baseline b — the mean reward of the image's other samples (Luo 2020; the default), or the reward of its greedy
 * caption (the paper's) — is subtracted. The policy gradient of the expected reward is then
 *     ∇L = −Σ_samples (r(w^s) − b) ∇ log p(w^s)
 * — a cross-entropy on the sampled captions with each caption weighted by its advantage r(w^s) − b: samples
 * better than the baseline are made more likely, worse ones less. So the step is the same teacher-forced
 * forward and backward as cross-entropy training (on ONNX Runtime or tfjs), with a weight per caption, λ = 0 and
 * no dropout (the policy that sampled is the one differentiated).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { TypedAdam, restoreOptimizer } from "../engine/adam";
import { TrainEngine, defaultEngine } from "../engine/backend";
import { fit } from "../engine/fit";
import { resumableOptimizerWeights, writeCheckpoint } from "../util/checkpoint";
import { CHECKPOINT_FORMAT, History, TrainConfig, bestDir, keepEpoch, loadCheckpoint, splitMetrics } from "./train";
import { DecoderRNN } from "./decoder";
import { Generated, SENTENCE_END, greedy, repeatRows, sampleCaptions } from "./generate";
import { referenceScorer } from "./evaluate";
import { CiderD, bleuCounts, bleuFromCounts } from "./metrics";
import { CaptionStep, StepEngine, startStepEngine } from "./step-engine";
import type { FeatureCaptionDataset } from "../encoder/feature-dataset";
import { decoderFeatureMap } from "../encoder/feature-maps";
import { padCaptions } from "../data/collate";
import { EOS, SOS, Vocabulary } from "../data/vocabulary";
import { Rng } from "../util/rng";

export interface ScstConfig {
  /** Sampled captions per image (Rennie et al. 1; later work 5). */
  samples: number;
  /** Images per step. */
  batchSize: number;
  /** Longest sampled caption, in words. */
  maxLen: number;
  /**
   * Each sample's baseline: "greedy" — the reward of the image's greedy caption (Rennie et al.); "mean" — the mean
   * reward of the image's other samples (Luo 2020, "a better variant of SCST"), which needs no greedy decoding and
   * is not biased by the gap between greedy and sampled captions. Absent (checkpoints from before the choice was
   * recorded): greedy.
   */
  baseline?: "greedy" | "mean";
  /**
   * Weight of each caption's BLEU-4 (pycocoevalcap's per-caption score, 0…1) added to its CIDEr-D reward
   * (`--bleu_reward_weight` of Luo's self-critical.pytorch); 0 or absent: CIDEr-D alone, as Rennie et al.
   */
  bleuWeight?: number;
  /**
   * Whether the reward counts the end of the sentence: every reference and every caption the model ended is scored
   * with SENTENCE_END after its last word, so "a man in a red" no longer earns the n-grams of "a man in a red
   * shirt" (Luo 2020's "bad endings"). Absent (checkpoints from before): not counted.
   */
  sentenceEnd?: boolean;
}

export function defaultScstConfig(): ScstConfig {
  // the mean baseline: on Flickr8k the greedy one pushed down nearly every sample at first (docs/captioning-results.md)
  return { samples: 5, batchSize: 32, maxLen: 16, baseline: "mean", sentenceEnd: true };
}

/** An image batch: features `[B, R, E]` and the names. */
export interface ImageBatch {
  features: tf.Tensor3D;
  images: string[];
}

/** The train images in a seeded order per epoch, in batches of `batchSize`, features read from the cache. */
export async function* imageBatches(
  data: FeatureCaptionDataset,
  batchSize: number,
  seed: number,
  epoch: number,
): AsyncGenerator<ImageBatch> {
  const images = new Rng(seed * 1_000_003 + epoch).shuffle([...data.dataset.images]);
  for (let i = 0; i < images.length; i += batchSize) {
    const names = images.slice(i, i + batchSize);
    yield { images: names, features: data.cache.tensor(names) };
  }
}

/** A caption's reward: its CIDEr-D against the image's references, plus `bleuWeight` × its BLEU-4 (0…1). */
export function captionReward(
  cider: CiderD,
  candidate: readonly string[],
  references: readonly (readonly string[])[],
  bleuWeight = 0,
): number {
  const r = cider.score(candidate, references);
  return bleuWeight === 0 ? r : r + (bleuWeight * bleuFromCounts(bleuCounts(candidate, references))[3]) / 100;
}

/** The words a caption is rewarded for: SENTENCE_END after them when the reward counts it and the model ended it. */
export function rewardedWords(g: Generated, vocab: Vocabulary, config: ScstConfig): string[] {
  const words = vocab.decode(g.ids);
  return config.sentenceEnd && g.finished ? [...words, SENTENCE_END] : words;
}

/** What the reward is, for logs: "CIDEr-D" or "CIDEr-D + 0.5·BLEU-4". */
export function rewardName(config: ScstConfig): string {
  const name = config.bleuWeight ? `CIDEr-D + ${config.bleuWeight}·BLEU-4` : "CIDEr-D";
  return config.sentenceEnd ? `${name} (sentence end counted)` : name;
}

/**
 * Each sample's advantage r(wˢ) − b: against its image's greedy caption's reward when `greedyRewards` (one per
 * image) is given, else against the mean reward of the image's other n − 1 samples (which sum to 0 per image).
 * `rewards` holds n samples per image, image by image.
 */
export function scstAdvantages(rewards: readonly number[], n: number, greedyRewards?: readonly number[]): number[] {
  if (greedyRewards) return rewards.map((r, k) => r - greedyRewards[Math.floor(k / n)]);
  if (n < 2) throw new Error("the mean baseline needs at least 2 samples per image");
  return rewards.map((r, k) => {
    const i = Math.floor(k / n);
    const others = rewards.slice(i * n, i * n + n).reduce((a, b) => a + b, 0) - r;
    return r - others / (n - 1);
  });
}

/** Sampled captions as training captions, padded: `<SOS>` words, and `<EOS>` when the model ended the caption. */
export function sampledCaptionIds(samples: readonly Generated[]): { ids: Int32Array; maxLen: number } {
  return padCaptions(samples.map((s) => [SOS, ...s.ids, ...(s.finished ? [EOS] : [])]));
}

/** Rewards of one batch: each sample's and each image's greedy caption's (`captionReward`). */
export interface ScstStep extends CaptionStep {
  /** Mean reward of the sampled captions and of the greedy ones (NaN with the mean baseline: none decoded). */
  sampleReward: number;
  greedyReward: number;
}

/**
 * One self-critical step at the engine's current weights: samples (and greedy baselines), rewards, and the
 * gradient of the advantage-weighted cross-entropy of the samples.
 */
export async function scstStep(
  decoder: DecoderRNN,
  batch: ImageBatch,
  o: {
    references: (image: string) => string[][];
    cider: CiderD;
    vocab: Vocabulary;
    config: ScstConfig;
    seed: number;
    /** Where the gradient runs; its ONNX decoder, when it has one, samples (else tfjs, the decoder itself). */
    engine: StepEngine;
  },
): Promise<ScstStep> {
  const n = o.config.samples;
  const refs = batch.images.map(o.references);
  const onnx = o.engine.decoding;
  const samples = await sampleCaptions(decoder, batch.features, {
    samples: n,
    seed: o.seed,
    maxLen: o.config.maxLen,
    onnx,
  });
  const reward = (g: Generated, i: number) =>
    captionReward(o.cider, rewardedWords(g, o.vocab, o.config), refs[i], o.config.bleuWeight);
  const rewards = samples.map((s, r) => reward(s, Math.floor(r / n)));
  let greedyRewards: number[] | undefined;
  if ((o.config.baseline ?? "greedy") === "greedy") {
    const g = await greedy(decoder, batch.features, o.config.maxLen, onnx);
    greedyRewards = g.map((x, i) => reward(x, i));
  }
  const captionWeights = scstAdvantages(rewards, n, greedyRewards);
  const { ids, maxLen: T } = sampledCaptionIds(samples);
  const features = repeatRows(batch.features, n);
  const captions = tf.tensor2d(ids, [samples.length, T], "int32");
  try {
    const r = await o.engine.step(features, captions, { seed: o.seed, lambda: 0, dropout: false, captionWeights });
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    return { ...r, sampleReward: mean(rewards), greedyReward: greedyRewards ? mean(greedyRewards) : NaN };
  } finally {
    tf.dispose([features, captions]);
  }
}

export interface ScstOptions {
  /** The cross-entropy checkpoint to start from (ignored on resume). */
  from?: string;
  train: FeatureCaptionDataset;
  val?: FeatureCaptionDataset;
  /** epochs (the new total on resume), lr, clipNorm, seed; scst: samples, batch, length. */
  config: { epochs: number; lr: number; clipNorm: number; seed: number; scst: ScstConfig; beam: number };
  /** Checkpoint folder (runs/NAME/checkpoint); the best epoch by dev CIDEr-D goes to runs/NAME/best. */
  out: string;
  resume?: boolean;
  log?: (line: string) => void;
  quiet?: boolean;
  engine?: TrainEngine;
  /** Also keep each epoch's weights in runs/NAME/epochs/N (keepEpoch). */
  keepEpochs?: boolean;
}

/**
 * Self-critical epochs over the train images, a checkpoint after each (the captioning format: `caption`,
 * `evaluate` and `--resume` read it), dev BLEU/CIDEr-D after each when `val` is given, the best by CIDEr-D kept.
 */
export async function trainScst(o: ScstOptions): Promise<{ decoder: DecoderRNN; history: History }> {
  const log = o.log ?? ((s: string) => console.error(s));
  const { decoder, vocab, history, cfg, from, optimizerWeights } = await scstStart(o, log);
  const scst = cfg.scst!;
  o.train.cache.checkFeatureMap(decoderFeatureMap(decoder.config), "the decoder");
  const engine = await startStepEngine(decoder, {
    engine: o.engine ?? defaultEngine(),
    regions: o.train.cache.regions,
    lr: cfg.lr,
    decoding: true,
  });
  const optimizer = engine.optimizer;
  if (optimizerWeights) await restoreOptimizer(optimizer, optimizerWeights);
  const { cider, references } = referenceScorer(o.train, { sentenceEnd: scst.sentenceEnd });
  let rewards = { sample: 0, greedy: 0, loss: 0, images: 0, steps: 0 };
  await fit<ImageBatch, ScstStep>({
    from,
    epochs: o.config.epochs,
    optimizer,
    clipNorm: cfg.clipNorm,
    out: o.out,
    progress: o.quiet ? undefined : { total: o.train.dataset.images.length, unit: "images" },
    batches: (epoch) => imageBatches(o.train, scst.batchSize, cfg.seed, epoch),
    items: (b) => b.images.length,
    release: (b) => b.features.dispose(),
    lr: () => cfg.lr,
    step: (b, { epoch, step }) =>
      scstStep(decoder, b, {
        references,
        cider,
        vocab,
        config: scst,
        seed: cfg.seed * 1_000_003 + epoch * 10_007 + step,
        engine,
      }),
    applied: () => engine.updated(),
    afterStep(b, r, { epoch, step }) {
      history.batch.push({ epoch, step, loss: r.loss, crossEntropy: r.loss });
      rewards = {
        sample: rewards.sample + r.sampleReward * b.images.length,
        greedy: rewards.greedy + r.greedyReward * b.images.length,
        loss: rewards.loss + r.loss,
        images: rewards.images + b.images.length,
        steps: rewards.steps + 1,
      };
    },
    async afterEpoch(epoch, seconds) {
      engine.sync(); // dev decoding and the checkpoint read the tfjs variables
      const dev = o.val ? await splitMetrics(decoder, o.val, o.config.beam, vocab) : undefined;
      const loss = rewards.loss / Math.max(1, rewards.steps);
      const entry: History["epoch"][number] = {
        epoch,
        trainLoss: loss,
        trainCrossEntropy: loss,
        seconds,
        captionsPerSecond: (rewards.images * scst.samples) / seconds,
        sampleReward: rewards.sample / rewards.images,
        greedyReward: Number.isFinite(rewards.greedy) ? rewards.greedy / rewards.images : undefined,
        devBleu4: dev?.bleu4,
        devCider: dev?.cider,
        lr: cfg.lr,
      };
      rewards = { sample: 0, greedy: 0, loss: 0, images: 0, steps: 0 };
      await scstEndEpoch(entry, { o, cfg, decoder, optimizer, vocab, history, log });
    },
    dispose: () => engine.dispose(),
  });
  return { decoder, history };
}

/** The cross-entropy checkpoint `--from`, or the self-critical run in `out` on resume. */
async function scstStart(o: ScstOptions, log: (s: string) => void) {
  const resumed = o.resume && fs.existsSync(path.join(o.out, "checkpoint.json"));
  if (!resumed && !o.from)
    throw new Error("self-critical training starts from a cross-entropy checkpoint: give --from DIR");
  const ck = await loadCheckpoint(resumed ? o.out : o.from!);
  const start = { decoder: ck.decoder, vocab: ck.vocab, epochs: { epochs: o.config.epochs } };
  if (!resumed) {
    log(`self-critical training from ${o.from} (its epoch ${ck.epoch})`);
    const { lr, clipNorm, seed, scst } = o.config;
    const cfg: TrainConfig = { ...ck.config, lr, clipNorm, seed, scst, ...start.epochs };
    return { ...start, history: { batch: [], epoch: [] } as History, cfg, from: 0, optimizerWeights: undefined };
  }
  if (!ck.config.scst) throw new Error(`${o.out} holds a cross-entropy run: give self-critical training another --out`);
  const optimizerWeights = resumableOptimizerWeights(o.out, ck.optimizerWeights);
  log(`resumed self-critical training from ${o.out} after epoch ${ck.epoch}`);
  return { ...start, history: ck.history, cfg: { ...ck.config, ...start.epochs }, from: ck.epoch, optimizerWeights };
}

/** Logs the epoch, keeps it in best/ when its dev CIDEr-D is the best so far, and writes the checkpoint. */
async function scstEndEpoch(
  entry: History["epoch"][number],
  x: {
    o: ScstOptions;
    cfg: TrainConfig;
    decoder: DecoderRNN;
    optimizer: tf.Optimizer | TypedAdam;
    vocab: Vocabulary;
    history: History;
    log: (s: string) => void;
  },
): Promise<void> {
  const { o, history, log } = x;
  const best = Math.max(-Infinity, ...history.epoch.map((e) => e.devCider ?? -Infinity));
  history.epoch.push(entry);
  const epoch = entry.epoch;
  const dev = entry.devBleu4 !== undefined;
  log(
    `epoch ${epoch + 1} (self-critical): train ${rewardName(x.cfg.scst!)} of samples ${entry.sampleReward!.toFixed(3)}, greedy ` +
      `${entry.greedyReward?.toFixed(3) ?? "not decoded (mean baseline)"}` +
      (dev
        ? `; dev beam ${o.config.beam}: BLEU-4 ${entry.devBleu4!.toFixed(2)}, CIDEr-D ${entry.devCider!.toFixed(3)}`
        : "") +
      `, ${entry.seconds.toFixed(0)} s`,
  );
  const meta = {
    format: CHECKPOINT_FORMAT,
    version: 1,
    epoch: epoch + 1,
    config: x.cfg,
    dataDir: path.resolve(o.train.dataset.layout.dataDir),
  };
  const parts = { weights: x.decoder.namedVariables(), optimizer: x.optimizer, vocab: x.vocab, history, meta };
  if (dev && entry.devCider! > best) {
    await writeCheckpoint(bestDir(o.out), parts);
    log(`epoch ${epoch + 1}: the best dev CIDEr-D so far, kept in ${bestDir(o.out)}`);
  }
  if (o.keepEpochs) await keepEpoch(o.out, parts);
  await writeCheckpoint(o.out, parts);
}
