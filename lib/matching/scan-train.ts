/**
 * Training and evaluating SCAN (lib/matching/scan.ts) on cached region features, with the captioning trainer's
 * conventions: Adam, gradient clipping, loss history per batch and epoch, a progress bar, an atomic checkpoint
 * per epoch and `resume` to the same numbers as an uninterrupted run, a clear stop on a NaN loss.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { restoreOptimizer } from "../engine/adam";
import {
  LoadedCheckpoint,
  loadModelCheckpoint,
  resumableOptimizerWeights,
  resumableVocabulary,
  writeCheckpoint,
} from "../util/checkpoint";
import { Split, imagePath, readCaptions, resolveLayout } from "../data/captions";
import { judgedPairs, kendallTauB, spearman } from "./human-judgements";
import { ENCODER_IDENTITY, REGIONS } from "../encoder/encoder";
import { FeatureCache, cachedSplit, extractFeatures } from "../encoder/features";
import { padCaptions } from "../data/collate";
import { Progress } from "../util/progress";
import { RetrievalReport, encodeForRetrieval, hubOffsets, retrievalRecall, scoreMatrix } from "./retrieval";
import { Rng } from "../util/rng";
import { ScanConfig, ScanModel, pairScores } from "./scan";
import { ScanEngine, scanEngine } from "./scan-engine";
import { FeatureCaptionDataset, FeatureBatch } from "../encoder/feature-dataset";
import { TrainEngine, defaultEngine } from "../engine/backend";
import { FitStep, fit } from "../engine/fit";
import { Vocabulary } from "../data/vocabulary";
import { loadVocabulary } from "../data/vocabulary-file";

export interface MatchingConfig {
  epochs: number;
  batchSize: number;
  lr: number;
  clipNorm: number;
  /**
   * Epochs at the start whose loss sums each image's and caption's `warmupNegatives` largest violations
   * instead of the single hardest: from random weights the max-violation loss alone can sit at its collapsed
   * value (every score equal: loss = 2·B·margin) for epochs; summing over several negatives first gets it moving,
   * as VSE∞'s warm-up does with all of them.
   */
  warmupEpochs?: number;
  warmupNegatives?: number;
  /** SCAN's `lr_update`: the learning rate is divided by 10 every this many epochs (lrAt). */
  lrUpdate?: number;
  seed: number;
  printEvery: number;
  scan: ScanConfig;
  /** Trained on the photos and their mirror images (`train-matching --mirror`; recorded for --resume). */
  mirror?: boolean;
}

/** SCAN's training settings (Adam 2e-4, batch 128, gradient norm clipped at 2, lr ÷ 10 after 15 epochs). */
export function defaultMatchingConfig(scan: ScanConfig): MatchingConfig {
  return {
    epochs: 20,
    batchSize: 128,
    lr: 2e-4,
    clipNorm: 2,
    warmupEpochs: 1,
    warmupNegatives: 16,
    lrUpdate: 15,
    seed: 1,
    printEvery: 100,
    scan,
  };
}

/** The learning rate of (0-based) `epoch`: SCAN's step schedule, lr · 0.1^⌊epoch / lrUpdate⌋. */
export function lrAt(cfg: MatchingConfig, epoch: number): number {
  return cfg.lrUpdate ? cfg.lr * 0.1 ** Math.floor(epoch / cfg.lrUpdate) : cfg.lr;
}

export interface MatchingHistory {
  batch: { epoch: number; step: number; loss: number }[];
  epoch: { epoch: number; trainLoss: number; valLoss?: number; seconds: number; pairsPerSecond: number }[];
}

const FORMAT = "attend-tell/scan-checkpoint";

/** How many hardest negatives the loss counts in `epoch` (see MatchingConfig.warmupEpochs), at most B − 1. */
export function negativesAt(cfg: MatchingConfig, epoch: number, B: number): number {
  return epoch < (cfg.warmupEpochs ?? 0) ? Math.max(1, Math.min(cfg.warmupNegatives ?? 1, B - 1)) : 1;
}

export type MatchingCheckpoint = LoadedCheckpoint<ScanModel, MatchingConfig, MatchingHistory> & { vocab: Vocabulary };

