/**
 * The seed's `CapsCollate`: a list of dataset items → one batch. Images are stacked; captions are padded
 * with `padIdx` to the longest in the batch, batch-first (`[B, T]`, like `pad_sequence(batch_first=True)`).
 */
import * as tf from "@tensorflow/tfjs";
import { PAD } from "./vocabulary";

export interface CaptionBatch {
  /** `[B, H, W, 3]` (or whatever the items hold, with a batch axis in front). */
  images: tf.Tensor;
  /** `[B, T]` int32, T = longest caption in the batch (`<SOS>`/`<EOS>` included). */
  captions: tf.Tensor2D;
  /** Unpadded length of each caption. */
  lengths: number[];
  /** `[B, T]` float32: 1 on real tokens, 0 on padding. */
  mask: tf.Tensor2D;
  imageNames: string[];
}

/** Pads id lists to the longest, row-major `[B, T]`: the plain-array half of capsCollate, for tests and tables. */
export function padCaptions(captions: readonly (readonly number[])[], padIdx = PAD): { ids: Int32Array; lengths: number[]; maxLen: number } {
  const lengths = captions.map((c) => c.length);
  const maxLen = Math.max(0, ...lengths);
  const ids = new Int32Array(captions.length * maxLen).fill(padIdx);
  captions.forEach((c, b) => ids.set(c, b * maxLen));
  return { ids, lengths, maxLen };
}

export function capsCollate(
  batch: readonly { image: tf.Tensor; caption: readonly number[]; imageName?: string }[],
  padIdx = PAD,
): CaptionBatch {
  if (batch.length === 0) throw new Error("capsCollate: empty batch");
  const { ids, lengths, maxLen } = padCaptions(
    batch.map((b) => b.caption),
    padIdx,
  );
  const B = batch.length;
  const mask = new Float32Array(B * maxLen);
  lengths.forEach((n, b) => mask.fill(1, b * maxLen, b * maxLen + n));
  return {
    images: tf.stack(batch.map((b) => b.image)),
    captions: tf.tensor2d(ids, [B, maxLen], "int32"),
    lengths,
    mask: tf.tensor2d(mask, [B, maxLen]),
    imageNames: batch.map((b) => b.imageName ?? ""),
  };
}

export function disposeBatch(batch: CaptionBatch): void {
  tf.dispose([batch.images, batch.captions, batch.mask]);
}
