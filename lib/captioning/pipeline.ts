/**
 * The main job (`npm start`), stage by stage, on the synthetic scenes by default or on Flickr8k:
 *   data → frozen ResNet-50 features (cached) → vocabulary (train split) → training with a checkpoint per
 *   epoch → evaluation (greedy and beam 3) → report.html and a summary with each stage's time. On the scenes it
 *   trains a fixed schedule, prints after each epoch how many dev scenes it captions right, and reports on the test
 *   scenes, which no decision saw; on Flickr8k (whose test photos are withheld) it reports on dev.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { initBackend, describeBackend } from "../engine/backend";
import { DecoderConfig, getDefaultConfig, regionWidth } from "./decoder";
import { writeJsonAtomic } from "../util/io";
import { saveVocabulary } from "../data/vocabulary-file";
import { EvaluationReport, GeneratedCaption, evaluate } from "./evaluate";
import { writeReport } from "./report";
import { Progress } from "../util/progress";
import { SCENE_COUNT, SceneObject, ensureScenes, readBoxes } from "../data/synthetic";
import { SceneScore, captionCorrect } from "./synthetic-eval";
import { scoreScenes } from "./caption-images";
import { History, TrainConfig, defaultTrainConfig, lrAfter, train } from "./train";
import { prepareCaptionData } from "../encoder/feature-dataset";
import { FEATURE_MAP, FEATURE_MAPS, FeatureMap, decoderFeatureMap, decoderFeatures } from "../encoder/feature-maps";
import { defaultEngine } from "../engine/backend";
import { Split } from "../data/captions";

export interface PipelineOptions {
  data: "synthetic" | "flickr8k";
  /** Defaults to data/synthetic (generated if absent) for synthetic data. */
  dataDir?: string;
  out: string;
  batchSize: number;
  /** Epochs (default: the data set's, `pipelineConfig`). */
  epochs?: number;
  /** The training's random seed: weights, batch order, dropout (default TrainConfig's). */
  seed?: number;
  /** CI size: fewer synthetic scenes (SCENE_COUNT), more and shorter epochs (MAIN_JOB_EPOCHS). */
  quick: boolean;
  skipMissing: boolean;
  /** Leave out photos that cannot be decoded instead of failing. */
  skipBad?: boolean;
  /** Continue the checkpoint in `out` (the caller has checked that this is what the user asked for). */
  resume?: boolean;
  /** The features the decoder reads (default: the data set's, MAIN_JOB_INPUTS). */
  map?: FeatureMap;
  /**
   * A layer learned over each region (DecoderConfig.regionLayer; false: none) and its width
   * (DecoderConfig.regionDim); default: the data set's (MAIN_JOB_INPUTS).
   */
  regionLayer?: boolean;
  regionDim?: number;
  /** Where the features are cached (default: data/features/<data folder name>, `defaultFeaturesDir`). */
  featuresDir?: string;
}

/** What the main job's decoder reads: a feature map and, optionally, a region layer over it. */
export interface MainJobInputs {
  map: FeatureMap;
  regionLayer: boolean;
  regionDim?: number;
}

/**
 * The main job's inputs per data set where no flag chooses them (the study in
 * docs/attention-study.md). The scenes: conv4 averaged onto the 7 × 7 grid, more local than conv5, with a region layer narrowed to
 * 512 that adds the recognition conv4 lacks — its attention lands on the object each word names, where conv5's
 * lands there half the time. Photos: the seed's conv5 and no layer, which caption Flickr8k best (dev BLEU-4).
 */
export const MAIN_JOB_INPUTS: Record<PipelineOptions["data"], MainJobInputs> = {
  synthetic: { map: "conv4-pooled", regionLayer: true, regionDim: 256 },
  flickr8k: { map: FEATURE_MAP, regionLayer: false },
};

/** The data set's inputs (MAIN_JOB_INPUTS) with what the options choose in their place. */
export function mainJobInputs(
  opts: Pick<PipelineOptions, "data" | "map" | "regionLayer" | "regionDim">,
): MainJobInputs {
  const d = MAIN_JOB_INPUTS[opts.data];
  const regionLayer = opts.regionLayer ?? (opts.regionDim !== undefined || d.regionLayer);
  if (!regionLayer && opts.regionDim !== undefined)
    throw new Error(`a region layer's width (${opts.regionDim}) was given without the layer`);
  return { map: opts.map ?? d.map, regionLayer, regionDim: regionLayer ? (opts.regionDim ?? d.regionDim) : undefined };
}

