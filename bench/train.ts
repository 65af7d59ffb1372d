/**
 * Decoder training throughput (captions/s) with the seed's dimensions on Flickr8k-shaped data: 49×2048
 * features, vocabulary 3,000, caption length 14 tokens (Flickr8k's mean 12.8 + padding with bucketing), and the
 * implied time per Flickr8k epoch (30,000 captions). Random data: speed does not depend on the values.
 *   npx tsx bench/train.ts [batch sizes, default 32,64] [steps=3]
 */
import * as tf from "@tensorflow/tfjs";
import { describeBackend, initBackend } from "../lib/backend";
import { DecoderRNN, captionLoss, getDefaultConfig } from "../lib/decoder";

async function main() {
  const backend = await initBackend({ quiet: true });
  console.log(`backend: ${describeBackend(backend)}`);
  const sizes = (process.argv[2] ?? "32,64").split(",").map(Number);
  const steps = Number(process.argv[3] ?? 3);
  const config = getDefaultConfig(3000);
  const decoder = new DecoderRNN(config);
  const opt = tf.train.adam(3e-4);
  for (const B of sizes) {
    const T = 14;
    const features = tf.randomUniform([B, 49, 2048], 0, 2) as tf.Tensor3D;
    const captions = tf.randomUniform([B, T], 3, 3000, "int32") as tf.Tensor2D;
    const step = () => {
      const l = opt.minimize(() => captionLoss(decoder.forward(features, captions, { training: true }), captions).loss, true, decoder.variables);
      return l!;
    };
    (await step().data()); // warm-up
    const t0 = performance.now();
    for (let s = 0; s < steps; s++) await step().data();
    const sec = (performance.now() - t0) / 1000 / steps;
    const mem = process.memoryUsage().rss / 2 ** 20;
    console.log(`batch ${B}: ${sec.toFixed(2)} s/step, ${(B / sec).toFixed(1)} captions/s → Flickr8k epoch (30,000 captions) ≈ ${(30000 / (B / sec) / 60).toFixed(1)} min; RSS ${mem.toFixed(0)} MiB`);
    tf.dispose([features, captions]);
  }
}
main();
