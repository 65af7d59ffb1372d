/**
 * The main job (`npm start`), stage by stage, on the synthetic scenes by default or on Flickr8k:
 *   data → frozen ResNet-50 features (cached) → vocabulary (train split) → training with a checkpoint per
 *   epoch → dev evaluation (greedy and beam 3) → report.html and a summary. On the synthetic scenes training stops as soon as the greedy captions of the dev scenes
 *   name exactly their objects (lib/captioning/synthetic-eval.ts); on Flickr8k it runs the given number of epochs.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { initBackend, describeBackend } from "../engine/backend";
import { DecoderConfig, getDefaultConfig, quickDecoderConfig, regionWidth } from "./decoder";
import { writeJsonAtomic } from "../util/io";
import { EvaluationReport, evaluate } from "./evaluate";
import { writeReport } from "./report";
import { syntheticDir } from "../util/paths";
import { Progress } from "../util/progress";
import { ensureSynthetic, readBoxes } from "../data/synthetic";
import { SceneScore, scoreScenes } from "./synthetic-eval";
import { History, TrainConfig, defaultTrainConfig, lrAfter, train } from "./train";
import { prepareCaptionData } from "../encoder/feature-dataset";
import { FEATURE_MAP, FEATURE_MAPS, FeatureMap, decoderFeatureMap, decoderFeatures } from "../encoder/encoder";
import { defaultEngine } from "../engine/backend";

export interface PipelineOptions {
  data: "synthetic" | "flickr8k";
  /** Defaults to data/synthetic (generated if absent) for synthetic data. */
  dataDir?: string;
  out: string;
  batchSize: number;
  /** Epochs on Flickr8k; the most epochs on the synthetic scenes (they stop once the captions are right). */
  epochs?: number;
  /** CI size: fewer synthetic images, smaller decoder. */
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
  synthetic: { map: "conv4-pooled", regionLayer: true, regionDim: 512 },
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
  /** Synthetic scenes: dev-split caption correctness after each epoch. */
  sceneScores?: Omit<SceneScore, "samples">[];
  samples: { image: string; caption: string; correct?: boolean; truth?: string[] }[];
  checkpoint: string;
  /** Dev metrics per beam size (lib/captioning/evaluate.ts). */
  metrics: EvaluationReport["beam"];
  report: string;
  seconds: number;
}

const log = (s: string) => console.error(`[attend-tell] ${s}`);

/** Dev-split scenes whose captions must all be right for the synthetic run to stop early. */
const TARGET_ACCURACY = 0.95;

/** The data folder: `opts.dataDir`, or the synthetic scenes (generated on first use). */
async function pipelineData(opts: PipelineOptions): Promise<string> {
  if (opts.dataDir) return opts.dataDir;
  const dataDir = syntheticDir();
  const n = opts.quick ? 400 : 2000;
  const bar = new Progress(n, "synthetic scenes", "img");
  if (await ensureSynthetic(dataDir, { n }, () => bar.tick())) log(`generated ${n} synthetic scenes in ${dataDir}`);
  else log(`using the synthetic scenes in ${dataDir}`);
  return dataDir;
}

/** The training configuration of the main job: the quick or the seed's decoder, the schedule per data set. */
export function pipelineConfig(
  opts: Pick<PipelineOptions, "data" | "quick" | "epochs" | "batchSize" | "map" | "regionLayer" | "regionDim">,
  vocabSize: number,
) {
  const synthetic = opts.data === "synthetic";
  const inputs = mainJobInputs(opts);
  const decoder = {
    ...(opts.quick ? quickDecoderConfig(vocabSize) : getDefaultConfig(vocabSize)),
    ...decoderFeatures(inputs.map),
    ...(inputs.regionLayer ? { regionLayer: true, regionDim: inputs.regionDim } : {}),
  };
  return {
    ...defaultTrainConfig(decoder),
    epochs: opts.epochs ?? (synthetic ? 20 : 10),
    batchSize: opts.batchSize,
    lr: synthetic ? 1e-3 : 3e-4,
    lrSchedule: synthetic ? ("cosine" as const) : undefined,
    printEvery: synthetic ? 50 : 100,
  };
}

