/**
 * Training the captioning decoder on cached encoder features (the encoder is frozen, so its features are read
 * from the cache instead of recomputed). The seed's loop — Adam, teacher forcing, "print every N batches" with
 * a sample caption — plus what a long run needs: gradient clipping, a NaN/Inf stop that keeps the last good
 * checkpoint, loss history, and an atomic checkpoint per epoch from which `resume` continues to the same
 * numbers as an uninterrupted run (batch order depends only on (seed, epoch); dropout seeds on (seed, epoch, step)).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { restoreOptimizer } from "../engine/adam";
import { DecoderConfig, DecoderRNN, defaultInitializer } from "./decoder";
import { Captioner, greedy } from "./generate";
import { captionImages } from "./caption-images";
import { CaptionMetrics, captionMetrics } from "./metrics";
import { tokenize } from "../data/tokenizer";
import {
  LoadedCheckpoint,
  loadModelCheckpoint,
  resumableOptimizerWeights,
  resumableVocabulary,
  writeCheckpoint,
} from "../util/checkpoint";
import { Vocabulary } from "../data/vocabulary";
import { loadVocabulary } from "../data/vocabulary-file";
import { fit } from "../engine/fit";
import type { ScstConfig } from "./scst";
import type { FeatureBatch, FeatureCaptionDataset } from "../encoder/feature-dataset";
import { decoderFeatureMap } from "../encoder/feature-maps";
import { CaptionStep, StepEngine, startStepEngine } from "./step-engine";
import { TypedAdam } from "../engine/adam";
import { TrainEngine, defaultEngine } from "../engine/backend";

export interface TrainConfig {
  epochs: number;
  batchSize: number;
  lr: number;
  /** Global-norm gradient clipping. */
  clipNorm: number;
  /**
   * Weight λ of the doubly stochastic attention term λ·Σ_regions (1 − Σ_t α)². The paper and the seed write λ = 1 with
   * this sum; 1/49 weighs it as the reference PyTorch code's mean over the 49 regions (the seed's setting here). The
   * default is 0: the term asks every region to be looked at over a caption and so spreads each word's attention —
   * without it attention points at the named object half as often again at the same scene accuracy and Flickr8k
   * BLEU-4 (docs/attention-study.md).
   */
  lambda: number;
  seed: number;
  printEvery: number;
  decoder: DecoderConfig;
  /** Trained on the photos and their mirror images (`train --mirror`; the data's choice, recorded for --resume). */
  mirror?: boolean;
  /**
   * Linear learning-rate warm-up over this many epochs (fractions allowed; 0 or absent: none). Large batches take
   * few steps per epoch and a large lr; ramping it up over the first epoch(s) keeps the first steps, taken from
   * random weights, from diverging (Goyal et al. 2017).
   */
  lrWarmupEpochs?: number;
  /**
   * "cosine": the lr falls from `lr` towards 0 along half a cosine over the run's `epochs` (Loshchilov & Hutter
   * 2017), so the last epochs take small steps instead of swinging about; "constant" or absent: `lr` throughout.
   */
  lrSchedule?: "constant" | "cosine";
  /** Select by dev BLEU-4: score it after each epoch, keep the best epoch, decay the lr on a plateau (absent: off). */
  plateau?: PlateauConfig;
  /** Self-critical training (lib/captioning/scst.ts) instead of cross-entropy (absent: cross-entropy). */
  scst?: ScstConfig;
}

/**
 * Model selection by the metric that is reported, as captioning work does (Xu et al. early-stop on BLEU): after each
 * epoch the dev captions (beam `beam`) are scored; the best epoch is kept in `best/` beside the checkpoint; after
 * `patience` epochs without a better BLEU-4 the learning rate is multiplied by `factor`; after `stopAfter` such
 * epochs training stops (0: never).
 */
export interface PlateauConfig {
  beam: number;
  patience: number;
  factor: number;
  stopAfter: number;
}

export function defaultPlateauConfig(): PlateauConfig {
  return { beam: 3, patience: 1, factor: 0.5, stopAfter: 3 };
}

/** The folder that keeps the best epoch of a run whose checkpoint is `out` (runs/NAME/best). */
export function bestDir(out: string): string {
  return path.join(path.dirname(out), "best");
}

/** The folder that keeps epoch `n` of a run whose checkpoint is `out` (runs/NAME/epochs/N), with --keep-epochs. */
export function epochDir(out: string, n: number): string {
  return path.join(path.dirname(out), "epochs", String(n));
}

