import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { chunkedAddN, registerMissingKernels, unsortedSegmentSumValues } from "../lib/engine";
import { setupBackend } from "./helpers";

/** Runs f on a backend, returning plain arrays. */
async function on(backend: string, f: () => tf.Tensor | tf.Tensor[]): Promise<number[][]> {
  await tf.setBackend(backend);
  registerMissingKernels(backend);
  const out = tf.tidy(f);
  const list = Array.isArray(out) ? out : [out];
  const values = await Promise.all(list.map(async (t) => Array.from(await t.data())));
  tf.dispose(list);
  return values;
}

describe("kernels registered for wasm", () => {
  let initial: string;
  before(async () => (initial = await setupBackend()));
  after(async () => tf.setBackend(initial));

  it("unsortedSegmentSumValues sums rows into segments and drops out-of-range ids (hand-computed)", () => {
    // x = [[1,2],[3,4],[5,6],[7,8]], ids = [0,2,0,5] (5 ≥ numSegments: dropped, as TensorFlow does)
    const out = unsortedSegmentSumValues([1, 2, 3, 4, 5, 6, 7, 8], [0, 2, 0, 5], 3, 2);
    assert.deepEqual(Array.from(out), [6, 8, 0, 0, 3, 4]);
  });

  it("wasm's UnsortedSegmentSum equals the cpu backend's", async () => {
    const f = () =>
      tf.unsortedSegmentSum(
        tf.tensor2d([
          [1, 2],
          [3, 4],
          [5, 6],
          [7, 8],
        ]),
        tf.tensor1d([2, 0, 2, 1], "int32"),
        4,
      );
    const [cpu] = await on("cpu", f);
    const [wasm] = await on("wasm", f);
    assert.deepEqual(wasm, cpu);
    assert.deepEqual(cpu, [3, 4, 7, 8, 6, 8, 0, 0]);
  });

  it("makes the gradient of an embedding lookup (tf.gather) work on wasm, equal to cpu's", async () => {
    const table = Array.from({ length: 10 * 4 }, (_, i) => Math.sin(i));
    const f = () => {
      const emb = tf.tensor2d(table, [10, 4]);
      const ids = tf.tensor2d(
        [
          [1, 3],
          [3, 9],
        ],
        [2, 2],
        "int32",
      ); // a repeated id must accumulate
      const g = tf.grad((e: tf.Tensor) => tf.gather(e, ids).square().sum())(emb);
      return g;
    };
    const [cpu] = await on("cpu", f);
    const [wasm] = await on("wasm", f);
    assert.equal(wasm.length, 40);
    wasm.forEach((v, i) => assert.ok(Math.abs(v - cpu[i]) < 1e-6, `element ${i}: wasm ${v} vs cpu ${cpu[i]}`));
    // d/dE sum(E[id]^2) = 2·E[id]·count(id): row 3 appears twice
    assert.ok(Math.abs(cpu[3 * 4] - 4 * table[3 * 4]) < 1e-6);
    assert.deepEqual(cpu.slice(0, 4), [0, 0, 0, 0]);
  });

  it("adds many tensors in chunks (WebGPU's AddN binding limit) to the same sum, freeing the partial sums", async () => {
    await tf.setBackend("cpu");
    const inputs = Array.from({ length: 19 }, (_, i) => tf.tensor1d([i, 2 * i, -i]));
    const backend = tf.backend();
    const before = backend.numDataIds();
    const addN = chunkedAddN(tf.getKernel("AddN", "cpu")!.kernelFunc, 7);
    const info = addN({ inputs: inputs as unknown as tf.NamedTensorInfoMap, backend, attrs: {} }) as tf.TensorInfo;
    const out = tf.engine().makeTensorFromTensorInfo(info);
    assert.deepEqual(Array.from(await out.data()), [171, 342, -171]); // Σ i for i < 19 = 171
    assert.equal(backend.numDataIds(), before + 1, "only the result is left");
    assert.throws(() => chunkedAddN(tf.getKernel("AddN", "cpu")!.kernelFunc, 1), /maxInputs must be ≥ 2/);
    tf.dispose([out, ...inputs]);
  });

  it("registers each kernel once", () => {
    assert.deepEqual(registerMissingKernels("wasm"), []);
    assert.deepEqual(registerMissingKernels("cpu"), []);
  });
});