export async function loadMatchingCheckpoint(dir: string): Promise<MatchingCheckpoint> {
  const ck = await loadModelCheckpoint<ScanModel, MatchingConfig, MatchingHistory>(
    dir,
    FORMAT,
    "image–text matching",
    (config: MatchingConfig, init) => new ScanModel(config.scan, init),
  );
  // the config as this version names it (ScanModel reads a stored one: scanConfig)
  return { ...ck, config: { ...ck.config, scan: ck.model.config }, vocab: loadVocabulary(ck.vocabFile) };
}

/** The mean validation loss (one hardest negative), no gradients. */
async function meanLoss(
  model: ScanModel,
  data: FeatureCaptionDataset,
  cfg: MatchingConfig,
  steps: ScanEngine,
): Promise<number> {
  let sum = 0,
    n = 0;
  for await (const b of data.loader({ batchSize: cfg.batchSize, shuffle: true, seed: cfg.seed }).epoch(0)) {
    sum += (await steps.step(model, b, { backward: false, negatives: 1 })).loss;
    n++;
    tf.dispose([b.features, b.captions]);
  }
  return sum / Math.max(1, n);
}

export interface TrainMatchingOptions {
  train: FeatureCaptionDataset;
  val?: FeatureCaptionDataset;
  vocab: Vocabulary;
  config: MatchingConfig;
  out: string;
  resume?: boolean;
  log?: (line: string) => void;
  quiet?: boolean;
  /** Where the step runs: "onnx" (ONNX Runtime, lib/matching/scan-onnx.ts) or "tfjs"; defaultEngine picks by backend. */
  engine?: TrainEngine;
  /** Called after every step, e.g. to redraw a live loss chart in a notebook. */
  onBatch?: (b: { epoch: number; step: number; loss: number; history: MatchingHistory }) => void;
}

/** A new model, or the checkpoint in `opts.out` with `--resume` (its config, except the schedule's rest). */
async function matchingStart(opts: TrainMatchingOptions, optimizer: tf.Optimizer, log: (s: string) => void) {
  if (!(opts.resume && fs.existsSync(path.join(opts.out, "checkpoint.json")))) {
    const cfg = opts.config;
    const history: MatchingHistory = { batch: [], epoch: [] };
    return { model: new ScanModel(cfg.scan, undefined, cfg.seed), history, cfg, epoch: 0 };
  }
  const ck = await loadMatchingCheckpoint(opts.out);
  resumableVocabulary(opts.out, ck.vocab, opts.vocab, ck.dataDir);
  // The rest of the run's schedule (epochs, lrUpdate) may change on resume; everything else is the checkpoint's.
  const cfg = { ...ck.config, epochs: opts.config.epochs, lrUpdate: opts.config.lrUpdate };
  await restoreOptimizer(optimizer, resumableOptimizerWeights(opts.out, ck.optimizerWeights));
  log(`resumed from ${opts.out} after epoch ${ck.epoch}`);
  return { model: ck.model, history: ck.history, cfg, epoch: ck.epoch };
}

