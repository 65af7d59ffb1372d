import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { foldBatchNorm } from "../lib/encoder";
import { setupBackend } from "./helpers";

/** input → conv(3×3, 2→3) → BN → relu → conv(1×1) → BN (output): small enough to check by hand. */
function tinyNet(): tf.LayersModel {
  const input = tf.input({ shape: [5, 5, 2] });
  let y = tf.layers
    .conv2d({ filters: 3, kernelSize: 3, padding: "same", name: "c1" })
    .apply(input) as tf.SymbolicTensor;
  y = tf.layers.batchNormalization({ axis: 3, name: "bn1", epsilon: 1e-3 }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.activation({ activation: "relu", name: "a1" }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.conv2d({ filters: 2, kernelSize: 1, useBias: false, name: "c2" }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.batchNormalization({ axis: 3, name: "bn2", center: false }).apply(y) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: y });
}

describe("foldBatchNorm", () => {
  before(setupBackend);

  it("gives the same outputs with BN folded and ReLU fused, also without bias or beta", async () => {
    const net = tinyNet();
    // Non-trivial moving statistics, as a trained network has.
    for (const l of net.layers.filter((l) => l.name.startsWith("bn"))) {
      const variance = l.weights.map((w) => w.name.includes("moving_variance"));
      l.setWeights(
        l.getWeights().map((w, i) => tf.randomUniform(w.shape, variance[i] ? 0.5 : -1, 2, "float32", 7 + i)),
      );
    }
    let artifacts!: tf.io.ModelArtifacts;
    await net.save(
      tf.io.withSaveHandler(
        async (a) => ((artifacts = a), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } }),
      ),
    );
    const { artifacts: folded, foldedBatchNorms, fusedActivations } = await foldBatchNorm(artifacts);
    assert.deepEqual([foldedBatchNorms, fusedActivations], [2, 1]);
    const fast = await tf.loadLayersModel(tf.io.fromMemory(folded));
    assert.deepEqual(
      fast.layers.map((l) => l.name),
      ["input1", "c1", "c2"].map((n, i) => (i === 0 ? net.layers[0].name : n)),
    );
    const x = tf.randomNormal([2, 5, 5, 2], 0, 1, "float32", 3);
    const [a, b] = [(net.predict(x) as tf.Tensor).dataSync(), (fast.predict(x) as tf.Tensor).dataSync()];
    a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) < 1e-5 * (1 + Math.abs(v)), `output ${i}: ${v} vs ${b[i]}`));
  });

  it("refuses a topology that is not a Keras functional model", async () => {
    await assert.rejects(foldBatchNorm({ modelTopology: { foo: 1 } }), /not a Keras functional model topology/);
  });
});
