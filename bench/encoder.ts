/**
 * ResNet-50 encoder throughput on this machine: images/s at batch 1 and 8 for the tfjs EncoderCNN (on the chosen
 * backend) and for the same network on ONNX Runtime (1 and all threads), then end to end through the feature
 * cache (decode + encode + float16 + append) per runtime and worker count, and the time that implies for all
 * 7,091 shared Flickr8k photos (the real figure: `attend-tell features … --split all`).
 *   npx tsx bench/encoder.ts [images=48]
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { describeBackend, initBackend } from "../lib/engine";
import { EncoderCNN } from "../lib/encoder";
import { extractFeatures } from "../lib/encoder";
import { OnnxEncoder, onnxAvailable } from "../lib/encoder";
import { imageFiles } from "../lib/data";
import { flickr8kDir } from "../lib/util";
import { ensureScenes } from "../lib/data";

async function main() {
  const n = Number(process.argv[2] ?? 48);
  const backend = await initBackend({ quiet: true });
  console.log(`backend: ${describeBackend(backend)}; ${os.cpus().length} cores`);
  const dataDir = flickr8kDir() ?? (await ensureScenes()).dataDir;
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
  if (onnxAvailable()) {
    for (const threads of [1, os.cpus().length]) {
      const onnx = await OnnxEncoder.load({ threads });
      for (const batch of [1, 8]) {
        const x = await EncoderCNN.loadBatch(files.slice(0, batch));
        const px = (await x.data()) as Float32Array;
        await onnx.encode(px, batch);
        const reps = Math.max(1, Math.floor(16 / batch));
        const t0 = performance.now();
        for (let r = 0; r < reps; r++) await onnx.encode(px, batch);
        const s = (performance.now() - t0) / 1000;
        console.log(
          `encode only, ONNX Runtime, ${threads} thread${threads > 1 ? "s" : ""}, batch ${batch}: ${((reps * batch) / s).toFixed(2)} images/s`,
        );
        tf.dispose(x);
      }
    }
  } else console.log("ONNX Runtime: onnxruntime-node not installed");
  const runs: ["onnx" | "tfjs", number][] = [
    ["tfjs", 1],
    ["tfjs", os.cpus().length],
  ];
  if (onnxAvailable()) runs.push(["onnx", 1]);
  for (const [runtime, workers] of runs) {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "attend-tell-bench-cache-"));
    const r = await extractFeatures({ files, out, runtime, workers, batchSize: 8, quiet: true });
    fs.rmSync(out, { recursive: true, force: true });
    console.log(
      `feature cache, ${runtime}, ${workers} worker${workers > 1 ? "s" : ""}: ${r.imagesPerSecond.toFixed(2)} images/s over ${n} images ` +
        `(incl. model load) → all 7,091 Flickr8k photos ≈ ${(7091 / r.imagesPerSecond / 60).toFixed(1)} min`,
    );
  }
}
main();