export async function trainMatching(
  opts: TrainMatchingOptions,
): Promise<{ model: ScanModel; history: MatchingHistory }> {
  const log = opts.log ?? ((s: string) => console.error(s));
  const optimizer = tf.train.adam(opts.config.lr);
  const { model, history, cfg, epoch: startEpoch } = await matchingStart(opts, optimizer, log);
  const steps = scanEngine(model.config, REGIONS, opts.engine ?? defaultEngine());
  if (!opts.quiet) log(`training step: ${steps.description}`);
  const totals = { loss: 0, pairs: 0, steps: 0 };
  await fit<FeatureBatch, FitStep>({
    from: startEpoch,
    epochs: cfg.epochs,
    optimizer,
    clipNorm: cfg.clipNorm,
    out: opts.out,
    progress: opts.quiet ? undefined : { total: opts.train.length, unit: "pairs" },
    batches: (epoch) => opts.train.loader({ batchSize: cfg.batchSize, shuffle: true, seed: cfg.seed }).epoch(epoch),
    items: (b) => b.captions.shape[0],
    release: (b) => tf.dispose([b.features, b.captions]),
    lr(epoch, seen) {
      if (seen === 0 && epoch > 0 && lrAt(cfg, epoch) !== lrAt(cfg, epoch - 1)) {
        log(`epoch ${epoch + 1}: learning rate ${lrAt(cfg, epoch).toExponential(1)}`);
      }
      return lrAt(cfg, epoch);
    },
    step: (b, { epoch }) =>
      steps.step(model, b, { backward: true, negatives: negativesAt(cfg, epoch, b.captions.shape[0]) }),
    afterStep(b, { loss }, { epoch, step }) {
      history.batch.push({ epoch, step, loss });
      opts.onBatch?.({ epoch, step, loss, history });
      totals.loss += loss;
      totals.pairs += b.captions.shape[0];
      totals.steps++;
      if ((step + 1) % cfg.printEvery === 0) log(`Epoch: ${epoch + 1} Batch: ${step + 1} loss: ${loss.toFixed(5)}`);
    },
    async afterEpoch(epoch, seconds) {
      const valLoss = opts.val ? await meanLoss(model, opts.val, cfg, steps) : undefined;
      const trainLoss = totals.loss / Math.max(1, totals.steps);
      const pairsPerSecond = totals.pairs / seconds;
      history.epoch.push({ epoch, trainLoss, valLoss, seconds, pairsPerSecond });
      log(
        `epoch ${epoch + 1}: train loss ${trainLoss.toFixed(4)}` +
          (valLoss !== undefined ? `, val loss ${valLoss.toFixed(4)}` : "") +
          `, ${seconds.toFixed(1)} s (${pairsPerSecond.toFixed(1)} pairs/s)`,
      );
      Object.assign(totals, { loss: 0, pairs: 0, steps: 0 });
      const dataDir = path.resolve(opts.train.dataset.layout.dataDir);
      await writeCheckpoint(opts.out, {
        weights: model.namedVariables(),
        optimizer,
        vocab: opts.vocab,
        history,
        meta: { format: FORMAT, version: 1, epoch: epoch + 1, config: cfg, dataDir },
      });
    },
    dispose: () => steps.dispose(),
  });
  return { model, history };
}

/** A trained model with the vocabulary its captions are encoded with. */
export interface MatchingModel {
  model: ScanModel;
  vocab: Vocabulary;
}

/** `evaluateMatching`'s result: the recalls, what was scored, and the query bank when one was used. */
export type MatchingReport = RetrievalReport & {
  split: Split;
  n_images: number;
  n_captions: number;
  seconds: number;
  querybank?: { images: number; captions: number; beta: number };
};

/**
 * The standard protocol on a split: every image against every caption of the split (5 per image on Flickr8k:
 * 1,000 × 5,000 on dev), Recall@1/5/10 and median rank both ways; `seconds` is the scoring time. With
 * `ensemble`, those models' scores are averaged with this one's (SCAN's t2i + i2t ensemble). With `querybank`,
 * the scores are normalised by a bank of train images and their captions as queries (`hubOffsets`): image → text
 * ranks each caption's scores less its offset over the bank's images, text → image each image's less its offset
 * over the bank's captions.
 */
export async function evaluateMatching(
  o: MatchingModel & {
    dataDir: string;
    split: Split;
    featuresDir: string;
    skipMissing?: boolean;
    skipBad?: boolean;
    limitImages?: number;
    quiet?: boolean;
    ensemble?: MatchingModel[];
    /** QB-Norm: `images` train images (seeded choice) and their captions as the query bank, inverse temperature β. */
    querybank?: { images: number; beta: number; seed?: number };
  },
): Promise<MatchingReport> {
  // the bank's features first, so that the split's cache (opened next) holds them
  const bank = o.querybank && (await queryBank(o, o.querybank));
  const {
    dataset: ds,
    images,
    cache,
  } = await cachedSplit({
    dataDir: o.dataDir,
    split: o.split,
    vocab: o.vocab,
    featuresDir: o.featuresDir,
    skipMissing: o.skipMissing,
    skipBad: o.skipBad,
    limit: o.limitImages,
    quiet: true,
  });
  const texts: string[] = [];
  const captionImage: number[] = [];
  images.forEach((im, i) => ds.captionsOf(im).forEach((c) => (texts.push(c), captionImage.push(i))));
  const t0 = Date.now();
  const members = [{ model: o.model, vocab: o.vocab }, ...(o.ensemble ?? [])];
  const [N, C, B] = [images.length, texts.length, bank?.images.length ?? 0];
  // the split's images, then the bank's; the split's captions, then the bank's
  const allImages = [...images, ...(bank?.images ?? [])];
  const allTexts = [...texts, ...(bank?.texts ?? [])];
  let sum: Float32Array | undefined; // [N + B, C]: every image against the split's captions
  let bankSum: Float32Array | undefined; // [N, bank captions]: the split's images against the bank's captions
  try {
    for (const [m, member] of members.entries()) {
      const label = members.length > 1 ? ` (model ${m + 1}/${members.length})` : "";
      const bar = o.quiet ? undefined : new Progress(C, `scoring ${allImages.length} × ${C}${label}`, "captions");
      let done = 0;
      const s = await memberScores(
        member,
        cache,
        allImages,
        allTexts,
        N,
        C,
        !!bank,
        (k) => (bar?.tick(k - done), (done = k)),
      );
      if (!sum) sum = s.split;
      else for (let i = 0; i < sum.length; i++) sum[i] += s.split[i];
      if (!s.bank) continue;
      if (!bankSum) bankSum = s.bank;
      else for (let i = 0; i < bankSum.length; i++) bankSum[i] += s.bank[i];
    }
  } finally {
    cache.close();
  }
  const mean = sum!.map((v) => v / members.length);
  const scores = mean.subarray(0, N * C);
  const seconds = (Date.now() - t0) / 1000;
  const base = { split: o.split, n_images: N, n_captions: C, seconds };
  if (!bank) return { ...base, ...retrievalRecall(scores, N, captionImage) };
  const beta = o.querybank!.beta;
  const bankCaptions = bankSum!.map((v) => v / members.length);
  return {
    ...base,
    ...bankedRecall(scores, mean.subarray(N * C), bankCaptions, N, captionImage, beta),
    querybank: { images: B, captions: bank.texts.length, beta },
  };
}

