/** The optimiser step shared by every trainer: global-norm clipping, then the optimiser's update. */
import * as tf from "@tensorflow/tfjs";

/**
 * Clips the gradients to a global norm of at most `clipNorm` and applies them with `optimizer` (the seed's
 * `clip_grad_norm_` + `optimizer.step()`). Nothing is read back (synchronous reads fail on WebGPU in Node).
 */
export function clipAndApply(optimizer: tf.Optimizer, grads: tf.NamedTensorMap, clipNorm: number): void {
  tf.tidy(() => {
    const names = Object.keys(grads);
    const norm = tf.sqrt(tf.addN(names.map((k) => grads[k].square().sum())));
    const scale = tf.minimum(1, tf.scalar(clipNorm).div(norm.add(1e-6)));
    optimizer.applyGradients(Object.fromEntries(names.map((k) => [k, grads[k].mul(scale)])));
  });
}
