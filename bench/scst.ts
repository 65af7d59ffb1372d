/**
 * Self-critical training's step with the shipped captioner on Flickr8k train images, on each step engine
 * (lib/captioning/step-engine.ts): tfjs (sampling, greedy baseline and gradient on the active backend) and ONNX
 * Runtime (what `train-scst` runs on CPUs), alternating, no weight update (every step sees the same weights and
 * seed, so the two paths draw the same captions up to float rounding: a draw that lands within rounding of a
 * word's boundary in the cumulative softmax goes the other way — 2 of 160 captions in one batch here; the mean
 * sample rewards are printed side by side). Needs Flickr8k and its train features.
 *   npx tsx bench/scst.ts [steps=4] [images per step=32] [baseline=greedy|mean] [rounds=2]
 */
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { TypedAdam, initBackend, describeBackend } from "../lib/engine";
import {
  StepEngine,
  defaultScstConfig,
  imageBatches,
  loadCheckpoint,
  referenceScorer,
  scstStep,
  startStepEngine,
} from "../lib/captioning";
import { FeatureCaptionDataset, FeatureCache, defaultFeaturesDir, encoderIdentity } from "../lib/encoder";
import { FlickrDataset } from "../lib/data";
import { flickr8kDir, projectRoot } from "../lib/util";

async function main() {
  const backend = await initBackend({ quiet: true });
  const steps = Number(process.argv[2] ?? 4);
  const batchSize = Number(process.argv[3] ?? 32);
  const baseline = (process.argv[4] ?? "greedy") as "greedy" | "mean";
  const rounds = Number(process.argv[5] ?? 2);
  const dataDir = flickr8kDir();
  if (!dataDir) {
    console.log("bench/scst.ts needs Flickr8k (FLICKR8K_DIR or data/flickr8k)");
    return;
  }
  const ck = await loadCheckpoint(path.join(projectRoot(), "models", "captioner-flickr8k"));
  const cache = FeatureCache.open(defaultFeaturesDir(dataDir), encoderIdentity());
  const dataset = new FlickrDataset({ dataDir, split: "train", vocab: ck.vocab, onMissing: "skip" });
  const train = new FeatureCaptionDataset(dataset, cache);
  const { cider, references } = referenceScorer(train);
  const config = { ...defaultScstConfig(), batchSize, baseline };
  const start = (engine: "tfjs" | "onnx") =>
    startStepEngine(ck.decoder, { engine, regions: cache.regions, lr: 0, decoding: true });
  const engines: [string, StepEngine][] = [
    ["tfjs engine", await start("tfjs")],
    ["ONNX Runtime engine", await start("onnx")],
  ];
  console.log(
    `backend: ${describeBackend(backend)}; ${steps} steps of ${batchSize} images × ${config.samples} samples, ` +
      `${baseline} baseline, shipped captioner`,
  );
  const rewards: Record<string, number[]> = {};
  for (let round = 0; round < rounds; round++)
    for (const [label, engine] of engines) {
      let step = 0;
      const t0 = performance.now();
      const seen: number[] = [];
      for await (const b of imageBatches(train, batchSize, 1, 0)) {
        if (step >= steps) {
          b.features.dispose();
          break;
        }
        const r = await scstStep(ck.decoder, b, { references, cider, vocab: ck.vocab, config, seed: step, engine });
        seen.push(r.sampleReward);
        if (!(engine.optimizer instanceof TypedAdam)) tf.dispose(Object.values(r.grads as tf.NamedTensorMap));
        b.features.dispose();
        step++;
      }
      const sec = (performance.now() - t0) / 1000;
      rewards[label] = seen;
      console.log(
        `${label}: ${(sec / steps).toFixed(2)} s/step, ${((steps * batchSize) / sec).toFixed(1)} images/s ` +
          `(${((steps * batchSize * config.samples) / sec).toFixed(1)} sampled captions/s); ` +
          `mean sample CIDEr-D ${(seen.reduce((a, x) => a + x, 0) / seen.length).toFixed(4)}`,
      );
    }
  const [a, b] = Object.values(rewards);
  console.log(
    `mean sample CIDEr-D step by step: ${a.map((x, i) => `${x.toFixed(4)} / ${b[i].toFixed(4)}`).join(", ")}`,
  );
  for (const [, engine] of engines) await engine.dispose();
}
main();