/**
 * Recall both ways of `scores` `[N, C]` normalised by a query bank: image → text with each caption's offset over
 * the bank's images (`bankImages` `[B, C]`), text → image with each image's over the bank's captions
 * (`bankCaptions` `[N, Cb]`).
 */
function bankedRecall(
  scores: Float32Array,
  bankImages: Float32Array,
  bankCaptions: Float32Array,
  N: number,
  captionImage: readonly number[],
  beta: number,
): RetrievalReport {
  const C = captionImage.length;
  const perCaption = hubOffsets(bankImages, bankImages.length / C, C, 1, beta);
  const perImage = hubOffsets(bankCaptions, N, bankCaptions.length / N, 0, beta);
  const { i2t } = retrievalRecall(
    scores.map((v, k) => v - perCaption[k % C]),
    N,
    captionImage,
  );
  const { t2i } = retrievalRecall(
    scores.map((v, k) => v - perImage[Math.floor(k / C)]),
    N,
    captionImage,
  );
  return { i2t, t2i, rsum: i2t.r1 + i2t.r5 + i2t.r10 + t2i.r1 + t2i.r5 + t2i.r10 };
}

/**
 * One model's scores: `images` (the split's N, then a bank's) against the split's C captions, `[images, C]`, and —
 * with `bank` — the split's N images against the captions after the first C, `[N, texts − C]`.
 */
async function memberScores(
  { model, vocab }: MatchingModel,
  cache: FeatureCache,
  images: readonly string[],
  texts: readonly string[],
  N: number,
  C: number,
  bank: boolean,
  onChunk: (done: number) => void,
): Promise<{ split: Float32Array; bank?: Float32Array }> {
  const caps = texts.map((c) => vocab.encode(c));
  const { ids, maxLen } = padCaptions(caps);
  const lengths = caps.map((c) => c.length);
  const { images: imgVecs, captions: capVecs } = await encodeForRetrieval(
    model,
    (names) => cache.read(names),
    REGIONS,
    images,
    ids,
    lengths,
    maxLen,
  );
  const perCaption = maxLen * model.config.jointDim;
  const split = await scoreMatrix(
    model.config,
    imgVecs,
    images.length,
    capVecs.subarray(0, C * perCaption),
    lengths.slice(0, C),
    maxLen,
    { onChunk },
  );
  if (!bank) return { split };
  const perImage = imgVecs.length / images.length;
  const bankScores = await scoreMatrix(
    model.config,
    imgVecs.subarray(0, N * perImage),
    N,
    capVecs.subarray(C * perCaption),
    lengths.slice(C),
    maxLen,
  );
  return { split, bank: bankScores };
}