/** The run folder and the epoch of a folder that epochDir names; undefined for any other folder. */
export function parseEpochDir(dir: string): { run: string; epoch: number } | undefined {
  const abs = path.resolve(dir);
  const [parent, n] = [path.dirname(abs), path.basename(abs)];
  // epochDir reads only the checkpoint's folder, so any name inside the run stands for it
  if (abs !== epochDir(path.join(path.dirname(parent), "checkpoint"), Number(n))) return undefined;
  return { run: path.dirname(parent), epoch: Number(n) };
}

/**
 * Keeps an epoch's weights in epochDir (no optimiser state: a copy to evaluate or caption with, not to resume), so
 * that an epoch chosen later by another measure than the run's own is not lost with the next checkpoint.
 */
export async function keepEpoch(out: string, saved: Parameters<typeof writeCheckpoint>[1]): Promise<void> {
  const meta = { ...saved.meta, weightsOnly: true };
  await writeCheckpoint(epochDir(out, saved.meta.epoch), { ...saved, meta, optimizer: undefined });
}

/** BLEU, CIDEr-D and ROUGE-L of the decoder's captions of every image of `data`, beam `beam`. */
export async function splitMetrics(
  decoder: DecoderRNN,
  data: FeatureCaptionDataset,
  beam: number,
  vocab: Vocabulary = data.dataset.vocab,
): Promise<CaptionMetrics> {
  const images = data.dataset.images;
  const gen = await captionImages(decoder, data.cache, images, beam);
  const refs = images.map((im) => data.dataset.captionsOf(im).map(tokenize));
  return captionMetrics(
    gen.map((g) => vocab.decode(g.ids)),
    refs,
  );
}

/** Dev BLEU-4 (×100) of the decoder's captions of every image of `data`, beam `beam`. */
export async function devBleu4(decoder: DecoderRNN, data: FeatureCaptionDataset, beam: number): Promise<number> {
  return (await splitMetrics(decoder, data, beam)).bleu4;
}

/** Where a run stands in its selection: best dev BLEU-4 so far, its epoch, and epochs since. */
export function selectionState(history: History): { best: number; bestEpoch: number; since: number } {
  let best = -Infinity,
    bestEpoch = 0,
    since = 0;
  for (const e of history.epoch) {
    if (e.devBleu4 === undefined) continue;
    if (e.devBleu4 > best) {
      best = e.devBleu4;
      bestEpoch = e.epoch + 1;
      since = 0;
    } else since++;
  }
  return { best, bestEpoch, since };
}

/** Share of a linear ramp over `epochs` epochs reached after `seen` captions: 1 when there is no ramp. */
function rampShare(seen: number, epochs: number | undefined, epochSize: number): number {
  return epochs && epochs > 0 ? Math.min(1, seen / (epochs * epochSize)) : 1;
}

/**
 * The learning rate once `seen` training captions have been used (across epochs and resumes): the warm-up's ramp
 * times the schedule's decay; never 0 before the run's last caption.
 */
export function lrAfter(cfg: TrainConfig, seen: number, epochSize: number): number {
  const decay =
    cfg.lrSchedule === "cosine" ? 0.5 * (1 + Math.cos(Math.PI * rampShare(seen, cfg.epochs, epochSize))) : 1;
  return cfg.lr * rampShare(seen + 1, cfg.lrWarmupEpochs, epochSize) * decay;
}

export function defaultTrainConfig(decoder: DecoderConfig): TrainConfig {
  return { epochs: 10, batchSize: 32, lr: 3e-4, clipNorm: 5, lambda: 0, seed: 1, printEvery: 100, decoder };
}

export interface History {
  /** loss = crossEntropy + λ·attention penalty; the cross-entropy alone is what the seed prints. */
  batch: { epoch: number; step: number; loss: number; crossEntropy: number }[];
  epoch: {
    epoch: number;
    trainLoss: number;
    trainCrossEntropy: number;
    valLoss?: number;
    valCrossEntropy?: number;
    seconds: number;
    captionsPerSecond: number;
    /** With plateau selection: dev BLEU-4 after this epoch, and the base learning rate of the next one. */
    devBleu4?: number;
    lr?: number;
    /** Self-critical epochs: mean CIDEr-D of the sampled and the greedy train captions, and dev CIDEr-D. */
    sampleReward?: number;
    greedyReward?: number;
    devCider?: number;
  }[];
}

export const CHECKPOINT_FORMAT = "attend-tell/caption-checkpoint";

