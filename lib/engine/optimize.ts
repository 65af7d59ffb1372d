/** The optimiser step shared by every trainer: global-norm clipping, then the optimiser's update. */
import * as tf from "@tensorflow/tfjs";

/** ‖g‖ over every gradient together: √(Σ_params Σ g²), as a scalar tensor. */
export function globalNorm(grads: tf.NamedTensorMap): tf.Scalar {
  return tf.tidy(() => tf.sqrt(tf.addN(Object.values(grads).map((g) => g.square().sum()))) as tf.Scalar);
}

/** The gradients scaled by min(1, clipNorm / (‖g‖ + 10⁻⁶)) (PyTorch's `clip_grad_norm_`): new tensors. */
export function clipByGlobalNorm(grads: tf.NamedTensorMap, clipNorm: number): tf.NamedTensorMap {
  return tf.tidy(() => {
    const scale = tf.minimum(1, tf.scalar(clipNorm).div(globalNorm(grads).add(1e-6)));
    return Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, g.mul(scale)]));
  });
}

/**
 * Clips the gradients to a global norm of at most `clipNorm` and applies them with `optimizer` (the seed's
 * `clip_grad_norm_` + `optimizer.step()`). Nothing is read back (synchronous reads fail on WebGPU in Node).
 */
export function clipAndApply(optimizer: tf.Optimizer, grads: tf.NamedTensorMap, clipNorm: number): void {
  tf.tidy(() => optimizer.applyGradients(clipByGlobalNorm(grads, clipNorm)));
}
