/**
 * Bahdanau (additive) attention over the 49 image regions, as in the seed and Show, Attend and Tell:
 *   e = A(tanh(W·features + U·h)),  α = softmax(e) over regions,  context = Σ_r α_r · features_r
 * `W·features` does not depend on the step, so `projectFeatures` computes it once per image and each step
 * (`attend`, called by `decoderStep` and the recurrence) reuses it at every word. Weights are stored `[in, out]` so
 * every product is a plain matMul (transposed matMuls are ~8× slower on wasm).
 *
 * To try another score function, edit `attend` and `attendBackward` below, side by side: every engine (tfjs
 * decoding, the fused tfjs op, the ONNX training and decoding graphs) runs these two. What checks an edit:
 * test/bptt.test.ts (the hand-written backward against tfjs autodiff through `attend`), test/onnx-train.test.ts
 * (the ONNX training step against autodiff), test/onnx-decode.test.ts (the decoding graph against tfjs), and
 * test/decoder.test.ts, pinned against PyTorch's Bahdanau attention (it fails for any other score, by design).
 */
import * as tf from "@tensorflow/tfjs";
import { Ops, tfOps } from "../engine/ops";

export interface AttentionConfig {
  /** Width of the region vectors attended over (the decoder's `regionWidth`). */
  regionDim: number;
  decoderDim: number;
  attentionDim: number;
}

/** The attention's parameters (stable names `attention/W`, …; declared with the decoder's in `decoderParams`). */
export type AttentionParam = "W" | "bW" | "U" | "bU" | "A" | "bA";

export class Attention {
  /** `[regionDim, attentionDim]`, `[attentionDim]`: the seed's `W` (encoder → attention). */
  readonly W: tf.Variable;
  readonly bW: tf.Variable;
  /** `[decoderDim, attentionDim]`, `[attentionDim]`: the seed's `U` (decoder state → attention). */
  readonly U: tf.Variable;
  readonly bU: tf.Variable;
  /** `[attentionDim, 1]`, `[1]`: the seed's `A` (attention → score). */
  readonly A: tf.Variable;
  readonly bA: tf.Variable;

  /** `variable` gives each parameter's tfjs variable (the decoder creates them from `decoderParams`). */
  constructor(
    readonly config: AttentionConfig,
    variable: (name: AttentionParam) => tf.Variable,
  ) {
    this.W = variable("W");
    this.bW = variable("bW");
    this.U = variable("U");
    this.bU = variable("bU");
    this.A = variable("A");
    this.bA = variable("bA");
  }

  get variables(): tf.Variable[] {
    return [this.W, this.bW, this.U, this.bU, this.A, this.bA];
  }

  /** `[B, R, E]` → `[B, R, K]`: once per image. */
  projectFeatures(features: tf.Tensor3D): tf.Tensor3D {
    const [B, R, E] = features.shape;
    return projectRegions(tfOps, features, this.W, this.bW, { B, R, E, K: this.config.attentionDim }) as tf.Tensor3D;
  }
}

/**
 * W·f + b_W of every region, `[B, R, E]` → `[B, R, K]`: the half of the score that does not depend on the step,
 * computed once per image (tfjs decoding, the ONNX training and decoding graphs).
 */
export function projectRegions<T>(
  o: Ops<T>,
  regions: T,
  W: T,
  bW: T,
  { B, R, E, K }: { B: number; R: number; E: number; K: number },
): T {
  return o.reshape(o.add(o.matMul(o.reshape(regions, [B * R, E]), W), bW), [B, R, K]);
}

/**
 * Soft attention at one step from `u = h·U + b_U` `[B, K]`: `z` `[B, R, K]`, `alpha` `[B, R]`, `ctx` `[B, E]`;
 * `context(α)` is Σ_r α_r·features_r (`Ops.weightedSum`, or `weightedSums` prepared once for many steps).
 */
export function attend<T>(
  o: Ops<T>,
  { B, R, K }: { B: number; R: number; K: number },
  projected: T,
  context: (alpha: T) => T,
  A: T,
  bA: T,
  u: T,
): { z: T; alpha: T; ctx: T } {
  const z = o.tanh(o.add(projected, o.reshape(u, [B, 1, K]))); // u broadcast over the regions
  const s = o.reshape(o.add(o.matMul(o.reshape(z, [B * R, K]), A), bA), [B, R]);
  const alpha = o.softmax(s); // over the regions
  return { z, alpha, ctx: context(alpha) };
}

/**
 * The backward of `attend` at one step, from the gradients at its outputs: `dAlpha` `[B, R]` (the loss's own, e.g.
 * the doubly stochastic term's) and `dCtx` `[B, E]` (the context's, through the LSTM). It may read what `attend`
 * read and gave (`saved`: u, z, α; `x`: the features, the projected features and A as `[1, 1, K]`). Returns the
 * gradients of u `[B, K]`, of the projected features `[B, R, K]` and of A `[K]` (b_A's is 0: softmax ignores a
 * shift of every score).
 */
export function attendBackward<T>(
  o: Ops<T>,
  { B, R }: { B: number; R: number },
  saved: { u: T; z: T; alpha: T },
  x: { features: T; projected: T; aRow: T },
  dAlpha: T,
  dCtx: T,
): { du: T; dProjected: T; dA: T } {
  const { features, aRow } = x;
  const one = o.scalar(1);
  const dAlphaAll = o.add(dAlpha, o.dots(features, dCtx)); // context = Σ_r α_r·f_r
  const ds = o.mul(saved.alpha, o.sub(dAlphaAll, o.sum(o.mul(saved.alpha, dAlphaAll), [1], true))); // softmax
  const ds3 = o.reshape(ds, [B, R, 1]);
  const dA = o.sum(o.mul(saved.z, ds3), [0, 1]); // [K]
  const dProjected = o.mul(o.mul(ds3, aRow), o.sub(one, o.mul(saved.z, saved.z))); // tanh' = 1 − z²
  return { du: o.sum(dProjected, [1]), dProjected, dA };
}