/** A query bank: `images` train images in a seeded order, their features cached, and their captions. */
async function queryBank(
  o: MatchingModel & { dataDir: string; featuresDir: string; skipMissing?: boolean; skipBad?: boolean },
  q: { images: number; seed?: number },
): Promise<{ images: string[]; texts: string[] }> {
  const train = await cachedSplit({
    dataDir: o.dataDir,
    split: "train",
    vocab: o.vocab,
    featuresDir: o.featuresDir,
    skipMissing: o.skipMissing,
    skipBad: o.skipBad,
    quiet: true,
  });
  train.cache.close();
  if (train.images.length < q.images)
    throw new Error(`a query bank of ${q.images} train images, but ${o.dataDir} has ${train.images.length}`);
  const images = new Rng(q.seed ?? 1).shuffle([...train.images]).slice(0, q.images);
  return { images, texts: images.flatMap((im) => train.dataset.captionsOf(im)) };
}

export interface HumanAgreement {
  file: string;
  /** Judged pairs scored (image available, caption found). */
  pairs: number;
  missingImage: number;
  missingCaption: number;
  /** Rank correlation of the model's score with the mean expert judgement; null with fewer than 2 pairs. */
  kendallTau: number | null;
  spearman: number | null;
}

/**
 * The model's scores of the pairs in the data folder's ExpertAnnotations.txt against the experts' mean
 * judgement (lib/matching/human-judgements.ts). Pairs whose image is not on disk are counted, not scored (on Flickr8k
 * all 5,822 judged images are test images).
 */
export async function humanAgreement(
  o: MatchingModel & { dataDir: string; featuresDir: string; ensemble?: MatchingModel[] },
): Promise<HumanAgreement> {
  const layout = resolveLayout(o.dataDir);
  const byImage = new Map<string, string[]>();
  for (const r of readCaptions(layout.captionsFile)) byImage.set(r.image, [...(byImage.get(r.image) ?? []), r.caption]);
  const judged = judgedPairs(
    o.dataDir,
    (im) => byImage.get(im) ?? [],
    (im) => fs.existsSync(imagePath(layout, im)),
  );
  const base = {
    file: judged.file,
    pairs: judged.pairs.length,
    missingImage: judged.missingImage,
    missingCaption: judged.missingCaption,
  };
  if (judged.pairs.length < 2) return { ...base, kendallTau: null, spearman: null };
  const images = [...new Set(judged.pairs.map((p) => p.image))];
  const imageIndex = new Map(images.map((im, i) => [im, i]));
  await extractFeatures({
    files: images.map((im) => imagePath(layout, im)),
    out: o.featuresDir,
    quiet: true,
  });
  const cache = FeatureCache.open(o.featuresDir, ENCODER_IDENTITY); // SCAN reads the 7×7 grid's features
  const members = [{ model: o.model, vocab: o.vocab }, ...(o.ensemble ?? [])];
  const scores = new Array<number>(judged.pairs.length).fill(0);
  for (const { model, vocab } of members) {
    const caps = judged.pairs.map((p) => vocab.encode(p.caption));
    const { ids, maxLen: T } = padCaptions(caps);
    const lengths = caps.map((c) => c.length);
    const enc = await encodeForRetrieval(model, (names) => cache.read(names), REGIONS, images, ids, lengths, T);
    const d = model.config.jointDim,
      rowI = REGIONS * d,
      rowC = T * d;
    for (let p0 = 0; p0 < judged.pairs.length; p0 += 256) {
      const part = judged.pairs.slice(p0, p0 + 256);
      const img = new Float32Array(part.length * rowI),
        cap = new Float32Array(part.length * rowC);
      part.forEach((p, j) => {
        const i = imageIndex.get(p.image)!;
        img.set(enc.images.subarray(i * rowI, (i + 1) * rowI), j * rowI);
        cap.set(enc.captions.subarray((p0 + j) * rowC, (p0 + j + 1) * rowC), j * rowC);
      });
      const s = tf.tidy(() =>
        pairScores(
          tf.tensor3d(img, [part.length, REGIONS, d]),
          tf.tensor3d(cap, [part.length, T, d]),
          lengths.slice(p0, p0 + part.length),
          model.config,
        ),
      );
      (await s.data()).forEach((v, j) => (scores[p0 + j] += v / members.length));
      s.dispose();
    }
  }
  cache.close();
  const human = judged.pairs.map((p) => p.human);
  return { ...base, kendallTau: kendallTauB(scores, human), spearman: spearman(scores, human) };
}
