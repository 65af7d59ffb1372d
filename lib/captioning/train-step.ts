/**
 * The gradient of the captioning loss on one batch (or one replica's share of a batch): the unit of work that
 * the trainer runs in-process and that lib/captioning/data-parallel.ts runs on every core.
 */
import * as tf from "@tensorflow/tfjs";
import { DecoderRNN, LossNormalizer, captionLoss } from "./decoder";

/** A type alias, not an interface, so that tf.tidy can return it. */
export type StepResult = {
  loss: tf.Scalar;
  crossEntropy: tf.Scalar;
  /** By tfjs variable name, in `decoder.variables` order. */
  grads: tf.NamedTensorMap;
};

/** Loss, cross-entropy and gradients with dropout on (training mode); the caller disposes them. */
export function captionGradients(
  decoder: DecoderRNN,
  features: tf.Tensor3D,
  captions: tf.Tensor2D,
  opts: { seed: number; lambda: number; normalizer?: LossNormalizer },
): StepResult {
  let crossEntropy: tf.Scalar | undefined;
  const { value, grads } = tf.variableGrads(() => {
    const r = captionLoss(decoder.forward(features, captions, { training: true, seed: opts.seed }), captions, opts);
    crossEntropy = tf.keep(r.crossEntropy);
    return r.loss;
  }, decoder.variables);
  return { loss: value, crossEntropy: crossEntropy!, grads };
}

/** Real (non-`<PAD>`) predicted tokens and captions of a padded batch: the loss's denominators. */
export function lossNormalizer(captionIds: Int32Array | number[], T: number, padIdx = 0): LossNormalizer {
  let tokens = 0;
  for (let i = 0; i < captionIds.length; i++) if (i % T !== 0 && captionIds[i] !== padIdx) tokens++;
  return { tokens, captions: captionIds.length / T };
}
