import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { DecoderRNN, captionLoss, defaultInitializer } from "../lib/captioning";
import { setupBackend } from "./helpers";

/**
 * The hand-written backpropagation through time (lib/captioning/bptt.ts, recurrence "fused") against tfjs autodiff through
 * the same model unrolled with `DecoderRNN.step` (recurrence "stepwise", the code greedy and beam search use).
 */
describe("hand-written BPTT of the attention LSTM", () => {
  before(setupBackend);
  const config = { vocabSize: 11, embedSize: 5, encoderDim: 8, attentionDim: 6, decoderDim: 7, dropout: 0 };

  for (const [label, variant] of [
    ["the seed's decoder", {}],
    ["a region layer over the features", { regionLayer: true }],
    ["a narrower region layer (8 → 5)", { regionLayer: true, regionDim: 5 }],
  ] as const)
    it(`gives autodiff's loss and gradients for every parameter (${label}; λ = 1, padded captions)`, async () => {
      const d = new DecoderRNN({ ...config, ...variant }, defaultInitializer(4));
      const features = tf.randomUniform([3, 5, 8], 0, 2, "float32", 7) as tf.Tensor3D;
      const captions = tf.tensor2d(
        [
          [1, 4, 5, 6, 7, 2],
          [1, 3, 9, 2, 0, 0],
          [1, 10, 2, 0, 0, 0],
        ],
        [3, 6],
        "int32",
      );
      const lossOf = (recurrence: "fused" | "stepwise") => () =>
        captionLoss(d.forward(features, captions, { recurrence }), captions, { lambda: 1 }).loss;
      const fused = tf.variableGrads(lossOf("fused"), d.variables);
      const reference = tf.variableGrads(lossOf("stepwise"), d.variables);
      const lf = (await fused.value.data())[0];
      const lr = (await reference.value.data())[0];
      assert.ok(Math.abs(lf - lr) < 1e-5, `loss ${lf} vs ${lr}`);
      for (const v of d.variables) {
        const zero = new Float32Array(v.size); // autodiff gives no gradient to what the variant leaves unused
        const a = fused.grads[v.name] ? await fused.grads[v.name].data() : zero;
        const b = reference.grads[v.name] ? await reference.grads[v.name].data() : zero;
        const scale = Math.max(1e-3, ...Array.from(b, Math.abs));
        let worst = 0;
        for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / scale);
        assert.ok(worst < 1e-4, `${v.name}: relative gradient error ${worst}`);
      }
      if ("regionLayer" in variant) assert.ok(fused.grads[d.Wf!.name], "W_f has a gradient");
      const bA = d.attention.bA.name;
      assert.equal(
        Math.max(...Array.from(await reference.grads[bA].data(), Math.abs)) < 1e-6,
        true,
        "d b_A is 0 (softmax shift invariance)",
      );
      d.dispose();
    });

  it("frees its intermediates: a training step leaves no tensors behind", async () => {
    const d = new DecoderRNN(config, defaultInitializer(5));
    const features = tf.randomUniform([2, 5, 8], 0, 1, "float32", 3) as tf.Tensor3D;
    const captions = tf.tensor2d(
      [
        [1, 4, 5, 2],
        [1, 3, 2, 0],
      ],
      [2, 4],
      "int32",
    );
    const opt = tf.train.adam(1e-3);
    const step = () =>
      opt.minimize(
        () => captionLoss(d.forward(features, captions, { training: true, seed: 1 }), captions, { lambda: 1 }).loss,
        false,
        d.variables,
      );
    step(); // Adam creates its moment variables on the first step
    const before = tf.memory().numTensors;
    step();
    step();
    assert.equal(tf.memory().numTensors, before);
    d.dispose();
  });
});
