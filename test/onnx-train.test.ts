import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { DecoderConfig, DecoderRNN, captionLoss, defaultInitializer } from "../lib/captioning";
import { OnnxTrainer, dropoutMask, paramNames, startStepEngine } from "../lib/captioning";
import { loadOrt } from "../lib/engine";
import { setupBackend } from "./helpers";

/** The ONNX Runtime training step against tfjs: same loss, same gradient for every parameter. */
describe("training step compiled to ONNX", function () {
  before(async function () {
    if (!loadOrt()) this.skip(); // optional dependency
    await setupBackend();
  });
  const config = { vocabSize: 13, embedSize: 5, encoderDim: 8, attentionDim: 6, decoderDim: 7, dropout: 0 };

  const variants: [string, Partial<DecoderConfig>][] = [
    ["the seed's decoder", {}],
    ["a region layer over the features", { regionLayer: true }],
    ["a narrower region layer (8 → 4)", { regionLayer: true, regionDim: 4 }],
  ];
  for (const [label, variant] of variants)
    it(`gives tfjs autodiff's loss parts and gradients (${label}; padded captions, λ = 0.7), and the same loss without the backward pass`, async () => {
      const d = new DecoderRNN({ ...config, ...variant }, defaultInitializer(9));
      const [B, R, T] = [3, 5, 6];
      const fv = Float32Array.from({ length: B * R * 8 }, (_, i) => 0.5 + 0.5 * Math.sin(0.37 * i));
      const ids = Int32Array.from([1, 4, 5, 6, 7, 2, 1, 3, 9, 2, 0, 0, 1, 12, 2, 0, 0, 0]);
      const features = tf.tensor3d(fv, [B, R, 8]);
      const captions = tf.tensor2d(ids, [B, T], "int32");
      let parts: number[] = [];
      const ref = tf.variableGrads(() => {
        // autodiff through the stepwise recurrence: the reference for the hand-written backward of every path
        const l = captionLoss(d.forward(features, captions, { recurrence: "stepwise" }), captions, { lambda: 0.7 });
        parts = [l.crossEntropy.dataSync()[0], l.attentionPenalty.dataSync()[0]];
        return l.loss;
      }, d.variables);
      const trainer = new OnnxTrainer(d.config, R, 1);
      const out = await trainer.step(await OnnxTrainer.parameters(d), fv, ids, B, T, {
        seed: 1,
        lambda: 0.7,
        dropout: 0,
      });
      assert.ok(Math.abs(out.crossEntropy - parts[0]) < 1e-5, `cross-entropy ${out.crossEntropy} vs ${parts[0]}`);
      assert.ok(Math.abs(out.penalty - 0.7 * parts[1]) < 1e-5, `penalty ${out.penalty} vs ${0.7 * parts[1]}`);
      assert.ok(Math.abs(out.loss - ref.value.dataSync()[0]) < 1e-5);
      const named = d.namedVariables();
      for (const name of paramNames(d.config)) {
        const a = out.grads[name];
        const b = ref.grads[named[name].name]?.dataSync() ?? new Float32Array(a.length); // unused: no gradient
        assert.equal(a.length, b.length, name);
        const scale = Math.max(1e-3, ...Array.from(b, Math.abs));
        let worst = 0;
        for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / scale);
        assert.ok(worst < 1e-4, `${name}: relative gradient error ${worst}`);
      }
      const silent = (n: string) => out.grads[n].every((v) => v === 0);
      if (variant.regionLayer) assert.ok(!silent("decoder/Wf") && !silent("decoder/bF"), "the region layer learns");
      const engine = await startStepEngine(d, { engine: "onnx", regions: R, lr: 0 });
      const evalOnly = await engine.loss(features, captions, 0.7); // the loss-only graph (validation)
      await engine.dispose();
      assert.ok(Math.abs(evalOnly.loss - out.loss) < 1e-6 && Math.abs(evalOnly.crossEntropy - out.crossEntropy) < 1e-6);
      await trainer.dispose();
      d.dispose();
    });

  it("draws inverted-dropout masks by seed: values 0 or 1/(1−p), about p of them 0", () => {
    const m = dropoutMask(20000, 0.3, 5);
    assert.deepEqual(m, dropoutMask(20000, 0.3, 5));
    assert.notDeepEqual(m, dropoutMask(20000, 0.3, 6));
    const zeros = m.filter((v) => v === 0).length / m.length;
    assert.ok(Math.abs(zeros - 0.3) < 0.02, `dropped ${zeros}`);
    assert.ok(m.every((v) => v === 0 || Math.abs(v - 1 / 0.7) < 1e-6));
    assert.ok(dropoutMask(10, 0, 1).every((v) => v === 1));
  });
});