/** Mean loss and cross-entropy over a split, without dropout (per-batch means weighted by captions). */
export async function evaluateLoss(
  engine: StepEngine,
  data: FeatureCaptionDataset,
  cfg: TrainConfig,
): Promise<{ loss: number; crossEntropy: number }> {
  let loss = 0,
    ce = 0,
    n = 0;
  for await (const b of data.loader({ batchSize: cfg.batchSize, shuffle: false, seed: 0 }).epoch(0)) {
    const r = await engine.loss(b.features, b.captions, cfg.lambda);
    loss += r.loss * b.imageNames.length;
    ce += r.crossEntropy * b.imageNames.length;
    n += b.imageNames.length;
    tf.dispose([b.features, b.captions]);
  }
  return { loss: loss / n, crossEntropy: ce / n };
}

/** A captioning checkpoint: the decoder and what resuming needs. */
export type Checkpoint = Omit<LoadedCheckpoint<DecoderRNN, TrainConfig, History>, "model"> & {
  decoder: DecoderRNN;
  vocab: Vocabulary;
};

export async function loadCheckpoint(dir: string): Promise<Checkpoint> {
  const { model, ...rest } = await loadModelCheckpoint<DecoderRNN, TrainConfig, History>(
    dir,
    CHECKPOINT_FORMAT,
    "captioning",
    (config, init) => new DecoderRNN(config.decoder, init),
  );
  return { ...rest, vocab: loadVocabulary(rest.vocabFile), decoder: model };
}

/**
 * A captioner from one checkpoint folder, or an ensemble from several (their word probabilities averaged when
 * decoding, generate.ts `ensembleLogProbs`): members must share the vocabulary, word for word, and the feature map.
 */
export async function loadCaptioner(
  dirs: readonly string[],
): Promise<{ decoder: Captioner; vocab: Vocabulary; checkpoints: Checkpoint[]; dispose(): void }> {
  if (dirs.length === 0) throw new Error("loadCaptioner: no checkpoint folder given");
  const checkpoints: Checkpoint[] = [];
  const dispose = () => checkpoints.forEach((c) => c.decoder.dispose());
  try {
    for (const dir of dirs) {
      const ck = await loadCheckpoint(dir);
      checkpoints.push(ck);
      const first = checkpoints[0];
      const differs = first.vocab.difference(ck.vocab);
      if (differs)
        throw new Error(
          `${dir}: its vocabulary differs from ${dirs[0]}'s (${differs}): an ensemble's members must share one vocabulary`,
        );
      const [m, m0] = [decoderFeatureMap(ck.decoder.config), decoderFeatureMap(first.decoder.config)];
      if (m !== m0)
        throw new Error(
          `${dir}: it reads feature map ${m}, ${dirs[0]} reads ${m0}: an ensemble's members must read the same features`,
        );
    }
  } catch (e) {
    dispose();
    throw e;
  }
  const decoders = checkpoints.map((c) => c.decoder);
  return { decoder: decoders.length === 1 ? decoders[0] : decoders, vocab: checkpoints[0].vocab, checkpoints, dispose };
}

export interface TrainOptions {
  train: FeatureCaptionDataset;
  val?: FeatureCaptionDataset;
  vocab: Vocabulary;
  config: TrainConfig;
  /** Checkpoint folder (runs/<name>/checkpoint). */
  out: string;
  resume?: boolean;
  log?: (line: string) => void;
  /** Called after each batch, e.g. for a live chart. */
  onBatch?: (b: { epoch: number; step: number; loss: number; crossEntropy: number; history: History }) => void;
  /** Called after each epoch's checkpoint is written; returning true stops training there (e.g. good enough). */
  onEpoch?: (e: { epoch: number; decoder: DecoderRNN; history: History }) => boolean | void | Promise<boolean | void>;
  quiet?: boolean;
  /** Where the training step runs: "onnx" (ONNX Runtime, CPU) or "tfjs" (the active backend); see defaultEngine. */
  engine?: TrainEngine;
  /** Also keep each epoch's weights in runs/NAME/epochs/N (keepEpoch). */
  keepEpochs?: boolean;
}

/**
 * The plateau rule after an epoch: scores dev BLEU-4 into `entry`, decays the lr after `patience` epochs without a
 * better score, says whether to stop and whether this epoch is the best so far (the caller keeps it).
 */
