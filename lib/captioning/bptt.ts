/**
 * The teacher-forced attention-LSTM recurrence with hand-written backpropagation through time.
 *
 * Same math as `DecoderRNN.step` applied for t = 0 … S−1, but as ONE differentiable op (`tf.customGrad`), because
 * autodiff over S unrolled steps is slow on CPU backends: it multiplies every weight gradient per step with a
 * batch-sized inner dimension (`[E, B] × [B, 4D]`, inefficient), re-transposes the weights at every step, and
 * sums S copies of each weight gradient. Here the weights are transposed once per batch, the per-step work is
 * only what the recurrence needs (dh, dc, dα), and each weight gradient is one large matMul over all B·S rows.
 * The region features are a constant (the encoder is frozen), so no gradient flows into them.
 *
 * Per step, with P = W·features + b_W projected once per image (see Attention.projectFeatures):
 *   [u ; b ; gh] = h_{t−1}·[U | f_beta | W_hh] + [b_U ; b_beta ; 0]
 *   z = tanh(P + u)            s = z·A + b_A          α = softmax_regions(s)        ctx = Σ_r α_r·features_r
 *   β = σ(b)                   gates = G_t + (β⊙ctx)·W_ctx + gh     (G_t = emb_t·W_emb + b_lstm, precomputed)
 *   c_t = σ(f)⊙c_{t−1} + σ(i)⊙tanh(g)                             h_t = σ(o)⊙tanh(c_t)
 * Output: `[B, S, D + R]` = h_t and α_t side by side (customGrad returns one tensor).
 */
import * as tf from "@tensorflow/tfjs";

export interface RecurrenceInputs {
  /** `[B, R, K]` projected features. */
  projected: tf.Tensor3D;
  /** `[B, S, 4D]` embedding contribution to the gates, bias included. */
  embGates: tf.Tensor3D;
  h0: tf.Tensor2D;
  c0: tf.Tensor2D;
  /** `[D, K + E + 4D]`: U, f_beta and W_hh side by side (one matMul per step for everything h feeds). */
  hWeights: tf.Tensor2D;
  /** `[K + E]`: b_U and b_beta. */
  hBias: tf.Tensor1D;
  /** `[K, 1]`, `[1]` */
  A: tf.Tensor2D;
  bA: tf.Tensor1D;
  /** `[E, 4D]`: the context rows of the LSTM input weights. */
  ctxWeights: tf.Tensor2D;
}

/** Runs the recurrence over `S = embGates.shape[1]` steps; see the module comment. */
export function attentionRecurrence(
  features: tf.Tensor3D,
  x: RecurrenceInputs,
): { h: tf.Tensor3D; alphas: tf.Tensor3D } {
  const [B, S] = x.embGates.shape;
  const D = x.h0.shape[1];
  const R = features.shape[1];
  const op = tf.customGrad((...args: unknown[]) => {
    const [projected, embGates, h0, c0, hWeights, hBias, A, bA, ctxWeights] = args.slice(0, 9) as [
      tf.Tensor3D,
      tf.Tensor3D,
      tf.Tensor2D,
      tf.Tensor2D,
      tf.Tensor2D,
      tf.Tensor1D,
      tf.Tensor2D,
      tf.Tensor1D,
      tf.Tensor2D,
    ];
    const save = args[9] as (ts: tf.Tensor[]) => void;
    const fw = forward(features, projected, embGates, h0, c0, hWeights, hBias, A, bA, ctxWeights);
    // Inputs are intermediate tensors of the caller, disposed before backprop unless saved.
    save([...fw.saved, hWeights, A, ctxWeights]);
    return {
      value: fw.value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [hW, a, ctxW] = saved.slice(S * PER_STEP);
        const dims = { B, S, D, R, K: projected.shape[2], E: features.shape[2] };
        return backward(dy as tf.Tensor3D, saved, features, dims, {
          hWeights: hW as tf.Tensor2D,
          A: a as tf.Tensor2D,
          ctxWeights: ctxW as tf.Tensor2D,
        });
      },
    };
  });
  const out = op(x.projected, x.embGates, x.h0, x.c0, x.hWeights, x.hBias, x.A, x.bA, x.ctxWeights) as tf.Tensor3D;
  const h = out.slice([0, 0, 0], [B, S, D]) as tf.Tensor3D;
  const alphas = out.slice([0, 0, D], [B, S, R]) as tf.Tensor3D;
  return { h, alphas };
}

