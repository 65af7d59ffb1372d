/**
 * The decoder's math, written once against `Ops` (lib/engine/ops.ts): the attention step, the LSTM cell, and the
 * teacher-forced recurrence with its hand-written backpropagation through time. `DecoderRNN.step` (greedy and
 * beam search), the fused tfjs op of lib/captioning/bptt.ts and the ONNX training graph of
 * lib/captioning/onnx-train.ts all run this code; only the engine under `Ops` differs.
 *
 * Per step, with P = W·features + b_W projected once per image (Attention.projectFeatures):
 *   [u ; b ; gh] = h_{t−1}·[U | f_beta | W_hh] + [b_U ; b_beta ; 0]
 *   z = tanh(P + u)            s = z·A + b_A          α = softmax_regions(s)        ctx = Σ_r α_r·features_r
 *   β = σ(b)                   gates = G_t + (β⊙ctx)·W_ctx + gh     (G_t = emb_t·W_emb + b_lstm, precomputed)
 *   c_t = σ(f)⊙c_{t−1} + σ(i)⊙tanh(g)                             h_t = σ(o)⊙tanh(c_t)
 * The backward pass walks the steps in reverse carrying only dh, dc and the attention terms; every weight
 * gradient is then one matMul over all B·S rows (autodiff would form S batch-sized products per weight).
 * The region features are constant (the encoder is frozen) unless the decoder learns a layer over them
 * (DecoderConfig.regionLayer): then the backward also returns the context's share of their gradient.
 */
import type { Ops } from "../engine/ops";
import { attend, attendBackward } from "./attention";

/** Batch B, steps S, decoder D, regions R, attention K, encoder E. */
export interface RecurrenceDims {
  B: number;
  S: number;
  D: number;
  R: number;
  K: number;
  E: number;
}

/** PyTorch's LSTMCell from its gate pre-activations `[B, 4D]` (i, f, g, o) and `c_{t−1}`. */
export function lstmCell<T>(o: Ops<T>, D: number, gates: T, cPrev: T): { i: T; f: T; g: T; o: T; c: T; tc: T; h: T } {
  const [gi, gf, gg, go] = o.split(gates, [D, D, D, D], 1);
  const [i, f, g, og] = [o.sigmoid(gi), o.sigmoid(gf), o.tanh(gg), o.sigmoid(go)];
  const c = o.add(o.mul(f, cPrev), o.mul(i, g));
  const tc = o.tanh(c);
  return { i, f, g, o: og, c, tc, h: o.mul(og, tc) };
}

/** The weights the recurrence uses, arranged so that each step needs three matMuls. */
export interface RecurrenceWeights<T> {
  /** `[D, K + E + 4D]`: U, f_beta and W_hh side by side (one matMul for everything h feeds). */
  hWeights: T;
  /** `[K + E]`: b_U and b_beta. */
  hBias: T;
  /** `[K, 1]`, `[1]` */
  A: T;
  bA: T;
  /** `[E, 4D]`: the context rows of the LSTM input weights. */
  ctxWeights: T;
}

/** What the backward pass needs of each step. */
export interface StepSaved<T> {
  hPrev: T;
  /** h_{t−1}·U + b_U, what the attention read of the state (`attend`). */
  u: T;
  cPrev: T;
  z: T;
  alpha: T;
  ctx: T;
  beta: T;
  gc: T;
  i: T;
  f: T;
  g: T;
  o: T;
  tc: T;
}
export const STEP_SAVED = ["hPrev", "u", "cPrev", "z", "alpha", "ctx", "beta", "gc", "i", "f", "g", "o", "tc"] as const;

/**
 * The teacher-forced recurrence over S steps. `embGates`: S × `[B, 4D]` (the embedding half of the gates, bias
 * included). Returns each step's h `[B, D]` and α `[B, R]`, and what `recurrenceBackward` needs.
 */
export function recurrenceForward<T>(
  o: Ops<T>,
  dims: RecurrenceDims,
  x: { features: T; projected: T; embGates: T[]; h0: T; c0: T },
  w: RecurrenceWeights<T>,
): { h: T[]; alpha: T[]; saved: StepSaved<T>[] } {
  const { S, D, K, E } = dims;
  let h = x.h0;
  let c = x.c0;
  const out = { h: [] as T[], alpha: [] as T[], saved: [] as StepSaved<T>[] };
  const context = o.weightedSums(x.features);
  for (let t = 0; t < S; t++) {
    const [ub, gh] = o.split(o.matMul(h, w.hWeights), [K + E, 4 * D], 1);
    const [u, b] = o.split(o.add(ub, w.hBias), [K, E], 1);
    const { z, alpha, ctx } = attend(o, dims, x.projected, context, w.A, w.bA, u);
    const beta = o.sigmoid(b);
    const gc = o.mul(beta, ctx);
    const cell = lstmCell(o, D, o.add(o.add(x.embGates[t], o.matMul(gc, w.ctxWeights)), gh), c);
    out.saved.push({
      hPrev: h,
      u,
      cPrev: c,
      z,
      alpha,
      ctx,
      beta,
      gc,
      i: cell.i,
      f: cell.f,
      g: cell.g,
      o: cell.o,
      tc: cell.tc,
    });
    out.h.push(cell.h);
    out.alpha.push(alpha);
    h = cell.h;
    c = cell.c;
  }
  return out;
}

/** Gradients of the recurrence's inputs and weights (`dbA` is 0: softmax ignores a shift of all scores). */
export interface RecurrenceGrads<T> {
  /** `[B, R, K]` */
  dProjected: T;
  /** S × `[B, 4D]`: also the gradient of each step's gate pre-activations. */
  dEmbGates: T[];
  dh0: T;
  dc0: T;
  dhWeights: T;
  dhBias: T;
  /** `[K, 1]` */
  dA: T;
  dctxWeights: T;
  /** `[B, R, E]`, when asked for: Σ_t α_t ⊗ (β_t⊙dctx_t), the features' gradient through the contexts alone. */
  dFeatures?: T;
}