async function selectEpoch(
  entry: History["epoch"][number],
  o: {
    decoder: DecoderRNN;
    history: History;
    val: FeatureCaptionDataset;
    plateau: PlateauConfig;
    lr: number;
    log: (line: string) => void;
  },
): Promise<{ stop: boolean; lr: number; improved: boolean }> {
  const p = o.plateau;
  entry.devBleu4 = await devBleu4(o.decoder, o.val, p.beam);
  const { best, bestEpoch, since } = selectionState(o.history);
  const decayed = since > 0 && since % p.patience === 0;
  const lr = decayed ? o.lr * p.factor : o.lr;
  if (decayed) entry.lr = lr;
  const stop = p.stopAfter > 0 && since >= p.stopAfter;
  o.log(
    `epoch ${entry.epoch + 1}: dev BLEU-4 ${entry.devBleu4.toFixed(2)} (beam ${p.beam}); best ${best.toFixed(2)} after epoch ${bestEpoch}` +
      (since === 0 ? ", kept in best/" : `, ${since} epoch${since > 1 ? "s" : ""} without a better one`) +
      (decayed ? `; lr → ${lr.toExponential(2)}` : "") +
      (stop ? "; stopping" : ""),
  );
  return { stop, lr, improved: since === 0 };
}

/**
 * A new decoder, or the checkpoint in `opts.out` with `--resume` (its config, except the schedule's rest, and its
 * optimiser state).
 */
async function startOrResume(opts: TrainOptions, log: (s: string) => void) {
  if (!(opts.resume && fs.existsSync(path.join(opts.out, "checkpoint.json")))) {
    const cfg = opts.config;
    const decoder = new DecoderRNN(cfg.decoder, defaultInitializer(cfg.seed));
    return { decoder, history: emptyHistory(), cfg, epoch: 0, optimizerWeights: undefined };
  }
  const ck = await loadCheckpoint(opts.out);
  resumableVocabulary(opts.out, ck.vocab, opts.vocab, ck.dataDir);
  if ((ck.config as { attentionEntropy?: number }).attentionEntropy)
    throw new Error(
      `${opts.out} was trained with the attention-entropy term, a study variant no longer supported (docs/variants.md): it cannot be resumed; its model still captions`,
    );
  // The rest of the schedule (epochs, selection) may change on resume; everything else is the checkpoint's.
  const cfg = { ...ck.config, epochs: opts.config.epochs, plateau: opts.config.plateau ?? ck.config.plateau };
  const optimizerWeights = resumableOptimizerWeights(opts.out, ck.optimizerWeights);
  log(`resumed from ${opts.out} after epoch ${ck.epoch}`);
  return { decoder: ck.decoder, history: ck.history, cfg, epoch: ck.epoch, optimizerWeights };
}

function emptyHistory(): History {
  return { batch: [], epoch: [] };
}

/** The run's step engine (lib/captioning/step-engine.ts), its optimiser restored on resume. */
async function trainingEngine(
  decoder: DecoderRNN,
  opts: TrainOptions,
  lr: number,
  optimizerWeights: { name: string; tensor: tf.Tensor }[] | undefined,
  log: (s: string) => void,
): Promise<StepEngine> {
  opts.train.cache.checkFeatureMap(decoderFeatureMap(decoder.config), "the decoder");
  const engine = opts.engine ?? defaultEngine();
  const steps = await startStepEngine(decoder, { engine, regions: opts.train.cache.regions, lr });
  if (optimizerWeights) await restoreOptimizer(steps.optimizer, optimizerWeights);
  if (!opts.quiet) log(`training step: ${steps.description}`);
  return steps;
}

/** Prints the batch's loss and a greedy caption of its first image. */
async function printSample(decoder: DecoderRNN, opts: TrainOptions, b: FeatureBatch, r: BatchRecord): Promise<string> {
  const f = opts.train.cache.tensor([b.imageNames[0]]);
  const [g] = await greedy(decoder, f, 20);
  f.dispose();
  return (
    `Epoch: ${r.epoch + 1} Batch: ${r.step + 1} loss: ${r.loss.toFixed(5)} (cross-entropy ${r.crossEntropy.toFixed(5)})  ` +
    `sample (${b.imageNames[0]}): ${opts.vocab.decode(g.ids).join(" ")}`
  );
}

type BatchRecord = History["batch"][number];
type EpochRecord = History["epoch"][number];

/**
 * The end of an epoch: validation loss, the history's entry, selection by dev BLEU-4 (best/ and the lr decay)
 * and the checkpoint. Returns the base lr from now on and whether to stop.
 */