/** Per step, 9 saved tensors: h_{t−1}, c_{t−1}, z, α, ctx, β, β⊙ctx, [i f g o] activations, tanh(c_t). */
const PER_STEP = 9;

function forward(
  features: tf.Tensor3D,
  projected: tf.Tensor3D,
  embGates: tf.Tensor3D,
  h0: tf.Tensor2D,
  c0: tf.Tensor2D,
  hWeights: tf.Tensor2D,
  hBias: tf.Tensor1D,
  A: tf.Tensor2D,
  bA: tf.Tensor1D,
  ctxWeights: tf.Tensor2D,
): { value: tf.Tensor; saved: tf.Tensor[] } {
  const [B, R, K] = projected.shape;
  const E = features.shape[2];
  const S = embGates.shape[1];
  const D = h0.shape[1];
  const G = tf.unstack(embGates, 1) as tf.Tensor2D[]; // S × [B, 4D]
  const featuresT = features.transpose([0, 2, 1]); // [B, E, R], once per batch
  let h = h0;
  let c = c0;
  const saved: tf.Tensor[] = [];
  const outs: tf.Tensor2D[] = [];
  for (let t = 0; t < S; t++) {
    const hp = h.matMul(hWeights); // [B, K + E + 4D]
    const [ub, gh] = tf.split(hp, [K + E, 4 * D], 1);
    const [u, b] = tf.split(ub.add(hBias), [K, E], 1);
    const z = tf.tanh(projected.add(u.reshape([B, 1, K]))) as tf.Tensor3D; // [B, R, K]
    const s = z
      .reshape([B * R, K])
      .matMul(A)
      .add(bA)
      .reshape([B, R]);
    const alpha = tf.softmax(s) as tf.Tensor2D;
    // Σ_r α_r·features_r as multiply + sum over the last axis (wasm sums other axes by transposing first;
    // a batched [1, R] × [R, E] matMul is slower still).
    const ctx = featuresT.mul(alpha.reshape([B, 1, R])).sum(2);
    const beta = tf.sigmoid(b);
    const gc = beta.mul(ctx);
    const gates = G[t].add(gc.matMul(ctxWeights)).add(gh);
    const [gi, gf, gg, go] = tf.split(gates, 4, 1);
    const [i, f, g, o] = [tf.sigmoid(gi), tf.sigmoid(gf), tf.tanh(gg), tf.sigmoid(go)];
    const cNew = f.mul(c).add(i.mul(g)) as tf.Tensor2D;
    const tc = tf.tanh(cNew);
    const hNew = o.mul(tc) as tf.Tensor2D;
    saved.push(h, c, z, alpha, ctx, beta, gc, tf.concat([i, f, g, o], 1), tc);
    outs.push(tf.concat([hNew, alpha], 1) as tf.Tensor2D);
    h = hNew;
    c = cNew;
  }
  return { value: tf.stack(outs, 1), saved };
}

interface Dims {
  B: number;
  S: number;
  D: number;
  R: number;
  K: number;
  E: number;
}

