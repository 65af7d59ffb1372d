/**
 * ResNet-50 encoder throughput on this machine: images/s at batch 1 and 8 in one process, then with one and
 * two worker processes through the feature cache (decode + encode + float16 + append), and the time that
 * implies for all 7,091 shared Flickr8k photos (the real figure: `attend-tell features … --split all`).
 *   npx tsx bench/encoder.ts [images=48]
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { describeBackend, initBackend } from "../lib/backend";
import { EncoderCNN } from "../lib/encoder";
import { extractFeatures } from "../lib/features";
import { imageFiles } from "../lib/captions";
import { flickr8kDir, syntheticDir } from "../lib/paths";
import { ensureSynthetic } from "../lib/synthetic";

async function main() {
  const n = Number(process.argv[2] ?? 48);
  const backend = await initBackend({ quiet: true });
  console.log(`backend: ${describeBackend(backend)}; ${os.cpus().length} cores`);
  let dataDir = flickr8kDir();
  if (!dataDir) await ensureSynthetic((dataDir = syntheticDir()));
  const files = imageFiles(dataDir, "dev").files.slice(0, n);
  const encoder = await EncoderCNN.load();
  for (const batch of [1, 8]) {
    const x = await EncoderCNN.loadBatch(files.slice(0, batch));
    encoder.encode(x).dispose(); // warm-up
    const reps = Math.max(1, Math.floor(16 / batch));
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) await encoder.encode(x).data();
    const s = (performance.now() - t0) / 1000;
    console.log(`encode only, batch ${batch}: ${((reps * batch) / s).toFixed(2)} images/s (1 process)`);
    tf.dispose(x);
  }
  encoder.dispose();
  for (const workers of [1, 2]) {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "attend-tell-bench-cache-"));
    const r = await extractFeatures({ files, out, workers, batchSize: 8, quiet: true });
    fs.rmSync(out, { recursive: true, force: true });
    console.log(
      `feature cache, ${workers} worker${workers > 1 ? "s" : ""}: ${r.imagesPerSecond.toFixed(2)} images/s over ${n} images ` +
        `(incl. model load) → all 7,091 Flickr8k photos ≈ ${(7091 / r.imagesPerSecond / 60).toFixed(1)} min`,
    );
  }
}
main();
