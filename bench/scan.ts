/**
 * SCAN speed on Flickr8k shapes (49 regions × 2048, vocabulary 3,000, T = 13): the training step (pairs/s and
 * the implied 30,000-caption epoch) per engine, and the time to score the dev protocol's 1,000 images ×
 * 5,000 captions (random unit vectors; the speed does not depend on the values) with the scoring that
 * `evaluate-matching` uses.
 *   npx tsx bench/scan.ts [joint dims=1024] [engines=onnx] [steps=3] [score images=1000] [directions=t2i]
 * An engine "onnx:16" takes the warm-up epoch's step (the 16 largest violations of each image and caption);
 * score images 0 skips the scoring.
 */
import * as tf from "@tensorflow/tfjs";
import { describeBackend, initBackend } from "../lib/engine";
import { loadOrt } from "../lib/engine";
import { ScanModel, contrastiveLoss, defaultScanConfig } from "../lib/matching";
import { OnnxScan } from "../lib/matching";
import { scoreMatrix } from "../lib/matching";
import { clipAndApply } from "../lib/engine";

const R = 49,
  E = 2048,
  T = 13,
  B = 128;

/** n values in rows of `d` of unit length. */
function randomUnit(n: number, d: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) out[i] = (x = (x * 16807) % 2147483647) / 2147483647 - 0.5;
  for (let r = 0; r < n; r += d) {
    let s = 0;
    for (let k = r; k < r + d; k++) s += out[k] * out[k];
    for (let k = r; k < r + d; k++) out[k] /= Math.sqrt(s);
  }
  return out;
}

async function main() {
  const backend = await initBackend({ quiet: true });
  console.log(`backend: ${describeBackend(backend)}; ONNX Runtime: ${loadOrt() ? "yes" : "no"}`);
  const dims = (process.argv[2] ?? "1024").split(",").map(Number);
  const engines = (process.argv[3] ?? "onnx").split(",");
  const steps = Number(process.argv[4] ?? 3);
  const nImages = Number(process.argv[5] ?? 1000);
  const directions = (process.argv[6] ?? "t2i").split(",") as ("t2i" | "i2t")[];
  for (const d of dims)
    for (const direction of directions) {
      const scan = { ...defaultScanConfig(3000), jointDim: d, direction };
      const model = new ScanModel(scan);
      const features = Float32Array.from({ length: B * R * E }, (_, i) => Math.max(0, Math.sin(i * 0.61)) * 2);
      const ids = Int32Array.from({ length: B * T }, (_, i) =>
        i % T < 8 + ((i / T) % 6) ? 4 + ((i * 7919) % 2990) : 0,
      );
      const lengths = Array.from({ length: B }, (_, b) => 8 + (b % 6));
      const opt = tf.train.adam(2e-4);
      for (const spec of engines) {
        const [engine, negatives] = [spec.split(":")[0], Number(spec.split(":")[1] ?? 1)];
        const onnx = engine === "onnx" ? new OnnxScan(scan, R) : undefined;
        const batch = { features: tf.tensor3d(features, [B, R, E]), captions: tf.tensor2d(ids, [B, T], "int32") };
        let total = 0;
        for (let s = 0; s <= steps; s++) {
          const t0 = Date.now();
          const grads = onnx
            ? (await onnx.gradients(model, features, ids, lengths, T, { negatives })).grads
            : tf.variableGrads(
                () =>
                  contrastiveLoss(
                    model.similarity(
                      model.encodeImages(batch.features),
                      model.encodeCaptions(batch.captions, lengths),
                      lengths,
                    ),
                    scan.margin,
                    negatives,
                  ),
                model.variables,
              ).grads;
          clipAndApply(opt, grads, 2);
          await model.imgB.data();
          tf.dispose(Object.values(grads));
          if (s > 0) total += (Date.now() - t0) / 1000; // the first step compiles
        }
        const perStep = total / steps;
        console.log(
          `train d=${d} ${direction} ${spec}: ${perStep.toFixed(2)} s/step of ${B} pairs = ${(B / perStep).toFixed(0)} pairs/s; Flickr8k epoch (30,000 pairs) ≈ ${(((30000 / B) * perStep) / 60).toFixed(1)} min`,
        );
        tf.dispose([batch.features, batch.captions]);
        await onnx?.dispose();
      }
      if (nImages === 0) {
        model.dispose();
        continue;
      }
      const nCaptions = 5 * nImages;
      const images = randomUnit(nImages * R * d, d, 1);
      const captions = randomUnit(nCaptions * T * d, d, 2);
      const capLengths = Array.from({ length: nCaptions }, (_, c) => 8 + (c % 6));
      const t0 = Date.now();
      const scores = await scoreMatrix(scan, images, nImages, captions, capLengths, T);
      const seconds = (Date.now() - t0) / 1000;
      console.log(
        `score d=${d} ${direction}: ${nImages} × ${nCaptions} pairs in ${seconds.toFixed(1)} s (${((nImages * nCaptions) / seconds / 1e3).toFixed(0)}k pairs/s; ${scores.length} scores)`,
      );
      model.dispose();
    }
  console.log(`peak RSS ${(process.resourceUsage().maxRSS / 1024 / 1024).toFixed(2)} GB`);
}
main();
