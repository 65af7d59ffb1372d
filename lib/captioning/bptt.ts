/**
 * The teacher-forced recurrence as ONE differentiable tfjs op (`tf.customGrad`) whose gradient is the
 * hand-written backpropagation through time of lib/captioning/recurrence.ts, because autodiff over S unrolled
 * steps is slow on CPU backends: it multiplies every weight gradient per step with a batch-sized inner dimension
 * (`[E, B] × [B, 4D]`), re-transposes the weights at every step, and sums S copies of each weight gradient.
 * Output: `[B, S, D + R]` = h_t and α_t side by side (customGrad returns one tensor), split for the caller.
 */
import * as tf from "@tensorflow/tfjs";
import { tfOps } from "../engine/ops";
import { RecurrenceWeights, STEP_SAVED, StepSaved, recurrenceBackward, recurrenceForward } from "./recurrence";

export interface RecurrenceInputs extends RecurrenceWeights<tf.Tensor> {
  /** `[B, R, K]` projected features. */
  projected: tf.Tensor3D;
  /** `[B, S, 4D]` embedding contribution to the gates, bias included. */
  embGates: tf.Tensor3D;
  h0: tf.Tensor2D;
  c0: tf.Tensor2D;
  /** The features are an input of the op with a gradient (DecoderConfig.regionLayer learns them); else constant. */
  featureGrad?: boolean;
}

const WEIGHTS = ["hWeights", "hBias", "A", "bA", "ctxWeights"] as const;

/** Runs the recurrence over `S = embGates.shape[1]` steps; see lib/captioning/recurrence.ts. */
export function attentionRecurrence(
  features: tf.Tensor3D,
  x: RecurrenceInputs,
): { h: tf.Tensor3D; alphas: tf.Tensor3D } {
  const [B, S] = x.embGates.shape;
  const [, R, E] = features.shape;
  const dims = { B, S, D: x.h0.shape[1], R, K: x.projected.shape[2], E };
  const { D } = dims;
  const parts = [D, R];
  const nIn = x.featureGrad ? 10 : 9;
  const op = tf.customGrad((...args: unknown[]) => {
    const [projected, embGates, h0, c0, ...w] = args.slice(0, 9) as tf.Tensor[];
    const weights = Object.fromEntries(WEIGHTS.map((k, i) => [k, w[i]])) as unknown as RecurrenceWeights<tf.Tensor>;
    const save = args[nIn] as (ts: tf.Tensor[]) => void;
    const embSteps = tf.unstack(embGates, 1);
    const fw = recurrenceForward(tfOps, dims, { features, projected, embGates: embSteps, h0, c0 }, weights);
    // Inputs are intermediate tensors of the caller, disposed before backprop unless saved.
    save([
      ...fw.saved.flatMap((s) => STEP_SAVED.map((k) => s[k])),
      ...w,
      projected,
      ...(x.featureGrad ? [features] : []),
    ]);
    const value = tf.stack(
      fw.h.map((h, t) => tf.concat([h, fw.alpha[t]], 1)),
      1,
    );
    return {
      value,
      gradFunc: (dy: tf.Tensor, kept: tf.Tensor[]) => {
        const { saved, wts, proj, feats } = unpack(kept, S, x.featureGrad ? undefined : features);
        const dys = tf.unstack(dy, 1).map((d) => tf.split(d, parts, 1));
        const g = recurrenceBackward(
          tfOps,
          dims,
          feats,
          proj,
          saved,
          dys.map((d) => d[0]),
          dys.map((d) => d[1]),
          wts,
          x.featureGrad,
        );
        const dEmbGates = tf.stack(g.dEmbGates, 1);
        tf.dispose([...dys.flat(), ...g.dEmbGates]);
        const grads = [
          g.dProjected,
          dEmbGates,
          g.dh0,
          g.dc0,
          g.dhWeights,
          g.dhBias,
          g.dA,
          tf.zeros([1]),
          g.dctxWeights,
        ];
        return x.featureGrad ? [...grads, g.dFeatures!] : grads;
      },
    };
  });
  const inputs = [
    x.projected,
    x.embGates,
    x.h0,
    x.c0,
    ...WEIGHTS.map((k) => x[k]),
    ...(x.featureGrad ? [features] : []),
  ];
  const out = op(...inputs) as tf.Tensor3D;
  const h = out.slice([0, 0, 0], [B, S, D]) as tf.Tensor3D;
  const alphas = out.slice([0, 0, D], [B, S, R]) as tf.Tensor3D;
  return { h, alphas };
}

/**
 * What the forward saved, by name: each step's STEP_SAVED, the weights, the projected features, then the features
 * (when not constant).
 */
function unpack(kept: tf.Tensor[], S: number, constantFeatures?: tf.Tensor) {
  const n = STEP_SAVED.length;
  const saved = Array.from(
    { length: S },
    (_, t) => Object.fromEntries(STEP_SAVED.map((k, i) => [k, kept[t * n + i]])) as unknown as StepSaved<tf.Tensor>,
  );
  const keptW = kept.slice(S * n, S * n + WEIGHTS.length);
  const wts = Object.fromEntries(WEIGHTS.map((k, i) => [k, keptW[i]])) as unknown as RecurrenceWeights<tf.Tensor>;
  const at = S * n + WEIGHTS.length;
  return { saved, wts, proj: kept[at], feats: constantFeatures ?? kept[at + 1] };
}