export async function runPipeline(opts: PipelineOptions): Promise<PipelineSummary> {
  const t0 = Date.now();
  const backend = await initBackend();
  const synthetic = opts.data === "synthetic";
  const dataDir = await pipelineData(opts);
  const data = await prepareCaptionData(dataDir, {
    map: mainJobInputs(opts).map,
    skipMissing: opts.skipMissing,
    skipBad: opts.skipBad,
  });
  log(`vocabulary: ${data.vocab.size} ids from the train split; features cached in ${data.featuresDir}`);
  fs.mkdirSync(opts.out, { recursive: true });
  data.vocab.save(path.join(opts.out, "vocab.json"));
  if (data.skipped.length) writeJsonAtomic(path.join(opts.out, "skipped-images.json"), data.skipped);

  const config = pipelineConfig(opts, data.vocab.size);
  const boxes = synthetic ? readBoxes(dataDir) : undefined;
  const devImages = [...data.val.dataset.images];
  const sceneScores: SceneScore[] = [];
  const checkpoint = path.join(opts.out, "checkpoint");
  const { decoder: model, history } = await train({
    train: data.train,
    val: data.val,
    vocab: data.vocab,
    config,
    out: checkpoint,
    resume: opts.resume,
    log: (l) => console.error(l),
    onEpoch: async ({ epoch, decoder: d }) => {
      if (!boxes) return;
      const s = await scoreScenes(d, data.vocab, data.cache, devImages, boxes);
      sceneScores.push(s);
      log(
        `epoch ${epoch + 1}: dev scenes captioned exactly right ${(100 * s.accuracy).toFixed(1)}% (objects named: recall ${(100 * s.recall).toFixed(1)}%, precision ${(100 * s.precision).toFixed(1)}%)`,
      );
      return s.accuracy >= TARGET_ACCURACY;
    },
  });
  // Evaluation on dev (greedy and beam 3) and the report.
  const { report, captions } = await evaluate({
    decoder: model,
    vocab: data.vocab,
    dataDir,
    split: "dev",
    featuresDir: data.featuresDir,
    beams: [1, 3],
    outDir: opts.out,
    skipMissing: opts.skipMissing,
    skipBad: opts.skipBad,
  });
  // Samples: the scene scorer's (with correctness) on synthetic data, else the evaluation's greedy captions.
  const samples: PipelineSummary["samples"] = sceneScores.length
    ? sceneScores[sceneScores.length - 1].samples.slice(0, 6)
    : captions["1"].slice(0, 6).map((c) => ({ image: c.image, caption: c.caption }));
  writeJsonAtomic(path.join(opts.out, "metrics-dev.json"), report);
  const reportFile = await writeReport(opts.out, { title: `attend-tell — ${opts.data}` });
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
    samples,
    checkpoint,
    metrics: report.beam,
    report: reportFile,
    seconds: (Date.now() - t0) / 1000,
  };
  writeJsonAtomic(path.join(opts.out, "summary.json"), summary);
  console.log(summaryText(summary, opts, sceneScores[sceneScores.length - 1]));
  return summary;
}

/** What a trained decoder reads: "conv4-pooled features (7 × 7 × 1024), a region layer 1024 → 512" and the like. */
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

function decoderReads(config: DecoderConfig): string {
  const map = decoderFeatureMap(config);
  const { grid, dim } = FEATURE_MAPS[map];
  const layer = config.regionLayer ? `a region layer ${dim} → ${regionWidth(config)}` : "no region layer";
  return `${map} features (${grid} × ${grid} × ${dim}), ${layer}`;
}

/** What `npm start` prints at the end. */
function summaryText(summary: PipelineSummary, opts: PipelineOptions, score: SceneScore | undefined): string {
  const last = summary.history[summary.history.length - 1];
  const { checkpoint } = summary;
  return [
    `attend-tell main job — ${opts.data} (${summary.dataDir})`,
    `  backend:     ${summary.backend}; training step on ${summary.engine === "onnx" ? "ONNX Runtime (CPU)" : "tfjs"}`,
    `  data:        ${summary.trainImages} train images, ${summary.trainCaptions} captions; vocabulary ${summary.vocabSize} ids`,
    `  decoder:     reads ${summary.decoder}`,
    `  training:    ${summary.epochs} epochs; last: train cross-entropy ${last.trainCrossEntropy.toFixed(3)}, ` +
      `dev cross-entropy ${last.valCrossEntropy?.toFixed(3)}, ${last.captionsPerSecond.toFixed(0)} captions/s`,
    ...(score
      ? [
          `  dev scenes:  ${(100 * score.accuracy).toFixed(1)}% captioned exactly right (the target is ${100 * TARGET_ACCURACY}%)`,
        ]
      : []),
    ...Object.entries(summary.metrics).map(
      ([k, m]) =>
        `  dev beam ${k}:  BLEU-4 ${m.bleu4.toFixed(1)}, CIDEr-D ${m.cider.toFixed(3)}, ROUGE-L ${m.rougeL.toFixed(1)}` +
        (m.attention
          ? `; attention on the named object: pointing ${(100 * m.attention.pointing).toFixed(1)}%, mass in box ${m.attention.massInBox.toFixed(3)} (uniform ${m.attention.uniformMass.toFixed(3)})`
          : ""),
    ),
    `  samples (dev, greedy):`,
    ...summary.samples.map(
      (s) =>
        `    ${s.image}: ${s.caption}` +
        (s.truth ? `   [${s.correct ? "right" : "wrong"}; objects: ${s.truth.join(", ")}]` : ""),
    ),
    `  checkpoint:  ${checkpoint}   (caption any image: bin/attend-tell caption IMAGE --checkpoint ${checkpoint})`,
    `  report:      ${summary.report}`,
    `  summary:     ${path.join(opts.out, "summary.json")}; ${summary.seconds.toFixed(0)} s in all`,
  ].join("\n");
}