function backward(
  dy: tf.Tensor3D,
  saved: tf.Tensor[],
  features: tf.Tensor3D,
  { B, S, D, R, K, E }: Dims,
  w: { hWeights: tf.Tensor2D; A: tf.Tensor2D; ctxWeights: tf.Tensor2D },
): tf.Tensor[] {
  // Transposes once per batch, not once per step.
  const hWeightsT = w.hWeights.transpose(); // [K + E + 4D, D]
  const ctxWeightsT = w.ctxWeights.transpose(); // [4D, E]
  const aRow = w.A.reshape([1, 1, K]);
  const dys = tf.unstack(dy, 1) as tf.Tensor2D[]; // S × [B, D + R]
  let dh: tf.Tensor2D | null = null;
  let dc: tf.Tensor2D | null = null;
  let dP: tf.Tensor3D | null = null;
  let dA: tf.Tensor | null = null;
  const dGates: tf.Tensor2D[] = new Array(S);
  const dHp: tf.Tensor2D[] = new Array(S);
  for (let t = S - 1; t >= 0; t--) {
    const [, cPrev, z, alpha, ctx, beta, , ifgo, tc] = saved.slice(t * PER_STEP, (t + 1) * PER_STEP);
    const next = tf.tidy(() => {
      const [dOut, dAlphaOut] = tf.split(dys[t], [D, R], 1);
      const dhT = dh ? dOut.add(dh) : dOut;
      const one = tf.scalar(1);
      const [i, f, g, o] = tf.split(ifgo, 4, 1);
      const dcT = dhT
        .mul(o)
        .mul(one.sub(tc.square()))
        .add(dc ?? tf.scalar(0));
      // Gradients at the gate pre-activations; σ' = σ(1−σ), tanh' = 1−tanh², from the saved outputs.
      const dG = tf.concat(
        [
          dcT.mul(g).mul(i.mul(one.sub(i))),
          dcT.mul(cPrev).mul(f.mul(one.sub(f))),
          dcT.mul(i).mul(one.sub(g.square())),
          dhT.mul(tc).mul(o.mul(one.sub(o))),
        ],
        1,
      ) as tf.Tensor2D; // [B, 4D]
      const dgc = dG.matMul(ctxWeightsT); // [B, E]
      const dBeta = dgc.mul(ctx);
      const dCtx = dgc.mul(beta);
      const db = dBeta.mul(beta).mul(one.sub(beta));
      const dAlpha = dAlphaOut.add(dCtx.reshape([B, 1, E]).mul(features).sum(2));
      const ds = alpha.mul(dAlpha.sub(alpha.mul(dAlpha).sum(1, true))); // softmax backward
      const dAt = z.mul(ds.reshape([B, R, 1])).sum([0, 1]); // [K]
      const dPre = ds.reshape([B, R, 1]).mul(aRow).mul(one.sub(z.square())) as tf.Tensor3D; // [B, R, K]
      const du = dPre.sum(1);
      const dhp = tf.concat([du, db, dG], 1) as tf.Tensor2D; // [B, K + E + 4D]
      return {
        dh: dhp.matMul(hWeightsT) as tf.Tensor2D,
        dc: dcT.mul(f) as tf.Tensor2D,
        dG,
        dhp,
        dP: (dP ? dP.add(dPre) : dPre) as tf.Tensor3D,
        dA: dA ? dA.add(dAt) : dAt,
      };
    });
    tf.dispose([dh, dc, dP, dA] as (tf.Tensor | null)[] as tf.Tensor[]);
    ({ dh, dc, dP, dA } = next);
    dGates[t] = next.dG;
    dHp[t] = next.dhp;
  }
  // Weight gradients: one matMul each over all B·S rows (time-major on both sides).
  const hPrevAll = tf.concat(
    Array.from({ length: S }, (_, t) => saved[t * PER_STEP]),
    0,
  ); // [S·B, D]
  const gcAll = tf.concat(
    Array.from({ length: S }, (_, t) => saved[t * PER_STEP + 6]),
    0,
  ); // [S·B, E]
  const dGAll = tf.concat(dGates, 0); // [S·B, 4D]
  const dHpAll = tf.concat(dHp, 0); // [S·B, K + E + 4D]
  const dhWeights = hPrevAll.transpose().matMul(dHpAll);
  const dhBias = dHpAll.slice([0, 0], [S * B, K + E]).sum(0);
  const dctxWeights = gcAll.transpose().matMul(dGAll);
  const dEmbGates = tf.stack(dGates, 1); // [B, S, 4D]
  tf.dispose([hWeightsT, ctxWeightsT, aRow, ...dys, ...dGates, ...dHp, hPrevAll, gcAll, dGAll, dHpAll]);
  // d b_A = Σ ds = 0: softmax ignores a shift of all scores.
  return [dP!, dEmbGates, dh!, dc!, dhWeights, dhBias, dA!.reshape([K, 1]), tf.zeros([1]), dctxWeights];
}