export interface PipelineSummary {
  backend: string;
  engine: string;
  data: string;
  dataDir: string;
  vocabSize: number;
  trainImages: number;
  trainCaptions: number;
  /** What the decoder reads: its feature map and region layer. */
  decoder: string;
  epochs: number;
  /** Per epoch, counted from 1 (as the terminal and the report count); `lr`: the rate its last step used. */
  history: History["epoch"];
  /** Synthetic scenes: dev-split caption correctness after each epoch (shown, never used to stop or select). */
  sceneScores?: Omit<SceneScore, "samples">[];
  /** The split evaluated: test on the scenes, dev on Flickr8k. */
  split: Split;
  /** Greedy captions of the evaluated split; on the scenes, right or wrong and the scene's objects. */
  samples: { image: string; caption: string; correct?: boolean; truth?: string[] }[];
  checkpoint: string;
  /** The split's metrics per beam size (lib/captioning/evaluate.ts). */
  metrics: EvaluationReport["beam"];
  report: string;
  /** Seconds per stage, in order, and in all. */
  stages: Record<Stage, number>;
  seconds: number;
}

/** The main job's stages, as the summary times them. */
export const STAGES = ["scenes", "features", "training", "evaluation", "report"] as const;
export type Stage = (typeof STAGES)[number];

const log = (s: string) => console.error(`[attend-tell] ${s}`);

/** The share of test scenes the main job is built to caption exactly right (greedy), printed beside the figure. */
const TARGET_ACCURACY = 0.95;

/** The data folder: `opts.dataDir`, or the synthetic scenes (generated on first use). */
async function pipelineData(opts: PipelineOptions): Promise<string> {
  if (opts.dataDir) return opts.dataDir;
  const n = SCENE_COUNT[opts.quick ? "quick" : "full"];
  const bar = new Progress(n, "synthetic scenes", "img");
  const { dataDir, generated } = await ensureScenes(opts.quick, () => bar.tick());
  log(generated ? `generated ${n} synthetic scenes in ${dataDir}` : `using the synthetic scenes in ${dataDir}`);
  return dataDir;
}

/**
 * The decoder the main job trains on the scenes, sized for their world: 30-odd words, captions of 3–15, 1–3 objects
 * (docs/main-job.md measures it against the seed's 300/256/512, which takes three times as long an epoch).
 */
export function sceneDecoderConfig(vocabSize: number): DecoderConfig {
  return { ...getDefaultConfig(vocabSize), embedSize: 128, attentionDim: 128, decoderDim: 256, dropout: 0.1 };
}

/** The main job's epochs where `--epochs` does not say; the quick (CI) size's are an eighth as long, so more. */
export const MAIN_JOB_EPOCHS = { synthetic: 14, quick: 20, flickr8k: 10 } as const;

/** The main job's recipe per data set: the decoder, the epochs and the learning rate (its schedule below). */
function recipe(opts: Pick<PipelineOptions, "data" | "quick">, vocabSize: number) {
  if (opts.data === "flickr8k")
    return { decoder: getDefaultConfig(vocabSize), epochs: MAIN_JOB_EPOCHS.flickr8k, lr: 3e-4 };
  const epochs = MAIN_JOB_EPOCHS[opts.quick ? "quick" : "synthetic"];
  return { decoder: sceneDecoderConfig(vocabSize), epochs, lr: 2e-3 };
}

/** The training configuration of the main job: the recipe's decoder on the data set's inputs, and its schedule. */
export function pipelineConfig(
  opts: Pick<PipelineOptions, "data" | "quick" | "epochs" | "seed" | "batchSize" | "map" | "regionLayer" | "regionDim">,
  vocabSize: number,
): TrainConfig {
  const synthetic = opts.data === "synthetic";
  const inputs = mainJobInputs(opts);
  const r = recipe(opts, vocabSize);
  const decoder = {
    ...r.decoder,
    ...decoderFeatures(inputs.map),
    ...(inputs.regionLayer ? { regionLayer: true, regionDim: inputs.regionDim } : {}),
  };
  const defaults = defaultTrainConfig(decoder);
  return {
    ...defaults,
    seed: opts.seed ?? defaults.seed,
    epochs: opts.epochs ?? r.epochs,
    batchSize: opts.batchSize,
    lr: r.lr,
    lrSchedule: synthetic ? "cosine" : undefined,
    printEvery: synthetic ? 50 : 100,
  };
}

