import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { DecoderRNN, defaultInitializer, greedy, paramNames, startStepEngine } from "../lib/captioning";
import { TypedAdam, clipAndApply, loadOrt } from "../lib/engine";
import { setupBackend } from "./helpers";

/** The seam every captioning trainer steps through: both engines must be interchangeable. */
describe("captioning step engines (ONNX Runtime and tfjs)", function () {
  this.timeout(120_000);
  before(async function () {
    if (!loadOrt()) this.skip(); // optional dependency
    await setupBackend();
  });
  const config = { vocabSize: 13, embedSize: 5, encoderDim: 8, attentionDim: 6, decoderDim: 7, dropout: 0.3 };
  const [B, R, T] = [3, 5, 6];
  const features = () =>
    tf.tensor3d(
      Float32Array.from({ length: B * R * 8 }, (_, i) => 0.5 + 0.5 * Math.sin(0.37 * i)),
      [B, R, 8],
    );
  const captions = () => tf.tensor2d([1, 4, 5, 6, 7, 2, 1, 3, 9, 2, 0, 0, 1, 12, 2, 0, 0, 0], [B, T], "int32");

  /** Gradients by parameter name as arrays, whichever form the engine gives them in. */
  async function byParam(d: DecoderRNN, grads: tf.NamedTensorMap | Record<string, Float32Array>) {
    const named = d.namedVariables();
    const out: Record<string, Float32Array> = {};
    for (const n of paramNames(d.config)) {
      const g = (grads as Record<string, unknown>)[n] ?? (grads as tf.NamedTensorMap)[named[n].name];
      out[n] = g instanceof Float32Array ? g : ((await (g as tf.Tensor).data()) as Float32Array);
    }
    return out;
  }

  for (const [label, opts] of [
    ["cross-entropy with λ = 0.5, no dropout", { seed: 1, lambda: 0.5, dropout: false }],
    ["self-critical: caption weights, λ = 0", { seed: 1, lambda: 0, dropout: false, captionWeights: [0.7, -1.2, 0.4] }],
  ] as const)
    it(`give the same loss and gradients (${label})`, async () => {
      const d = new DecoderRNN(config, defaultInitializer(4));
      const [f, c] = [features(), captions()];
      const onnx = await startStepEngine(d, { engine: "onnx", regions: R, lr: 1e-3 });
      const tfjs = await startStepEngine(d, { engine: "tfjs", regions: R, lr: 1e-3 });
      const a = await onnx.step(f, c, opts);
      const b = await tfjs.step(f, c, opts);
      assert.ok(Math.abs(a.loss - b.loss) < 1e-5, `loss ${a.loss} vs ${b.loss}`);
      assert.ok(Math.abs(a.crossEntropy - b.crossEntropy) < 1e-5);
      const [ga, gb] = [await byParam(d, a.grads), await byParam(d, b.grads)];
      for (const n of Object.keys(ga)) {
        const scale = Math.max(1e-3, ...Array.from(gb[n], Math.abs));
        const worst = Math.max(...Array.from(ga[n], (v, i) => Math.abs(v - gb[n][i]) / scale));
        assert.ok(worst < 1e-4, `${n}: relative gradient error ${worst}`);
      }
      // the dev loss: no dropout, no gradient, the same on both
      const [la, lb] = [await onnx.loss(f, c, 0.5), await tfjs.loss(f, c, 0.5)];
      assert.ok(Math.abs(la.loss - lb.loss) < 1e-5 && Math.abs(la.crossEntropy - lb.crossEntropy) < 1e-5);
      tf.dispose([f, c, ...Object.values(b.grads as tf.NamedTensorMap)]);
      await onnx.dispose();
      await tfjs.dispose();
      d.dispose();
    });

  it("take the same Adam step, and the ONNX engine's weights reach the decoder and its decoding", async () => {
    const [d1, d2] = [new DecoderRNN(config, defaultInitializer(5)), new DecoderRNN(config, defaultInitializer(5))];
    const [f, c] = [features(), captions()];
    const onnx = await startStepEngine(d1, { engine: "onnx", regions: R, lr: 0.05, decoding: true });
    const tfjs = await startStepEngine(d2, { engine: "tfjs", regions: R, lr: 0.05 });
    assert.ok(onnx.optimizer instanceof TypedAdam && onnx.decoding && !tfjs.decoding);
    const before = await greedy(d1, f, 8, onnx.decoding);
    const opts = { seed: 1, lambda: 0, dropout: false };
    const a = await onnx.step(f, c, opts);
    (onnx.optimizer as TypedAdam).update(a.grads as Record<string, Float32Array>, 5);
    onnx.updated();
    const b = await tfjs.step(f, c, opts);
    clipAndApply(tfjs.optimizer as tf.Optimizer, b.grads as tf.NamedTensorMap, 5);
    tf.dispose(Object.values(b.grads as tf.NamedTensorMap));
    // the tfjs variables are refreshed only when something reads them
    const w = (d: DecoderRNN) => d.namedVariables()["decoder/fcn"].dataSync();
    assert.deepEqual(Array.from(w(d1)), Array.from(initialOutputWeights(d1)));
    onnx.sync();
    const moved = Array.from(w(d1), (v, i) => Math.abs(v - w(d2)[i]));
    assert.ok(Math.max(...moved) < 1e-5, `after one step the engines' weights differ by ${Math.max(...moved)}`);
    // the ONNX decoder samples with the weights Adam just wrote: its greedy captions are the updated decoder's
    const viaOnnx = await greedy(d1, f, 8, onnx.decoding);
    const viaTfjs = await greedy(d1, f, 8);
    assert.deepEqual(
      viaOnnx.map((g) => g.ids),
      viaTfjs.map((g) => g.ids),
    );
    viaOnnx.forEach((g, i) => assert.ok(Math.abs(g.logProb - viaTfjs[i].logProb) < 1e-4, `image ${i}`));
    const change = Math.max(...viaOnnx.map((g, i) => Math.abs(g.logProb - before[i].logProb)));
    assert.ok(change > 1e-3, `the step moved the ONNX decoder's log-probabilities by only ${change}`);
    tf.dispose([f, c]);
    await onnx.dispose();
    await tfjs.dispose();
    d1.dispose();
    d2.dispose();
  });
});

/** The output layer's weights as a fresh decoder of the same seed holds them (before any step). */
function initialOutputWeights(d: DecoderRNN): Float32Array {
  const fresh = new DecoderRNN(d.config, defaultInitializer(5));
  const w = fresh.namedVariables()["decoder/fcn"].dataSync() as Float32Array;
  fresh.dispose();
  return w;
}
