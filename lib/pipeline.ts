/**
 * The main job (`npm start`), stage by stage, on the synthetic scenes by default or on Flickr8k.
 * Stages so far: data → vocabulary (train split) → FlickrDataset → one pass of the DataLoader.
 * The encoder, training and evaluation stages join here as they land (issues #3–#5).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { initBackend, describeBackend } from "./backend";
import { ensureSynthetic } from "./synthetic";
import { buildVocabulary } from "./vocabulary";
import { DatasetItem, FlickrDataset, trainCaptions } from "./dataset";
import { DataLoader, paddedLengths } from "./dataloader";
import { CaptionBatch, disposeBatch } from "./collate";
import { Progress } from "./progress";
import { writeJsonAtomic } from "./io";
import { syntheticDir } from "./paths";

export interface PipelineOptions {
  data: "synthetic" | "flickr8k";
  /** Defaults to data/synthetic (generated if absent) for synthetic data. */
  dataDir?: string;
  out: string;
  batchSize: number;
  /** CI size: fewer synthetic images. */
  quick: boolean;
  skipMissing: boolean;
}

export interface PipelineSummary {
  backend: string;
  data: string;
  dataDir: string;
  vocabSize: number;
  trainImages: number;
  trainCaptions: number;
  skippedImages: number;
  batches: number;
  meanPaddedLength: { shuffled: number; bucketed: number };
  loadSeconds: number;
  captionsPerSecond: number;
}

const log = (s: string) => console.error(`[attend-tell] ${s}`);

/** Mean T of the padded batches: how many decoder steps a batch costs. */
function meanPaddedLength(batches: number[][], lengthOf: (i: number) => number): number {
  const ts = paddedLengths(batches, lengthOf);
  return ts.reduce((a, b) => a + b, 0) / ts.length;
}

export async function runPipeline(opts: PipelineOptions): Promise<PipelineSummary> {
  const backend = await initBackend();
  let dataDir = opts.dataDir;
  if (!dataDir) {
    dataDir = syntheticDir();
    const n = opts.quick ? 400 : 2000;
    const bar = new Progress(n, "synthetic scenes", "img");
    if (await ensureSynthetic(dataDir, { n }, () => bar.tick())) log(`generated ${n} synthetic scenes in ${dataDir}`);
    else log(`using the synthetic scenes in ${dataDir}`);
  }

  const vocab = buildVocabulary(trainCaptions(dataDir), 5);
  fs.mkdirSync(opts.out, { recursive: true });
  vocab.save(path.join(opts.out, "vocab.json"));
  log(`vocabulary: ${vocab.size} ids from the train split (threshold ${vocab.freqThreshold})`);

  const train = new FlickrDataset({ dataDir, split: "train", vocab, onMissing: opts.skipMissing ? "skip" : "error" });
  if (train.skipped.length) log(`skipped ${train.skipped.length} train images (first: ${train.skipped[0].image} ${train.skipped[0].why})`);
  const loaderOpts = { batchSize: opts.batchSize, shuffle: true, seed: 1 };
  const len = (i: number) => train.captionLength(i);
  const padded = {
    shuffled: meanPaddedLength(new DataLoader(train, loaderOpts).batchIndices(0), len),
    bucketed: meanPaddedLength(new DataLoader(train, { ...loaderOpts, bucketByLength: true }).batchIndices(0), len),
  };
  const loader = new DataLoader<DatasetItem, CaptionBatch>(train, { ...loaderOpts, bucketByLength: true, prefetch: 4 });
  const bar = new Progress(train.length, "loading train batches", "captions");
  for await (const batch of loader.epoch(0)) {
    bar.tick(batch.lengths.length);
    disposeBatch(batch);
  }
  const summary: PipelineSummary = {
    backend: describeBackend(backend),
    data: opts.data,
    dataDir,
    vocabSize: vocab.size,
    trainImages: train.images.length,
    trainCaptions: train.length,
    skippedImages: train.skipped.length,
    batches: loader.length,
    meanPaddedLength: padded,
    loadSeconds: bar.elapsed,
    captionsPerSecond: bar.rate,
  };
  writeJsonAtomic(path.join(opts.out, "summary.json"), summary);
  console.log(
    [
      `attend-tell main job — ${opts.data} (${dataDir})`,
      `  backend:     ${summary.backend}`,
      `  vocabulary:  ${summary.vocabSize} ids (written to ${path.join(opts.out, "vocab.json")})`,
      `  train split: ${summary.trainImages} images, ${summary.trainCaptions} captions` +
        (summary.skippedImages ? `, ${summary.skippedImages} images skipped` : ""),
      `  batches:     ${summary.batches} of ${opts.batchSize}; mean padded length ${padded.shuffled.toFixed(2)} shuffled, ` +
        `${padded.bucketed.toFixed(2)} length-bucketed`,
      `  loading:     ${summary.captionsPerSecond.toFixed(0)} captions/s (images decoded and resized with sharp)`,
      `  tensors left: ${tf.memory().numTensors}`,
      `  summary:     ${path.join(opts.out, "summary.json")}`,
      `Training stages (encoder, decoder) are not in this build yet.`,
    ].join("\n"),
  );
  return summary;
}
