/**
 * Caption generation speed on the active backend (the work of `evaluate`): greedy decoding batched over 64
 * images, and beam search one image at a time and batched over 32 images (beamSearchBatch, as `evaluate` runs it),
 * with the seed's dimensions
 * (vocabulary 3,000) and random weights and features — so every caption runs the full 20 steps (a trained model
 * stops at <EOS>, ~12 words on Flickr8k: real runs are faster by about that ratio).
 *   npx tsx bench/generate.ts [images for greedy=128] [images for beam=8] [beam widths=3] [beam batch=32]
 */
import * as tf from "@tensorflow/tfjs";
import { describeBackend, initBackend } from "../lib/engine";
import { DecoderRNN, getDefaultConfig } from "../lib/captioning";
import { beamSearch, beamSearchBatch, greedy } from "../lib/captioning";

async function main() {
  const backend = await initBackend({ quiet: true });
  console.log(`backend: ${describeBackend(backend)}`);
  const nGreedy = Number(process.argv[2] ?? 128);
  const nBeam = Number(process.argv[3] ?? 8);
  const widths = (process.argv[4] ?? "3").split(",").map(Number);
  const beamBatch = Number(process.argv[5] ?? 32);
  const decoder = new DecoderRNN(getDefaultConfig(3000));
  // enough images for the greedy batch (64) and the beam batch (any size: a GPU run uses 256)
  const features = tf.randomUniform([Math.max(64, beamBatch), 49, 2048], 0, 2, "float32", 1) as tf.Tensor3D;
  await greedy(decoder, features.slice([0, 0, 0], [2, 49, 2048]) as tf.Tensor3D); // warm-up (kernel compilation)
  let t0 = Date.now();
  let words = 0;
  const greedyBatch = features.slice([0, 0, 0], [64, 49, 2048]) as tf.Tensor3D;
  for (let i = 0; i < nGreedy; i += 64)
    words += (await greedy(decoder, greedyBatch)).reduce((a, g) => a + g.ids.length, 0);
  greedyBatch.dispose();
  let s = (Date.now() - t0) / 1000;
  const nG = Math.ceil(nGreedy / 64) * 64;
  console.log(
    `greedy, batch 64: ${(nG / s).toFixed(1)} captions/s (${(words / nG).toFixed(1)} words each; 1,000 dev images ≈ ${((1000 / nG) * s).toFixed(0)} s)`,
  );
  for (const k of widths) {
    await beamSearch(decoder, features.slice([0, 0, 0], [1, 49, 2048]), k, 3); // warm-up
    t0 = Date.now();
    words = 0;
    for (let i = 0; i < nBeam; i++) {
      const f = features.slice([i % 64, 0, 0], [1, 49, 2048]);
      words += (await beamSearch(decoder, f, k)).ids.length;
      f.dispose();
    }
    s = (Date.now() - t0) / 1000;
    console.log(
      `beam ${k}, one image at a time: ${(nBeam / s).toFixed(2)} captions/s (${(words / nBeam).toFixed(1)} words each; 1,000 dev images ≈ ${((1000 / nBeam) * s).toFixed(0)} s)`,
    );
    const batch = features.slice([0, 0, 0], [beamBatch, 49, 2048]) as tf.Tensor3D;
    await beamSearchBatch(decoder, batch, k, 2); // warm-up at this shape
    t0 = Date.now();
    words = (await beamSearchBatch(decoder, batch, k)).reduce((a, g) => a + g.ids.length, 0);
    s = (Date.now() - t0) / 1000;
    console.log(
      `beam ${k}, batch ${beamBatch}: ${(beamBatch / s).toFixed(2)} captions/s (${(words / beamBatch).toFixed(1)} words each; 1,000 dev images ≈ ${((1000 / beamBatch) * s).toFixed(0)} s)`,
    );
    batch.dispose();
  }
}
main();
