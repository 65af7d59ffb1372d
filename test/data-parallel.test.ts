import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { DataParallel } from "../lib/captioning";
import { DecoderRNN, defaultInitializer } from "../lib/captioning";
import { captionGradients } from "../lib/captioning";
import { setupBackend } from "./helpers";

describe("data-parallel training step (worker threads)", function () {
  this.timeout(120_000);
  before(setupBackend);

  it("sums the replicas' shares to the whole batch's loss and gradients, and follows weight updates", async () => {
    const config = { vocabSize: 11, embedSize: 5, encoderDim: 8, attentionDim: 6, decoderDim: 7, dropout: 0 };
    const d = new DecoderRNN(config, defaultInitializer(2));
    const features = tf.randomUniform([5, 4, 8], 0, 1, "float32", 1) as tf.Tensor3D;
    const captions = tf.tensor2d(
      [
        [1, 4, 5, 2, 0],
        [1, 3, 9, 6, 2],
        [1, 10, 2, 0, 0],
        [1, 7, 7, 7, 2],
        [1, 2, 0, 0, 0],
      ],
      [5, 5],
      "int32",
    );
    const dp = await DataParallel.start(d, 2);
    try {
      for (let round = 0; round < 2; round++) {
        const whole = tf.tidy(() => captionGradients(d, features, captions, { seed: 1, lambda: 0.5 }));
        const split = await dp.gradients(features, captions, { seed: 1, lambda: 0.5 });
        assert.ok(Math.abs(split.loss.dataSync()[0] - whole.loss.dataSync()[0]) < 1e-5, `round ${round}: loss`);
        for (const v of d.variables) {
          const a = split.grads[v.name].dataSync(),
            b = whole.grads[v.name].dataSync();
          for (let i = 0; i < b.length; i++)
            assert.ok(Math.abs(a[i] - b[i]) < 1e-5, `round ${round}: ${v.name}[${i}] ${a[i]} vs ${b[i]}`);
        }
        tf.dispose([
          whole.loss,
          whole.crossEntropy,
          split.loss,
          split.crossEntropy,
          ...Object.values(whole.grads),
          ...Object.values(split.grads),
        ]);
        // Change the weights: the worker must pick them up before the next step.
        d.variables.forEach((v) => v.assign(v.mul(0.9)));
        dp.weightsChanged();
      }
    } finally {
      await dp.close();
      d.dispose();
    }
  });
});
