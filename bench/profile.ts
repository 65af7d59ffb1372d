/**
 * Where a training step's time goes, kernel by kernel, on the active backend: tfjs's profiler (`tf.profile`)
 * around one whole tfjs step (gradients, clipping, Adam) after a warm-up step, kernels summed by name, the
 * slowest first, with the input shapes of each name's slowest call. This is how slow ops and gradients are found
 * (the BatchMatMul gradient's transposed matMuls were 97 % of a wasm step; lib/engine/kernels.ts). On WebGPU the kernel
 * times come from GPU timestamp queries where the adapter has them.
 *   npx tsx bench/profile.ts [caption|scan] [batch=64] [top=15] [T=14]
 * caption: the decoder with the seed's dimensions (vocabulary 3,000, 49×2048 features); scan: SCAN t2i, d = 1,024.
 * A custom-gradient op (the fused recurrence of lib/captioning/bptt.ts shows as `forward`) is timed as a whole and its inner
 * kernels again, so kernel times can add up to more than the step.
 */
import * as tf from "@tensorflow/tfjs";
import { describeBackend, initBackend } from "../lib/engine";
import { DecoderRNN, getDefaultConfig } from "../lib/captioning";
import { ScanModel, defaultScanConfig } from "../lib/matching";
import { matchingLoss } from "../lib/matching";
import { startStepEngine } from "../lib/captioning";
import { clipAndApply } from "../lib/engine";

interface Row {
  name: string;
  calls: number;
  ms: number;
  slowest: number;
  shapes: string;
}

/** Kernel times summed by kernel name, slowest name first. */
function kernelTable(kernels: Awaited<ReturnType<typeof tf.profile>>["kernels"]): {
  rows: Row[];
  total: number;
  untimed: number;
} {
  const by = new Map<string, Row>();
  let total = 0,
    untimed = 0;
  for (const k of kernels) {
    const ms = typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : NaN;
    if (!Number.isFinite(ms)) {
      untimed++;
      continue;
    }
    total += ms;
    const r = by.get(k.name) ?? { name: k.name, calls: 0, ms: 0, slowest: -1, shapes: "" };
    r.calls++;
    r.ms += ms;
    if (ms > r.slowest) {
      r.slowest = ms;
      r.shapes = k.inputShapes.map((s: number[]) => `[${s}]`).join(" ");
    }
    by.set(k.name, r);
  }
  return { rows: [...by.values()].sort((a, b) => b.ms - a.ms), total, untimed };
}

async function main() {
  const backend = await initBackend({ quiet: true });
  console.log(`backend: ${describeBackend(backend)}`);
  const what = process.argv[2] ?? "caption";
  const B = Number(process.argv[3] ?? 64);
  const top = Number(process.argv[4] ?? 15);
  const T = Number(process.argv[5] ?? 14);
  const opt = tf.train.adam(3e-4);
  const features = tf.randomUniform([B, 49, 2048], 0, 2) as tf.Tensor3D;
  const captions = tf.randomUniform([B, T], 4, 3000, "int32") as tf.Tensor2D;
  let step: () => Promise<void>;
  if (what === "caption") {
    const decoder = new DecoderRNN(getDefaultConfig(3000));
    const engine = await startStepEngine(decoder, { engine: "tfjs", regions: 49, lr: 3e-4 });
    step = async () => {
      const r = await engine.step(features, captions, { seed: 1, lambda: 1, dropout: true });
      const grads = r.grads as tf.NamedTensorMap;
      clipAndApply(engine.optimizer as tf.Optimizer, grads, 5);
      tf.dispose(Object.values(grads));
    };
  } else if (what === "scan") {
    const model = new ScanModel({ ...defaultScanConfig(3000), jointDim: 1024 });
    const lengths = Array(B).fill(T);
    step = async () => {
      const { value, grads } = tf.variableGrads(
        () => matchingLoss(model, { features, captions, imageNames: [] }, lengths),
        model.variables,
      );
      clipAndApply(opt, grads, 2);
      await value.data();
      tf.dispose([value, ...Object.values(grads)]);
    };
  } else throw new Error(`bench/profile.ts: profile caption or scan, not ${what}`);
  await step(); // warm-up: shader compilation, graph caches
  let t0 = performance.now();
  await step();
  const wall = performance.now() - t0;
  t0 = performance.now();
  const info = await tf.profile(step);
  const profiled = performance.now() - t0;
  const { rows, total, untimed } = kernelTable(info.kernels);
  console.log(
    `${what} training step, batch ${B}, T ${T}: ${wall.toFixed(0)} ms (${(B / (wall / 1000)).toFixed(0)} captions/s); profiled run ${profiled.toFixed(0)} ms, ` +
      `${info.kernels.length} kernel calls, ${total.toFixed(0)} ms of kernel time${untimed ? `, ${untimed} calls untimed` : ""}`,
  );
  console.log(
    "kernel".padEnd(22) + "calls".padStart(7) + "ms".padStart(10) + "share".padStart(8) + "  slowest call's inputs",
  );
  for (const r of rows.slice(0, top)) {
    console.log(
      r.name.padEnd(22) +
        String(r.calls).padStart(7) +
        r.ms.toFixed(1).padStart(10) +
        `${((100 * r.ms) / total).toFixed(1)}%`.padStart(8) +
        `  ${r.shapes}`,
    );
  }
}
main();