export async function runPipeline(opts: PipelineOptions): Promise<PipelineSummary> {
  const t0 = Date.now();
  const stages = {} as Record<Stage, number>;
  const timed = async <T>(stage: Stage, work: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    const result = await work();
    stages[stage] = (Date.now() - t) / 1000;
    return result;
  };
  const backend = await initBackend();
  const synthetic = opts.data === "synthetic";
  const split: Split = synthetic ? "test" : "dev"; // Flickr8k's test photos are withheld
  const dataDir = await timed("scenes", () => pipelineData(opts));
  const data = await timed("features", () =>
    prepareCaptionData(dataDir, {
      map: mainJobInputs(opts).map,
      skipMissing: opts.skipMissing,
      skipBad: opts.skipBad,
      featuresDir: opts.featuresDir,
    }),
  );
  log(`vocabulary: ${data.vocab.size} ids from the train split; features cached in ${data.featuresDir}`);
  fs.mkdirSync(opts.out, { recursive: true });
  saveVocabulary(data.vocab, path.join(opts.out, "vocab.json"));
  if (data.skipped.length) writeJsonAtomic(path.join(opts.out, "skipped-images.json"), data.skipped);

  const config = pipelineConfig(opts, data.vocab.size);
  const boxes = synthetic ? readBoxes(dataDir) : undefined;
  const checkpoint = path.join(opts.out, "checkpoint");
  const {
    decoder: model,
    history,
    sceneScores,
  } = await timed("training", () => trainWatched(data, config, checkpoint, opts.resume, boxes));
  const { report, captions } = await timed("evaluation", () =>
    evaluate({
      decoder: model,
      vocab: data.vocab,
      dataDir,
      split,
      featuresDir: data.featuresDir,
      beams: [1, 3],
      outDir: opts.out,
      skipMissing: opts.skipMissing,
      skipBad: opts.skipBad,
    }),
  );
  const samples = summarySamples(captions["1"], boxes);
  writeJsonAtomic(path.join(opts.out, `metrics-${split}.json`), report);
  const reportFile = await timed("report", () => writeReport(opts.out, { split, title: `attend-tell — ${opts.data}` }));
  const reads = decoderReads(model.config); // the trained model's, which a resumed run takes from its checkpoint
  model.dispose();
  const summary: PipelineSummary = {
    backend: describeBackend(backend),
    engine: defaultEngine(),
    data: opts.data,
    dataDir,
    vocabSize: data.vocab.size,
    trainImages: data.train.dataset.images.length,
    trainCaptions: data.train.length,
    decoder: reads,
    epochs: history.epoch.length,
    history: summaryHistory(history.epoch, config, data.train.length),
    sceneScores: sceneScores.length ? sceneScores.map(({ samples: _, ...s }) => s) : undefined,
    split,
    samples,
    checkpoint,
    metrics: report.beam,
    report: reportFile,
    stages,
    seconds: (Date.now() - t0) / 1000,
  };
  writeJsonAtomic(path.join(opts.out, "summary.json"), summary);
  console.log(summaryText(summary, opts));
  return summary;
}

/** The first six greedy captions, marked right or wrong where the scenes' objects are known. */
function summarySamples(
  captions: readonly GeneratedCaption[],
  boxes: Record<string, SceneObject[]> | undefined,
): PipelineSummary["samples"] {
  return captions.slice(0, 6).map((c) => {
    const objects = boxes?.[c.image];
    if (!objects) return { image: c.image, caption: c.caption };
    const truth = objects.map((o) => `${o.color} ${o.shape}`);
    return { image: c.image, caption: c.caption, correct: captionCorrect(c.words, objects), truth };
  });
}

/** Training, with the dev scenes captioned after each epoch for the terminal (never to stop or to select). */
async function trainWatched(
  data: Awaited<ReturnType<typeof prepareCaptionData>>,
  config: TrainConfig,
  checkpoint: string,
  resume: boolean | undefined,
  boxes: Record<string, SceneObject[]> | undefined,
) {
  const devImages = [...data.val.dataset.images];
  const sceneScores: SceneScore[] = [];
  const trained = await train({
    train: data.train,
    val: data.val,
    vocab: data.vocab,
    config,
    out: checkpoint,
    resume,
    log: (l) => console.error(l),
    onEpoch: async ({ epoch, decoder }) => {
      if (!boxes) return;
      const s = await scoreScenes(decoder, data.vocab, data.cache, devImages, boxes);
      sceneScores.push(s);
      log(
        `epoch ${epoch + 1}: dev scenes captioned exactly right ${(100 * s.accuracy).toFixed(1)}% (objects named: recall ${(100 * s.recall).toFixed(1)}%, precision ${(100 * s.precision).toFixed(1)}%)`,
      );
    },
  });
  return { ...trained, sceneScores };
}

