/**
 * Decoder training throughput (captions/s) with the seed's dimensions on Flickr8k-shaped data: 49×2048
 * features, vocabulary 3,000, and Flickr8k's real caption lengths as the trainer batches them (length-bucketed
 * batches of the train split; a fixed T = 14 where Flickr8k is absent). Random values: speed does not depend
 * on them. Prints s/step, captions/s and the implied Flickr8k epoch (30,000 captions) per batch size and per
 * engine — ONNX Runtime (lib/captioning/onnx-train.ts, all cores) with the weights as arrays and TypedAdam
 * (`onnx`, what `train` runs) or with tfjs's Adam on the variables (`onnx-tfjs-adam`, the path before
 * TypedAdam), and tfjs on the active backend with 1…N replicas (lib/captioning/data-parallel.ts) — and the
 * process's peak RSS. A step is the whole update: gradients, clipping, Adam.
 * `dims` quick: the chapters' and CI's small decoder (quickDecoderConfig) instead of the seed's.
 *   npx tsx bench/train.ts [batch sizes=32,64] [engines=onnx-tfjs-adam,onnx,tfjs1,tfjs2] [steps=4] [dims=seed|quick]
 */
import * as tf from "@tensorflow/tfjs";
import { describeBackend, initBackend } from "../lib/engine";
import { DataParallel } from "../lib/captioning";
import { OnnxTrainer, OnnxTraining } from "../lib/captioning";
import { loadOrt } from "../lib/engine";
import { clipAndApply } from "../lib/engine";
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
  const engines = (process.argv[3] ?? "onnx-tfjs-adam,onnx,tfjs1,tfjs2").split(",");
  const steps = Number(process.argv[4] ?? 4);
  const dims = process.argv[5] ?? "seed";
  const decoder = new DecoderRNN(dims === "quick" ? quickDecoderConfig(3000) : getDefaultConfig(3000));
  console.log(`decoder: ${dims} dimensions`);
  const opt = tf.train.adam(3e-4);
  let peak = 0;
  for (const B of sizes) {
    const lengths = flickrLengths(B);
    const meanT = lengths.reduce((a, b) => a + b, 0) / lengths.length;
    // `steps` batches whose lengths are spread over the epoch's distribution (sorted quantiles)
    const sorted = [...lengths].sort((a, b) => a - b);
    const Ts = Array.from({ length: steps }, (_, k) => sorted[Math.floor(((k + 0.5) / steps) * sorted.length)]);
    const meanTs = Ts.reduce((a, b) => a + b, 0) / Ts.length;
    for (const engine of engines) {
      const onOnnx = engine.startsWith("onnx");
      const replicas = onOnnx ? 1 : Number(engine.replace("tfjs", "") || 1);
      if (onOnnx && !loadOrt()) {
        console.log("onnx: onnxruntime-node is not installed");
        continue;
      }
      const onnx = onOnnx ? new OnnxTrainer(decoder.config, 49) : undefined;
      const typed = engine === "onnx" ? await OnnxTraining.start(decoder, onnx!, 3e-4) : undefined;
      const dp = await DataParallel.start(decoder, replicas);
      // Made once: random numbers come from a JS generator, which would dominate a GPU step at large B.
      const features = tf.randomUniform([B, 49, 2048], 0, 2) as tf.Tensor3D;
      const run = async (T: number) => {
        const captions = tf.randomUniform([B, T], 3, 3000, "int32") as tf.Tensor2D;
        if (typed) {
          const r = await typed.step(features, captions, { seed: 1, lambda: 1 });
          typed.adam.update(r.grads, 5);
          typed.updated();
          captions.dispose();
          peak = Math.max(peak, process.memoryUsage().rss);
          return;
        }
        const r = onnx
          ? await onnx.gradients(decoder, features, captions, { seed: 1, lambda: 1 })
          : await dp.gradients(features, captions, { seed: 1, lambda: 1 });
        clipAndApply(opt, r.grads, 5);
        dp.weightsChanged();
        await r.loss.data();
        tf.dispose([captions, r.loss, r.crossEntropy, ...Object.values(r.grads)]);
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
        `batch ${B}, ${onOnnx ? `ONNX Runtime (${typed ? "TypedAdam" : "tfjs Adam"})` : `tfjs ${tf.getBackend()} × ${replicas} replica${replicas > 1 ? "s" : ""}`}: ${sec.toFixed(2)} s/step at mean T ${meanTs.toFixed(1)}, ` +
          `${(B / sec).toFixed(1)} captions/s → Flickr8k epoch (30,000 captions, mean T ${meanT.toFixed(1)}) ≈ ${(epochSec / 60).toFixed(1)} min`,
      );
      await dp.close();
      await onnx?.dispose();
      features.dispose();
    }
  }
  console.log(
    `peak RSS of the main process: ${(peak / 2 ** 20).toFixed(0)} MiB (each worker holds its own share of a batch and a copy of the weights)`,
  );
}
main();