async function endEpoch(
  entry: EpochRecord,
  o: {
    opts: TrainOptions;
    cfg: TrainConfig;
    decoder: DecoderRNN;
    optimizer: tf.Optimizer | TypedAdam;
    history: History;
    lr: number;
    log: (s: string) => void;
  },
): Promise<{ lr: number; stop: boolean }> {
  const { opts, cfg, decoder, history } = o;
  o.history.epoch.push(entry);
  o.log(
    `epoch ${entry.epoch + 1}: train loss ${entry.trainLoss.toFixed(4)} (cross-entropy ${entry.trainCrossEntropy.toFixed(4)})` +
      (entry.valLoss !== undefined
        ? `, val loss ${entry.valLoss.toFixed(4)} (cross-entropy ${entry.valCrossEntropy!.toFixed(4)})`
        : "") +
      `, ${entry.seconds.toFixed(1)} s (${entry.captionsPerSecond.toFixed(1)} captions/s)`,
  );
  const meta = {
    format: CHECKPOINT_FORMAT,
    version: 1,
    epoch: entry.epoch + 1,
    config: cfg,
    dataDir: path.resolve(opts.train.dataset.layout.dataDir),
  };
  entry.lr = o.lr;
  const saved = { weights: decoder.namedVariables(), optimizer: o.optimizer, vocab: opts.vocab, history, meta };
  let next = { lr: o.lr, stop: false };
  if (cfg.plateau && opts.val) {
    const sel = await selectEpoch(entry, {
      decoder,
      history,
      val: opts.val,
      plateau: cfg.plateau,
      lr: o.lr,
      log: o.log,
    });
    next = { lr: sel.lr, stop: sel.stop };
    if (sel.improved) await writeCheckpoint(bestDir(opts.out), saved);
  }
  if (opts.keepEpochs) await keepEpoch(opts.out, saved);
  await writeCheckpoint(opts.out, saved);
  return next;
}

export async function train(opts: TrainOptions): Promise<{ decoder: DecoderRNN; history: History }> {
  const log = opts.log ?? ((s: string) => console.error(s));
  const start = await startOrResume(opts, log);
  const { decoder, history, cfg, epoch: startEpoch } = start;
  const engine = await trainingEngine(decoder, opts, opts.config.lr, start.optimizerWeights, log);
  const optimizer = engine.optimizer;
  // The base lr after plateau decays so far (recorded per epoch, so a resumed run continues the schedule).
  let lrBase = history.epoch[history.epoch.length - 1]?.lr ?? cfg.lr;
  const totals = { loss: 0, crossEntropy: 0, n: 0 };
  await fit<FeatureBatch, CaptionStep>({
    from: startEpoch,
    epochs: cfg.epochs,
    optimizer,
    clipNorm: cfg.clipNorm,
    out: opts.out,
    progress: opts.quiet ? undefined : { total: opts.train.length, unit: "captions" },
    batches: (epoch) => opts.train.loader({ batchSize: cfg.batchSize, shuffle: true, seed: cfg.seed }).epoch(epoch),
    items: (b) => b.imageNames.length,
    release: (b) => tf.dispose([b.features, b.captions]),
    lr: (epoch, seen) => lrAfter({ ...cfg, lr: lrBase }, epoch * opts.train.length + seen, opts.train.length),
    step(b, { epoch, step }) {
      const seed = (cfg.seed * 1_000_003 + epoch * 10_007 + step) >>> 0;
      return engine.step(b.features, b.captions, { seed, lambda: cfg.lambda, dropout: true });
    },
    applied: () => engine.updated(),
    async afterStep(b, { loss, crossEntropy }, { epoch, step }) {
      const record = { epoch, step, loss, crossEntropy };
      history.batch.push(record);
      opts.onBatch?.({ ...record, history });
      const k = b.imageNames.length;
      totals.loss += loss * k;
      totals.crossEntropy += crossEntropy * k;
      totals.n += k;
      if ((step + 1) % cfg.printEvery === 0) {
        engine.sync();
        log(await printSample(decoder, opts, b, record));
      }
    },
    async afterEpoch(epoch, seconds) {
      engine.sync(); // selection and the checkpoint read the tfjs variables
      const val = opts.val ? await evaluateLoss(engine, opts.val, cfg) : undefined;
      const { n } = totals;
      const entry: EpochRecord = {
        epoch,
        trainLoss: totals.loss / n,
        trainCrossEntropy: totals.crossEntropy / n,
        valLoss: val?.loss,
        valCrossEntropy: val?.crossEntropy,
        seconds,
        captionsPerSecond: n / seconds,
      };
      Object.assign(totals, { loss: 0, crossEntropy: 0, n: 0 });
      const next = await endEpoch(entry, { opts, cfg, decoder, optimizer, history, lr: lrBase, log });
      lrBase = next.lr;
      return next.stop || (await opts.onEpoch?.({ epoch, decoder, history }));
    },
    dispose: () => engine.dispose(),
  });
  return { decoder, history };
}

/** The first of `dirs` that holds a captioning checkpoint (notebooks use a trained model when there is one). */
export function findCheckpoint(dirs: readonly (string | undefined)[]): string | undefined {
  return dirs.find((d): d is string => !!d && fs.existsSync(path.join(d, "checkpoint.json")));
}
