/**
 * The dev evaluation's caption generation with a trained model, per engine: beam search over the 1,000 Flickr8k
 * dev images with the shipped captioner (models/captioner-flickr8k) on tfjs (the active backend) and on ONNX
 * Runtime (lib/captioning/onnx-decode.ts, what `evaluate` runs on CPUs), the seconds each takes, and how many
 * captions the two give identically. Needs Flickr8k (FLICKR8K_DIR or data/flickr8k); the
 * dev features are computed into the feature cache first if missing (not timed).
 *   npx tsx bench/evaluate.ts [beam=3] [images=1000] [engines=tfjs,onnx] [features dir=the default cache]
 */
import * as path from "node:path";
import { initBackend, describeBackend, TrainEngine } from "../lib/engine";
import { captionImages, loadCheckpoint } from "../lib/captioning";
import { cachedSplit, defaultFeaturesDir } from "../lib/encoder";
import { flickr8kDir, projectRoot } from "../lib/util";

async function main() {
  const backend = await initBackend({ quiet: true });
  const k = Number(process.argv[2] ?? 3);
  const limit = Number(process.argv[3] ?? 1000);
  const engines = (process.argv[4] ?? "tfjs,onnx").split(",") as TrainEngine[];
  const dataDir = flickr8kDir();
  if (!dataDir) {
    console.log("bench/evaluate.ts needs Flickr8k (FLICKR8K_DIR or data/flickr8k)");
    return;
  }
  const ck = await loadCheckpoint(path.join(projectRoot(), "models", "captioner-flickr8k"));
  const featuresDir = process.argv[5] ?? defaultFeaturesDir(dataDir);
  const { images, cache } = await cachedSplit({ dataDir, split: "dev", vocab: ck.vocab, featuresDir, limit });
  console.log(`backend: ${describeBackend(backend)}; ${images.length} dev images, beam ${k}`);
  const captions: Record<string, string[]> = {};
  for (const engine of engines) {
    const t0 = performance.now();
    const gen = await captionImages(ck.decoder, cache, images, k, { engine });
    const sec = (performance.now() - t0) / 1000;
    captions[engine] = gen.map((g) => ck.vocab.decode(g.ids).join(" "));
    console.log(`${engine}: ${sec.toFixed(1)} s (${(images.length / sec).toFixed(1)} images/s)`);
  }
  if (captions.tfjs && captions.onnx) {
    const same = captions.tfjs.filter((c, i) => c === captions.onnx[i]).length;
    console.log(`identical captions: ${same} of ${images.length}`);
    captions.tfjs.forEach((c, i) => {
      if (c !== captions.onnx[i]) console.log(`  ${images[i]}: tfjs "${c}" / onnx "${captions.onnx[i]}"`);
    });
  }
}
main();