describe("fast BatchMatMul gradient (explicit transposes)", () => {
  before(setupBackend);

  it("matches finite differences for every transpose combination, batched and not", async () => {
    const { registerGradients } = await import("../lib/engine/kernels");
    registerGradients();
    for (const [tA, tB] of [
      [false, false],
      [false, true],
      [true, false],
      [true, true],
    ]) {
      for (const batch of [[], [2]]) {
        const [m, k, n] = [3, 4, 2];
        const aShape = [...batch, ...(tA ? [k, m] : [m, k])];
        const bShape = [...batch, ...(tB ? [n, k] : [k, n])];
        const a = tf.randomNormal(aShape, 0, 1, "float32", 1);
        const b = tf.randomNormal(bShape, 0, 1, "float32", 2);
        const w = tf.randomNormal([...batch, m, n], 0, 1, "float32", 3);
        const f = (x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y, tA, tB).mul(w).sum();
        const [ga, gb] = tf.grads(f)([a, b]);
        // Central differences on each input element (f is bilinear, so they are exact up to rounding).
        const fd = (which: 0 | 1) => {
          const base = (which === 0 ? a : b).dataSync();
          return Array.from(base, (_, i) => {
            const plus = Float32Array.from(base),
              minus = Float32Array.from(base);
            plus[i] += 0.5;
            minus[i] -= 0.5;
            const shape = (which === 0 ? a : b).shape;
            const [p, q] = [tf.tensor(plus, shape), tf.tensor(minus, shape)];
            const v =
              which === 0
                ? f(p, b).dataSync()[0] - f(q, b).dataSync()[0]
                : f(a, p).dataSync()[0] - f(a, q).dataSync()[0];
            tf.dispose([p, q]);
            return v;
          });
        };
        const [ea, eb] = [fd(0), fd(1)];
        Array.from(ga.dataSync()).forEach((v, i) =>
          assert.ok(Math.abs(v - ea[i]) < 1e-3, `tA=${tA} tB=${tB} batch=${batch}: dA[${i}] ${v} vs ${ea[i]}`),
        );
        Array.from(gb.dataSync()).forEach((v, i) =>
          assert.ok(Math.abs(v - eb[i]) < 1e-3, `tA=${tA} tB=${tB} batch=${batch}: dB[${i}] ${v} vs ${eb[i]}`),
        );
        tf.dispose([a, b, w, ga, gb]);
      }
    }
  });
});

describe("TopK gradient (tfjs has none)", () => {
  let initial: string;
  before(async () => (initial = await setupBackend()));
  after(async () => tf.setBackend(initial));

  it("routes each value's dy to the place it came from, on cpu and wasm alike (hand-computed)", async () => {
    const { registerGradients } = await import("../lib/engine/kernels");
    registerGradients();
    // rows [3,1,2] and [0,5,4], k = 2: values [[3,2],[5,4]] at places [[0,2],[1,2]]; loss = Σ values · w
    const f = () =>
      tf.grad((x: tf.Tensor) =>
        tf
          .topk(x, 2)
          .values.mul(
            tf.tensor2d([
              [1, 2],
              [3, 4],
            ]),
          )
          .sum(),
      )(
        tf.tensor2d([
          [3, 1, 2],
          [0, 5, 4],
        ]),
      );
    const [cpu] = await on("cpu", f);
    const [wasm] = await on("wasm", f);
    assert.deepEqual(cpu, [1, 0, 2, 0, 3, 4]);
    assert.deepEqual(wasm, cpu);
    // rank 3: the same two rows in a [2, 1, 3] tensor keep their shape
    const [r3] = await on("cpu", () =>
      tf.grad((x: tf.Tensor) => tf.topk(x, 1).values.sum())(tf.tensor3d([[[3, 1, 2]], [[0, 5, 4]]])),
    );
    assert.deepEqual(r3, [1, 0, 0, 0, 1, 0]);
  });
});