/**
 * Backpropagation through time: `dH`, `dAlpha` are the loss's gradients at each step's outputs h `[B, D]` and
 * α `[B, R]`.
 * σ' = σ(1 − σ) and tanh' = 1 − tanh² are taken from the saved outputs. `featureGrad`: also the features'
 * gradient through the contexts (their gradient through `projected` and h₀, c₀ is the caller's).
 */
export function recurrenceBackward<T>(
  o: Ops<T>,
  { B, S, D, R, K, E }: RecurrenceDims,
  features: T,
  projected: T,
  saved: StepSaved<T>[],
  dH: T[],
  dAlpha: T[],
  w: RecurrenceWeights<T>,
  featureGrad = false,
): RecurrenceGrads<T> {
  const hWeightsT = o.transpose(w.hWeights, [1, 0]); // [K + E + 4D, D]
  const ctxWeightsT = o.transpose(w.ctxWeights, [1, 0]); // [4D, E]
  const aRow = o.reshape(w.A, [1, 1, K]);
  let dh: T | null = null;
  let dc: T | null = null;
  let dP: T | null = null;
  let dA: T | null = null;
  const dGates: T[] = new Array(S);
  const dHp: T[] = new Array(S);
  const dCtx: T[] = []; // β_t⊙dctx_t, with featureGrad
  for (let t = S - 1; t >= 0; t--) {
    const s = saved[t];
    const next = o.scope(() => {
      const one = o.scalar(1);
      const sigmoidGrad = (y: T) => o.mul(y, o.sub(one, y));
      const tanhGrad = (y: T) => o.sub(one, o.mul(y, y));
      const dhT = dh ? o.add(dH[t], dh) : dH[t];
      const dcFromH = o.mul(o.mul(dhT, s.o), tanhGrad(s.tc));
      const dcT = dc ? o.add(dcFromH, dc) : dcFromH;
      const dG = o.concat(
        [
          o.mul(o.mul(dcT, s.g), sigmoidGrad(s.i)),
          o.mul(o.mul(dcT, s.cPrev), sigmoidGrad(s.f)),
          o.mul(o.mul(dcT, s.i), tanhGrad(s.g)),
          o.mul(o.mul(dhT, s.tc), sigmoidGrad(s.o)),
        ],
        1,
      ); // [B, 4D]
      const dgc = o.matMul(dG, ctxWeightsT); // [B, E]
      const db = o.mul(o.mul(dgc, s.ctx), sigmoidGrad(s.beta));
      const dctx = o.mul(dgc, s.beta);
      const att = attendBackward(o, { B, R }, s, { features, projected, aRow }, dAlpha[t], dctx);
      const dhp = o.concat([att.du, db, dG], 1); // [B, K + E + 4D]
      return {
        dh: o.matMul(dhp, hWeightsT),
        dc: o.mul(dcT, s.f),
        dG,
        dhp,
        dP: dP ? o.add(dP, att.dProjected) : att.dProjected,
        dA: dA ? o.add(dA, att.dA) : att.dA,
        dctx,
      };
    });
    o.release([dh, dc, dP, dA, featureGrad ? null : next.dctx]);
    ({ dh, dc, dP, dA } = next);
    dGates[t] = next.dG;
    dHp[t] = next.dhp;
    if (featureGrad) dCtx[t] = next.dctx;
  }
  const weights = o.scope(() => ({
    ...weightGrads(o, { S, D, K, E }, saved, dHp, dGates),
    dA: o.reshape(dA!, [K, 1]),
    dFeatures: featureGrad ? contextFeatureGrad(o, saved, dCtx) : undefined,
  }));
  o.release([hWeightsT, ctxWeightsT, aRow, dA, ...dHp, ...dCtx]);
  return { dProjected: dP!, dEmbGates: dGates, dh0: dh!, dc0: dc!, ...weights };
}

/** The recurrence's weight gradients: one matMul each over all S·B rows (time-major on both sides). */
function weightGrads<T>(
  o: Ops<T>,
  { D, K, E }: Pick<RecurrenceDims, "S" | "D" | "K" | "E">,
  saved: StepSaved<T>[],
  dHp: T[],
  dGates: T[],
): Pick<RecurrenceGrads<T>, "dhWeights" | "dhBias" | "dctxWeights"> {
  const rowsOf = (k: "hPrev" | "gc") =>
    o.concat(
      saved.map((s) => s[k]),
      0,
    ); // [S·B, D], [S·B, E]
  const [hPrevAll, gcAll] = [rowsOf("hPrev"), rowsOf("gc")];
  const dHpAll = o.concat(dHp, 0); // [S·B, K + E + 4D]
  return {
    dhWeights: o.matMul(o.transpose(hPrevAll, [1, 0]), dHpAll),
    dhBias: o.sum(o.split(dHpAll, [K + E, 4 * D], 1)[0], [0]),
    dctxWeights: o.matMul(o.transpose(gcAll, [1, 0]), o.concat(dGates, 0)),
  };
}

/** Σ_t α_t ⊗ dctx_t for each image: `[B, R, S] × [B, S, E]`, every step's α against its context gradient at once. */
function contextFeatureGrad<T>(o: Ops<T>, saved: StepSaved<T>[], dCtx: T[]): T {
  const alphas = o.stack(
    saved.map((s) => s.alpha),
    1,
  ); // [B, S, R]
  return o.matMul(o.transpose(alphas, [0, 2, 1]), o.stack(dCtx, 1));
}
