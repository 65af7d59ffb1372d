import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { DecoderRNN, captionLoss, getDefaultConfig } from "../lib/captioning";
import { closeTo as close, deterministicWeights as det, readReference, setupBackend } from "./helpers";

/**
 * Reference: test/reference/decoder_reference.py (PyTorch 1.13 modules, float64), which writes test/reference/decoder_reference.json.
 * Same weights on both sides: a formula of each parameter's name and flat index ([in, out] layout).
 */
const REF = readReference("decoder_reference.json");

describe("DecoderRNN with soft attention, against PyTorch", () => {
  before(setupBackend);
  const config = { vocabSize: 7, embedSize: 3, encoderDim: 6, attentionDim: 4, decoderDim: 5, dropout: 0.3 };
  const feats = () =>
    tf.tensor3d(
      Array.from({ length: 2 * 4 * 6 }, (_, i) => 0.5 + 0.5 * Math.sin(0.13 * i)),
      [2, 4, 6],
    );
  const captions = () =>
    tf.tensor2d(
      [
        [1, 4, 5, 6, 2],
        [1, 3, 2, 0, 0],
      ],
      [2, 5],
      "int32",
    );

  it("computes PyTorch's logits, attention and loss (teacher forcing, <PAD> ignored, doubly stochastic term), both recurrences", async () => {
    for (const recurrence of ["fused", "stepwise"] as const) {
      const decoder = new DecoderRNN(config, det);
      const [f, c] = [feats(), captions()];
      const out = decoder.forward(f, c, { recurrence });
      assert.deepEqual(out.logits.shape, [2, 4, 7]);
      assert.deepEqual(out.alphas.shape, [2, 4, 4]);
      close(await out.logits.data(), REF.logits, 2e-6, "logits");
      const a = (await out.alphas.array()) as number[][][];
      close(a[0][0], REF.alphas_b0_t0, 2e-6, "alpha[0,0]");
      close(a[1][3], REF.alphas_b1_t3, 2e-6, "alpha[1,3]");
      const l = captionLoss(out, c, { lambda: 1 });
      close(
        [(await l.crossEntropy.data())[0], (await l.attentionPenalty.data())[0], (await l.loss.data())[0]],
        [REF.cross_entropy, REF.attention_penalty, REF.loss],
        2e-6,
        `loss (${recurrence})`,
      );
      decoder.dispose();
    }
  });

  it("one Adam step lowers the loss exactly as PyTorch's does", async () => {
    const decoder = new DecoderRNN(config, det);
    const [f, c] = [feats(), captions()];
    const opt = tf.train.adam(0.01, 0.9, 0.999, 1e-8);
    const loss = () => captionLoss(decoder.forward(f, c), c, { lambda: 1 }).loss; // PyTorch's reference: λ = 1
    opt.minimize(loss, false, decoder.variables);
    const after = (await loss().data())[0];
    assert.ok(
      Math.abs(after - REF.loss_after_one_adam_step) < 2e-5,
      `after one step ${after} vs PyTorch ${REF.loss_after_one_adam_step}`,
    );
    assert.ok(after < REF.loss);
    decoder.dispose();
  });

  it("uses the seed's dimensions by default and applies dropout only in training", async () => {
    assert.deepEqual(getDefaultConfig(3000), {
      vocabSize: 3000,
      embedSize: 300,
      attentionDim: 256,
      encoderDim: 2048,
      decoderDim: 512,
      dropout: 0.3,
    });
    const decoder = new DecoderRNN(config, det);
    const [f, c] = [feats(), captions()];
    const a = await decoder.forward(f, c).logits.data();
    const b = await decoder.forward(f, c).logits.data();
    const d = await decoder.forward(f, c, { training: true, seed: 3 }).logits.data();
    assert.deepEqual(Array.from(a), Array.from(b));
    assert.notDeepEqual(Array.from(a), Array.from(d));
    decoder.dispose();
  });
});
