import * as ort from "onnxruntime-node";
import { Pb, valueInfoPb } from "./_pb";
async function main() {
  for (const threads of [1, 2]) for (const [m, k, n] of [[64, 2048, 2048], [64, 2860, 2048], [896, 512, 3000], [2048, 832, 2048], [64, 1, 49]]) {
    const g = new Pb().msg(1, new Pb().str(1, "A").str(1, "B").str(2, "C").str(4, "MatMul")).str(2, "mm")
      .msg(11, valueInfoPb("A", [m, k])).msg(11, valueInfoPb("B", [k, n])).msg(12, valueInfoPb("C", [m, n]));
    const bytes = new Pb().int(1, 8).msg(7, g).msg(8, new Pb().str(1, "").int(2, 13)).finish();
    const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: threads, interOpNumThreads: 1 });
    const A = new ort.Tensor("float32", new Float32Array(m * k).fill(0.5), [m, k]);
    const B = new ort.Tensor("float32", new Float32Array(k * n).fill(0.25), [k, n]);
    await s.run({ A, B });
    const R = 10, t0 = performance.now();
    for (let i = 0; i < R; i++) await s.run({ A, B });
    const sec = (performance.now() - t0) / R / 1000;
    console.log(threads, m, k, n, (sec * 1000).toFixed(2), "ms", (2 * m * k * n / sec / 1e9).toFixed(1), "GFLOP/s");
  }
}
main();
