import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend";
import { DecoderRNN, captionLoss, getDefaultConfig } from "../lib/decoder";
async function main() {
  await initBackend({ quiet: true });
  const B = Number(process.argv[2] ?? 64), T = 14;
  const decoder = new DecoderRNN(getDefaultConfig(3000));
  const opt = tf.train.adam(3e-4);
  const features = tf.randomUniform([B, 49, 2048], 0, 2) as tf.Tensor3D;
  const captions = tf.randomUniform([B, T], 3, 3000, "int32") as tf.Tensor2D;
  const step = () => opt.minimize(() => captionLoss(decoder.forward(features, captions, { training: true }), captions).loss, true, decoder.variables)!;
  await step().data();
  const info = await tf.profile(async () => { await step().data(); });
  const by = new Map<string, [number, number]>();
  for (const k of info.kernels) { const e = by.get(k.name) ?? [0, 0]; e[0] += k.kernelTimeMs as number; e[1]++; by.set(k.name, e); }
  const rows = [...by].sort((a, b) => b[1][0] - a[1][0]);
  let tot = 0; for (const [, [ms]] of rows) tot += ms;
  console.log("total kernel ms", tot.toFixed(0));
  for (const [n, [ms, c]] of rows.slice(0, 18)) console.log(n.padEnd(20), ms.toFixed(0).padStart(6), c);
  // big matmuls
  const mm = info.kernels.filter(k => k.name === "BatchMatMul").map(k => [k.kernelTimeMs as number, JSON.stringify(k.inputShapes)] as [number, string]);
  const g = new Map<string, [number, number]>(); for (const [ms, s] of mm) { const e = g.get(s) ?? [0, 0]; e[0] += ms; e[1]++; g.set(s, e); }
  for (const [s, [ms, c]] of [...g].sort((a, b) => b[1][0] - a[1][0]).slice(0, 14)) console.log(ms.toFixed(0).padStart(6), c, s);
}
main();
