/**
 * Which backend this machine gets, how fast a matMul runs on it, and whether training's kernels agree with
 * the cpu backend there (the embedding gradient through UnsortedSegmentSum). Bundle-friendly (GPU hosts):
 *   npx tsx bench/backend.ts            ·   bash .gpu-bundle/run.sh backend
 */
import * as tf from "@tensorflow/tfjs";
import { describeBackend, initBackend } from "../lib/engine";
import { registerMissingKernels } from "../lib/engine";

async function embeddingGrad(): Promise<Float32Array> {
  // Small enough for the cpu reference, whose UnsortedSegmentSum loops over every segment.
  const table = tf.tensor2d(
    Array.from({ length: 300 * 32 }, (_, i) => Math.sin(i)),
    [300, 32],
  );
  const ids = tf.tensor2d(
    Array.from({ length: 64 * 16 }, (_, i) => (i * 7919) % 300),
    [64, 16],
    "int32",
  );
  const g = tf.grad((e: tf.Tensor) => tf.gather(e, ids).square().sum())(table);
  const out = (await g.data()) as Float32Array;
  tf.dispose([table, ids, g]);
  return out;
}

async function main() {
  const c = await initBackend();
  console.log(`backend: ${describeBackend(c)}`);
  const gpu = c.kind === "webgpu" || c.kind === "node-gpu";
  for (const n of gpu ? [1024, 4096] : [512, 1024]) {
    const a = tf.randomNormal([n, n]),
      b = tf.randomNormal([n, n]);
    await tf.matMul(a, b).data(); // warm-up: compile shaders / allocate
    const reps = gpu ? 20 : 2;
    const t0 = performance.now();
    let y: tf.Tensor | undefined;
    for (let i = 0; i < reps; i++) {
      y?.dispose();
      y = tf.matMul(a, b);
    }
    await y!.data();
    const s = (performance.now() - t0) / 1000 / reps;
    console.log(`matMul ${n}×${n}: ${(s * 1000).toFixed(2)} ms, ${((2 * n ** 3) / s / 1e12).toFixed(3)} TFLOP/s`);
    tf.dispose([a, b, y!]);
  }
  const here = await embeddingGrad();
  await tf.setBackend("cpu");
  registerMissingKernels("cpu");
  const ref = await embeddingGrad();
  let maxDiff = 0;
  for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(here[i] - ref[i]));
  console.log(
    `embedding gradient (gather → UnsortedSegmentSum) on ${c.kind} vs cpu: max |diff| = ${maxDiff.toExponential(2)}`,
  );
  if (!(maxDiff < 1e-3)) process.exitCode = 1;
}
main();