/**
 * The history as a user reads it: epochs counted from 1, and each epoch's `lr` the rate of its last step — the
 * schedule's (cosine, warm-up) on the base rate of that epoch — where the checkpoint keeps the base rate, which a
 * resumed run continues from.
 */
export function summaryHistory(epochs: History["epoch"], cfg: TrainConfig, epochSize: number): History["epoch"] {
  return epochs.map((e, i) => {
    const base = i > 0 ? (epochs[i - 1].lr ?? cfg.lr) : cfg.lr;
    return { ...e, epoch: e.epoch + 1, lr: lrAfter({ ...cfg, lr: base }, (e.epoch + 1) * epochSize - 1, epochSize) };
  });
}

/** What a trained decoder reads: "conv4-pooled features (7 × 7 × 1024), a region layer 1024 → 512" and the like. */
function decoderReads(config: DecoderConfig): string {
  const map = decoderFeatureMap(config);
  const { grid, dim } = FEATURE_MAPS[map];
  const layer = config.regionLayer ? `a region layer ${dim} → ${regionWidth(config)}` : "no region layer";
  return `${map} features (${grid} × ${grid} × ${dim}), ${layer}`;
}

/** What `npm start` prints at the end. */
function summaryText(summary: PipelineSummary, opts: PipelineOptions): string {
  const last = summary.history[summary.history.length - 1];
  const { checkpoint, split } = summary;
  const greedy = summary.metrics["1"];
  const stages = STAGES.map((s) => `${s} ${summary.stages[s].toFixed(0)} s`).join(", ");
  return [
    `attend-tell main job — ${opts.data} (${summary.dataDir})`,
    `  backend:     ${summary.backend}; training step on ${summary.engine === "onnx" ? "ONNX Runtime (CPU)" : "tfjs"}`,
    `  data:        ${summary.trainImages} train images, ${summary.trainCaptions} captions; vocabulary ${summary.vocabSize} ids`,
    `  decoder:     reads ${summary.decoder}`,
    `  training:    ${summary.epochs} epochs; last: train cross-entropy ${last.trainCrossEntropy.toFixed(3)}, ` +
      `dev cross-entropy ${last.valCrossEntropy?.toFixed(3)}, ${last.captionsPerSecond.toFixed(0)} captions/s`,
    ...(greedy.sceneAccuracy !== undefined
      ? [
          `  ${split} scenes: ${(100 * greedy.sceneAccuracy).toFixed(1)}% captioned exactly right, greedy ` +
            (opts.quick
              ? "(the quick size: 400 scenes, too few to learn them; no choice in training saw these scenes)"
              : `(built for ≥ ${100 * TARGET_ACCURACY}%; no choice in training saw these scenes)`),
        ]
      : []),
    ...Object.entries(summary.metrics).map(
      ([k, m]) =>
        `  ${split} beam ${k}: BLEU-4 ${m.bleu4.toFixed(1)}, CIDEr-D ${m.cider.toFixed(3)}, ROUGE-L ${m.rougeL.toFixed(1)}` +
        (m.attention
          ? `; attention on the named object: pointing ${(100 * m.attention.pointing).toFixed(1)}%, mass in box ${m.attention.massInBox.toFixed(3)} (uniform ${m.attention.uniformMass.toFixed(3)})`
          : ""),
    ),
    `  samples (${split}, greedy):`,
    ...summary.samples.map(
      (s) =>
        `    ${s.image}: ${s.caption}` +
        (s.truth ? `   [${s.correct ? "right" : "wrong"}; objects: ${s.truth.join(", ")}]` : ""),
    ),
    `  checkpoint:  ${checkpoint}   (caption any image: bin/attend-tell caption IMAGE --checkpoint ${checkpoint})`,
    `  report:      ${summary.report}`,
    `  time:        ${summary.seconds.toFixed(0)} s in all (${stages}); summary: ${path.join(opts.out, "summary.json")}`,
  ].join("\n");
}
