/**
 * Decoder training throughput (captions/s) with the seed's dimensions on Flickr8k-shaped data: 49×2048
 * features, vocabulary 3,000, and Flickr8k's real caption lengths as the trainer batches them (length-bucketed
 * batches of the train split; a fixed T = 14 where Flickr8k is absent). Random values: speed does not depend
 * on them. Prints s/step, captions/s and the implied Flickr8k epoch (30,000 captions) per batch size and per
 * step engine (lib/captioning/step-engine.ts) — ONNX Runtime (`onnx`, all cores, what `train` runs on CPUs) and
 * tfjs on the active backend (`tfjs`, what it runs on GPUs) — and the process's peak RSS. A step is the whole
 * update: gradients, clipping, Adam. `dims` quick: the chapters' and CI's small decoder (quickDecoderConfig).
 *   npx tsx bench/train.ts [batch sizes=32,64] [engines=onnx,tfjs] [steps=4] [dims=seed|quick]
 */
import * as tf from "@tensorflow/tfjs";
import { describeBackend, initBackend } from "../lib/engine";
import { startStepEngine } from "../lib/captioning";
import { TypedAdam, clipAndApply, loadOrt } from "../lib/engine";
import { trainCaptions } from "../lib/data";
import { DataLoader, paddedLengths } from "../lib/data";
import { DecoderRNN, getDefaultConfig, quickDecoderConfig } from "../lib/captioning";
import { flickr8kDir } from "../lib/util";
import { buildVocabulary } from "../lib/data";

/** Padded lengths T of the trainer's batches over one Flickr8k epoch (bucketed), or [14]. */
function flickrLengths(batchSize: number): number[] {
  const dir = flickr8kDir();
  if (!dir) return [14];
  // Caption lengths as FlickrDataset counts them (<SOS> … <EOS>), without loading images (bundle-friendly: no sharp).
  const captions = trainCaptions(dir);
  const vocab = buildVocabulary(captions, 5);
  const lengths = captions.map((c) => vocab.encode(c).length);
  const loader = new DataLoader(
    { length: lengths.length, getItem: async () => undefined, captionLength: (i) => lengths[i] },
    { batchSize, shuffle: true, seed: 1, bucketByLength: true },
  );
  return paddedLengths(loader.batchIndices(0), (i) => lengths[i]);
}

async function main() {
  const backend = await initBackend({ quiet: true });
  console.log(`backend: ${describeBackend(backend)}`);
  const sizes = (process.argv[2] ?? "32,64").split(",").map(Number);
  const engines = (process.argv[3] ?? "onnx,tfjs").split(",") as ("onnx" | "tfjs")[];
  const steps = Number(process.argv[4] ?? 4);
  const dims = process.argv[5] ?? "seed";
  const decoder = new DecoderRNN(dims === "quick" ? quickDecoderConfig(3000) : getDefaultConfig(3000));
  console.log(`decoder: ${dims} dimensions`);
  let peak = 0;
  for (const B of sizes) {
    const lengths = flickrLengths(B);
    const meanT = lengths.reduce((a, b) => a + b, 0) / lengths.length;
    // `steps` batches whose lengths are spread over the epoch's distribution (sorted quantiles)
    const sorted = [...lengths].sort((a, b) => a - b);
    const Ts = Array.from({ length: steps }, (_, k) => sorted[Math.floor(((k + 0.5) / steps) * sorted.length)]);
    const meanTs = Ts.reduce((a, b) => a + b, 0) / Ts.length;
    for (const name of engines) {
      if (name === "onnx" && !loadOrt()) {
        console.log("onnx: onnxruntime-node is not installed");
        continue;
      }
      const engine = await startStepEngine(decoder, { engine: name, regions: 49, lr: 3e-4 });
      // Made once: random numbers come from a JS generator, which would dominate a GPU step at large B.
      const features = tf.randomUniform([B, 49, 2048], 0, 2) as tf.Tensor3D;
      const run = async (T: number) => {
        const captions = tf.randomUniform([B, T], 3, 3000, "int32") as tf.Tensor2D;
        const r = await engine.step(features, captions, { seed: 1, lambda: 1, dropout: true });
        const opt = engine.optimizer;
        if (opt instanceof TypedAdam) opt.update(r.grads as Record<string, Float32Array>, 5);
        else {
          clipAndApply(opt, r.grads as tf.NamedTensorMap, 5);
          tf.dispose(Object.values(r.grads as tf.NamedTensorMap));
        }
        engine.updated();
        captions.dispose();
        peak = Math.max(peak, process.memoryUsage().rss);
      };
      // warm-up: every length once (ONNX compiles one graph per shape)
      for (const T of new Set(Ts)) await run(T);
      const t0 = performance.now();
      for (const T of Ts) await run(T);
      const sec = (performance.now() - t0) / 1000 / steps;
      // Time per step scales with T; rescale the sample's mean T to the epoch's.
      const epochSec = (30000 / B) * sec * (meanT / meanTs);
      console.log(
        `batch ${B}, ${engine.description}: ${sec.toFixed(2)} s/step at mean T ${meanTs.toFixed(1)}, ` +
          `${(B / sec).toFixed(1)} captions/s → Flickr8k epoch (30,000 captions, mean T ${meanT.toFixed(1)}) ≈ ${(epochSec / 60).toFixed(1)} min`,
      );
      await engine.dispose();
      features.dispose();
    }
  }
  console.log(`peak RSS: ${(peak / 2 ** 20).toFixed(0)} MiB`);
}
main();
