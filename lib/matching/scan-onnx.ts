/**
 * SCAN (lib/matching/scan.ts) on ONNX Runtime's native CPU kernels: the encoders, the all-pairs cross-attention scores,
 * and the encoders' hand-written backward pass, each compiled to an ONNX graph (lib/engine/onnx/proto.ts).
 *
 * Why: on tfjs-wasm the cross attention of one 128 × 128 batch takes 6 s forward and 33 s with its gradient
 * (its [N, C, R, T] elementwise chain and batched matMuls), and 1,000 × 5,000 dev scores would take half an
 * hour. ONNX Runtime runs the same chain on every core in a fraction of that.
 *
 * A training step (`OnnxScan.gradients`) is split where the work is:
 *   1. ONNX forward: region vectors, word vectors (bidirectional GRU) and all B × B scores of the batch;
 *   2. in JS, the hinge loss with the hardest negatives (VSE++ max violation) from those scores: it depends on
 *      3·B scores only — each image with its caption, with its hardest caption, each caption with its hardest
 *      image (`hardestNegatives`); the gradient of a max is the gradient at its argmax, so differentiating just
 *      those pairs gives the full batch loss's gradient (tested);
 *   3. ONNX backward: the pairs' cross attention backward by hand (`addPairBackward`, both directions), then
 *      l2norm, region projection and GRU backpropagation through time by hand, weight gradients as one matMul
 *      each over the whole batch (as lib/captioning/bptt.ts does for the decoder).
 * Graphs are built per shape (B, T) and cached, like lib/captioning/onnx-train.ts.
 */
import * as tf from "@tensorflow/tfjs";
import { INT64, OnnxGraph } from "../engine/onnx/proto";
import { GraphOps, graphOps } from "../engine/onnx/ops";
import { gradientTensors, graphFeeds, int64, parameterInputs, parameterValues } from "../engine/onnx/params";
import { SessionCache } from "../engine/onnx/session";
import {
  GruWeights,
  ScanConfig,
  ScanModel,
  ScanParam,
  allPairScores,
  crossAttention,
  gruGates,
  regionVectors,
  scanParams,
  wordVectors,
} from "./scan";

type Param = ScanParam;

/** The parameters' names, in `ScanModel.variables` order. */
export const scanParamNames = (c: ScanConfig): Param[] => scanParams(c).map((p) => p.name);

const EPS = 1e-8;

/** Graph inputs for the parameters that a graph uses. */
function paramInputs(g: OnnxGraph, cfg: ScanConfig, names: readonly Param[]): Record<Param, string> {
  const shapes = new Map(scanParams(cfg).map((p) => [p.name, p.shape]));
  return parameterInputs(g, names, (n) => shapes.get(n)!) as Record<Param, string>;
}

/** The image encoder's parameters, and the caption encoder's (the rest). */
const IMG: Param[] = ["img/W", "img/b"];
const textParams = (c: ScanConfig): Param[] => scanParamNames(c).filter((n) => !IMG.includes(n));

/**
 * The forward graph. `images: N` adds `features [N, R, E]` → `images [N, R, d]` (and `Z`, the projection before
 * l2norm); `captions: [C, T]` adds `ids [C, T]` (int64), `mask [C, T]` → `captions [C, T, d]` (and `Yfw`, `Ybw`,
 * the GRU outputs); `scores: true` (needs N = C) adds the `[N, C]` scores.
 */
export function forwardGraph(
  cfg: ScanConfig,
  R: number,
  opts: { images?: number; captions?: [number, number]; scores?: boolean },
): Uint8Array {
  const { jointDim: d, encoderDim: E } = cfg;
  const o = graphOps(new OnnxGraph("scan_forward"));
  const g = o.g;
  const p = paramInputs(g, cfg, [...(opts.images ? IMG : []), ...(opts.captions ? textParams(cfg) : [])]);
  let images = "",
    captions = "",
    mask = "";
  if (opts.images) {
    const N = opts.images;
    const r = regionVectors(o, { N, R, E, d }, g.input("features", [N, R, E]), p["img/W"], p["img/b"]);
    images = r.v;
    g.output(r.Z, "Z", [N * R, d]);
    g.output(images, "images", [N, R, d]);
  }
  if (opts.captions) {
    const [C, T] = opts.captions;
    mask = g.input("mask", [C, T]);
    const gru = (["fw", "bw"] as const).map((dir) => ({
      Wx: p[`gru_${dir}/Wx`],
      Wh: p[`gru_${dir}/Wh`],
      bx: p[`gru_${dir}/bx`],
      bh: p[`gru_${dir}/bh`],
    })) as [GruWeights<string>, GruWeights<string>];
    const w = wordVectors(o, { C, T, d }, p.embedding, g.input("ids", [C, T], INT64), mask, gru);
    captions = w.e;
    g.output(w.yFw, "Yfw", [C, T, d]);
    g.output(w.yBw, "Ybw", [C, T, d]);
    g.output(captions, "captions", [C, T, d]);
  }
  if (opts.scores) {
    if (!opts.images || !opts.captions || opts.images !== opts.captions[0])
      throw new Error("forwardGraph: scores need as many images as captions");
    const [N, [C, T]] = [opts.images, opts.captions];
    g.output(allPairScores(o, { N, C, T, R, d }, images, captions, mask, cfg), "scores", [N, C]);
  }
  return g.toBytes(17);
}

/** Scores only: `images [N, R, d]`, `captions [C, T, d]`, `mask [C, T]` → `scores [N, C]`. */
export function scoresGraph(cfg: ScanConfig, N: number, C: number, T: number, R: number): Uint8Array {
  const o = graphOps(new OnnxGraph("scan_scores"));
  const g = o.g;
  const d = cfg.jointDim;
  const images = g.input("images", [N, R, d]);
  const captions = g.input("captions", [C, T, d]);
  g.output(allPairScores(o, { N, C, T, R, d }, images, captions, g.input("mask", [C, T]), cfg), "scores", [N, C]);
  return g.toBytes(17);
}

/** dx of y = l2norm(x) along `axis` (lib/matching/scan.ts l2normOf): dy/q − x·Σ(dy·x)/(q²·n), n = √(Σx²+1e-16), q = n + ε. */
function l2normBackward(o: GraphOps, x: string, dy: string, axis: number): string {
  const n = o.sqrt(o.add(o.sum(o.mul(x, x), [axis], true), o.c(1e-16)));
  const q = o.add(n, o.c(EPS));
  const proj = o.sum(o.mul(dy, x), [axis], true);
  return o.sub(o.div(dy, q), o.mul(x, o.div(proj, o.mul(o.mul(q, q), n))));
}

/**
 * Gradients of Σ dS · S(image, caption) over the scored pairs with respect to the unit vectors `images [B, R, d]`
 * and `captions [B, T, d]`. The pairs come in groups of K captions of one image (`PairGroups`): group g pairs
 * image `groupImage[g]` with the captions `slots [G, K]` (G the graph's dynamic dimension; unused slots have dS 0),
 * so lib/matching/scan.ts crossAttention with K captions per image recomputes the forward, and its backward by
 * hand — aggregation (LSE or mean over the queries) → cosine → Σα·s and |a|² = αᵀGα → softmax → l2norm →
 * LeakyReLU → s = V·Eᵀ — ends in products batched over the groups: no tensor of one d-vector per pair and region.
 *   t2i: queries are words, each attends over regions (softmax over r, l2norm over the real words t), G = VVᵀ;
 *   i2t: queries are regions, each attends over the real words (softmax over t, l2norm over the regions r), G = EEᵀ.
 * Returns `[dImages, dCaptions]`: the groups' gradients summed into their images and the slots' into their
 * captions (`sumRows` with the plans `images`, `captions` of PairGroups).
 */
function addPairBackward(
  o: GraphOps,
  x: { images: string; captions: string; mask: string; groupImage: string; slots: string; dS: string },
  sums: { images: [string, string]; captions: [string, string] },
  { B, T, R, d, K }: { B: number; T: number; R: number; d: number; K: number },
  cfg: ScanConfig,
): [string, string] {
  const G = -1; // groups: the graph's one dynamic dimension, Reshape infers it
  const { mul, add, sub, div, sum, reshape, matMul: mm, c } = o;
  const t2i = cfg.direction === "t2i";
  const tr = (v: string) => o.transpose(v, [0, 2, 1]);
  const V = o.gather(x.images, x.groupImage); // [G, R, d]
  const Eg = o.gather(x.captions, x.slots); // [G, K, T, d]
  const mg = o.gather(x.mask, x.slots); // [G, K, T]
  const dims = { N: G, C: K, T, R, d, perImage: true };
  const { s, alpha, gramAlpha, dot, root, den, rowSim } = crossAttention(o, dims, V, Eg, mg, cfg);
  // backward from dS [G, K]; per query q: t2i [G, K, T], i2t [G, R, K]
  let drs: string;
  if (t2i) {
    const dS3 = reshape(x.dS, [G, K, 1]);
    if (cfg.aggregation === "lse") {
      const e = mul(o.exp(mul(rowSim, c(cfg.lambdaLse))), mg);
      drs = mul(dS3, div(e, sum(e, [2], true)));
    } else drs = mul(dS3, div(mg, sum(mg, [2], true)));
  } else {
    const dS3 = reshape(x.dS, [G, 1, K]);
    if (cfg.aggregation === "lse") {
      const e = o.exp(mul(rowSim, c(cfg.lambdaLse)));
      drs = mul(dS3, div(e, sum(e, [1], true)));
    } else drs = mul(dS3, c(1 / R)); // every region counts
  }
  const ddot = div(drs, den);
  const dden = o.op1("Neg", [div(mul(drs, dot), mul(den, den))]);
  const live = o.op1("Cast", [o.op1("Greater", [root, c(EPS)])], [{ name: "to", i: 1 }]);
  const dsq2 = mul(div(dden, root), live); // 2·∂/∂|a|²
  const q4 = (v: string) => reshape(v, t2i ? [G, 1, K, T] : [G, R, K, 1]); // a per-query value against s[g, r, k, t]
  // α's gradient: from Σα·s, and from |a|² = αᵀGα (2·dsq ⊙ Gα)
  const gA = t2i ? reshape(gramAlpha, [G, R, K, T]) : o.transpose(reshape(gramAlpha, [G, K, R, T]), [0, 2, 1, 3]);
  const dAlpha = add(mul(q4(ddot), s), mul(q4(dsq2), gA));
  const dz = mul(alpha, sub(dAlpha, sum(mul(alpha, dAlpha), [t2i ? 1 : 3], true))); // softmax
  // LeakyReLU′ and the l2norm's input, as crossAttention formed them
  const slope = add(c(0.1), mul(o.op1("Cast", [o.op1("Greater", [s, c(0)])], [{ name: "to", i: 1 }]), c(0.9)));
  const mask4 = reshape(mg, [G, 1, K, T]);
  const l = t2i ? mul(mul(s, slope), mask4) : mul(s, slope);
  const dl = l2normBackward(o, l, mul(dz, c(cfg.lambdaSoftmax)), t2i ? 3 : 1);
  const ds = reshape(add(mul(q4(ddot), alpha), mul(t2i ? mul(dl, mask4) : dl, slope)), [G, R, K * T]);
  const EgRows = reshape(Eg, [G, K * T, d]);
  // s = V·Eᵀ (and t2i's G = VVᵀ, whose gradient Σ dsq·ααᵀ is symmetric): dV = ds·E (+ 2·dG·V), dE = dsᵀ·V
  let dV: string, dE: string;
  if (t2i) {
    const a3 = reshape(alpha, [G, R, K * T]);
    const dG2 = mm(mul(a3, reshape(dsq2, [G, 1, K * T])), tr(a3)); // [G, R, R]
    dV = mm(o.concat([ds, dG2], 2), o.concat([EgRows, V], 1)); // one product over the joined contraction axis
    dE = mm(tr(ds), V); // [G, K·T, d]
  } else {
    // i2t's G = EEᵀ per slot: dE += 2·dG·E with dG = αᵀ·diag(dsq)·α
    const aS = reshape(o.transpose(alpha, [0, 2, 1, 3]), [G, R, T]); // [G·K, R, T]
    const w = reshape(o.transpose(dsq2, [0, 2, 1]), [G, R, 1]);
    const dG2 = mm(tr(mul(aS, w)), aS); // [G·K, T, T]
    dV = mm(ds, EgRows);
    dE = add(reshape(mm(tr(ds), V), [G, T, d]), mm(dG2, reshape(Eg, [G, T, d])));
  }
  const dImages = reshape(sumRows(o, reshape(dV, [G, R * d]), sums.images, R * d), [B, R, d]);
  const dCaptions = reshape(sumRows(o, reshape(dE, [G, T * d]), sums.captions, T * d), [B, T, d]);
  return [dImages, dCaptions];
}

/**
 * Rows `[X, W]` summed into targets by a two-level plan (`sumPlan`): `first [H, J₀]` gathers chunks of up to J₀
 * rows (X, a zero row, pads) and sums each, `second [targets, J₁]` gathers each target's chunk sums (H pads) and
 * sums them. Exact and deterministic, and O(rows) where a one-hot product is O(rows × targets) (ONNX Runtime's
 * ScatterND with reduction "add" loses updates to repeated indices on several threads).
 */
function sumRows(o: GraphOps, rows: string, [first, second]: [string, string], W: number): string {
  const level = (x: string, idx: string) => o.sum(o.gather(o.concat([x, o.zeros([1, W])], 0), idx), [1]);
  return level(level(rows, first), second);
}

/**
 * The backward graph of the two encoders for a batch of B images and B captions of padded length T.
 * Inputs: the parameters, `features`, `ids`, `mask`, the forward's `Z`, `Yfw`, `Ybw`, `images`, `captions`, and
 * the P scored pairs `imgIdx`, `capIdx` (int64) with the loss's gradient `dS [P]` for each (LossPairs). P is
 * dynamic: one graph per (B, T) serves every number of pairs (the warm-up's counts change from step to step).
 * Outputs `grad/<param>` for every parameter.
 */
export function backwardGraph(cfg: ScanConfig, B: number, T: number, R: number, K: number): Uint8Array {
  const { jointDim: d, encoderDim: E, vocabSize: V } = cfg;
  const o = graphOps(new OnnxGraph("scan_backward"));
  const g = o.g;
  const p = paramInputs(g, cfg, scanParamNames(cfg));
  const F2 = o.reshape(g.input("features", [B, R, E]), [B * R, E]);
  const ids = o.reshape(g.input("ids", [B, T], INT64), [B * T]);
  const mask = g.input("mask", [B, T]);
  const Z = g.input("Z", [B * R, d]);
  const Y = { fw: g.input("Yfw", [B, T, d]), bw: g.input("Ybw", [B, T, d]) };
  // the loss's gradients with respect to the unit vectors, through the P scored pairs
  const pairs = {
    images: g.input("images", [B, R, d]),
    captions: g.input("captions", [B, T, d]),
    mask,
    groupImage: g.input("groupImage", ["G"], INT64),
    slots: g.input("slots", ["G", K], INT64),
    dS: g.input("dS", ["G", K]),
  };
  const plan = (name: string): [string, string] => [
    g.input(`${name}First`, [`${name}H`, SUM_CHUNK], INT64),
    g.input(`${name}Second`, [B, `${name}J`], INT64),
  ];
  const sums = { images: plan("images"), captions: plan("captions") };
  const [dImages, dCaptions] = addPairBackward(o, pairs, sums, { B, T, R, d, K }, cfg);
  const grads: Partial<Record<Param, string>> = {};

  // regions: V = l2norm(F·W + b)
  const dZ = l2normBackward(o, Z, o.reshape(dImages, [B * R, d]), 1);
  grads["img/W"] = o.op1("Gemm", [F2, dZ], [{ name: "transA", i: 1 }]);
  grads["img/b"] = o.sum(dZ, [0]);

  // words: e = l2norm(½(y_fw + y_bw)), each direction a masked GRU
  const A = o.mul(o.add(Y.fw, Y.bw), o.c(0.5));
  const dY = o.mul(l2normBackward(o, A, dCaptions, 2), o.c(0.5)); // [B, T, d], the same for both directions
  const x = o.gather(p.embedding, ids); // [B·T, M]
  const dX: string[] = [];
  for (const dir of ["fw", "bw"] as const) {
    const w = { Wx: p[`gru_${dir}/Wx`], Wh: p[`gru_${dir}/Wh`], bx: p[`gru_${dir}/bx`], bh: p[`gru_${dir}/bh`] };
    const r = gruBackward(o, { B, T, d }, x, mask, Y[dir], dY, w, dir === "bw");
    grads[`gru_${dir}/Wh`] = r.dWh;
    grads[`gru_${dir}/bh`] = r.dbh;
    grads[`gru_${dir}/Wx`] = r.dWx;
    grads[`gru_${dir}/bx`] = r.dbx;
    dX.push(r.dX);
  }
  grads.embedding = g.scatterAddRows(ids, o.add(dX[0], dX[1]), V);
  for (const { name, shape } of scanParams(cfg)) g.output(grads[name]!, `grad/${name}`, shape);
  return g.toBytes(17);
}

/**
 * Backpropagation through one direction of wordVectors' masked GRU, from its outputs `y [B, T, d]` and their
 * gradient `dY`; the step-independent factors for all steps at once, then the steps in reverse of processing
 * order carrying the state's gradient, then each weight gradient as one matMul over all B·T rows (rows b·T + t).
 */
function gruBackward(
  o: GraphOps,
  { B, T, d }: { B: number; T: number; d: number },
  x: string,
  mask: string,
  y: string,
  dY: string,
  w: GruWeights<string>,
  reverse: boolean,
) {
  const one = o.c(1);
  const dYt = o.split(dY, Array(T).fill(1), 1).map((a) => o.reshape(a, [B, d]));
  const maskT = o.split(mask, Array(T).fill(1), 1); // T × [B, 1]
  // the state each step started from: the previous output in processing order (the masked steps' gradient is 0)
  const zeros = o.zeros([B, 1, d]);
  const [head, tail] = o.split(y, reverse ? [1, T - 1] : [T - 1, 1], 1);
  const hPrev = o.reshape(reverse ? o.concat([tail, zeros], 1) : o.concat([zeros, head], 1), [B * T, d]);
  const { r, z, n, hn } = gruGates(o, o.add(o.matMul(x, w.Wx), w.bx), o.add(o.matMul(hPrev, w.Wh), w.bh), d);
  const perStep = (a: string) => o.split(o.reshape(a, [B, T, d]), Array(T).fill(1), 1).map((v) => o.reshape(v, [B, d]));
  const oneMinusZ = perStep(o.sub(one, z));
  const hMinusN = perStep(o.sub(hPrev, n));
  const tanhGrad = perStep(o.sub(one, o.mul(n, n)));
  const rGrad = perStep(o.mul(r, o.sub(one, r)));
  const zGrad = perStep(o.mul(z, o.sub(one, z)));
  const [zT, rT, hnT] = [perStep(z), perStep(r), perStep(hn)];
  const WhT = o.transpose(w.Wh, [1, 0]);
  const dGh: string[] = new Array(T);
  const dGx: string[] = new Array(T);
  let dState = "";
  for (let k = 0; k < T; k++) {
    const t = reverse ? k : T - 1 - k; // reverse of processing
    const dh = o.mul(maskT[t], dState ? o.add(dState, dYt[t]) : dYt[t]);
    const dan = o.mul(o.mul(dh, oneMinusZ[t]), tanhGrad[t]);
    const dar = o.mul(o.mul(dan, hnT[t]), rGrad[t]);
    const daz = o.mul(o.mul(dh, hMinusN[t]), zGrad[t]);
    dGh[t] = o.concat([dar, daz, o.mul(dan, rT[t])], 1);
    dGx[t] = o.concat([dar, daz, dan], 1);
    const through = o.add(o.mul(dh, zT[t]), o.matMul(dGh[t], WhT));
    dState = dState ? o.add(through, o.mul(dState, o.sub(one, maskT[t]))) : through;
  }
  const rows = (xs: string[]) => o.reshape(o.stack(xs, 1), [B * T, 3 * d]);
  const [DGh, DGx] = [rows(dGh), rows(dGx)];
  const gemmT = (a: string, b: string) => o.op1("Gemm", [a, b], [{ name: "transA", i: 1 }]);
  return {
    dWh: gemmT(hPrev, DGh),
    dbh: o.sum(DGh, [0]),
    dWx: gemmT(x, DGx),
    dbx: o.sum(DGx, [0]),
    dX: o.op1("Gemm", [DGx, w.Wx], [{ name: "transB", i: 1 }]),
  };
}

type OrtSession = import("onnxruntime-node").InferenceSession;

/**
 * The pairs that the hinge loss with the k hardest negatives depends on, from a batch's `[B, B]` scores
 * (row-major, matches on the diagonal): each image with its own caption (pairs 0…B−1), then each image with its
 * k highest-scoring other captions, then each caption with its k highest-scoring other images. `own[p]` is
 * the matching pair that negative p is measured against; `dS` the loss's gradient with respect to each pair's
 * score; `loss` = Σ over negatives of [margin − S(own) + S(negative)]₊ (k = 1: VSE++ max violation).
 */
export interface LossPairs {
  loss: number;
  imgIdx: number[];
  capIdx: number[];
  own: number[];
  dS: Float32Array;
}

export function hardestNegatives(scores: Float32Array, B: number, margin: number, k = 1): LossPairs {
  if (k < 1 || k > B - 1) throw new Error(`hardestNegatives: k = ${k} negatives, but a batch of ${B} has 1…${B - 1}`);
  const own = Array.from({ length: B }, (_, i) => i);
  const imgIdx = [...own],
    capIdx = [...own],
    owner = [...own];
  const top = (at: (j: number) => number, skip: number) =>
    Array.from({ length: B }, (_, j) => j)
      .filter((j) => j !== skip)
      .sort((a, b) => at(b) - at(a))
      .slice(0, k);
  for (let i = 0; i < B; i++)
    for (const c of top((c) => scores[i * B + c], i)) {
      imgIdx.push(i);
      capIdx.push(c);
      owner.push(i);
    }
  for (let c = 0; c < B; c++)
    for (const i of top((i) => scores[i * B + c], c)) {
      imgIdx.push(i);
      capIdx.push(c);
      owner.push(c);
    }
  const dS = new Float32Array(imgIdx.length);
  let loss = 0;
  for (let p = B; p < imgIdx.length; p++) {
    const o = owner[p];
    const v = margin - scores[o * B + o] + scores[imgIdx[p] * B + capIdx[p]];
    if (v > 0) {
      loss += v;
      dS[p] += 1;
      dS[o] -= 1;
    }
  }
  return { loss, imgIdx, capIdx, own: owner, dS };
}

/**
 * The pairs that carry gradient, for the backward graph: a pair picked twice (an image's hard negative and its
 * caption's) once with its dS summed, pairs with dS = 0 (no violation, so nothing to differentiate) left out
 * (one (0, 0, dS = 0) stands in when none is left). Exact: dS are whole numbers, and the dropped pairs' terms are zero.
 */
export function gradientPairs(p: LossPairs): { imgIdx: number[]; capIdx: number[]; dS: Float32Array } {
  const at = new Map<string, number>();
  const imgIdx: number[] = [],
    capIdx: number[] = [],
    dS: number[] = [];
  p.imgIdx.forEach((i, k) => {
    const key = `${i},${p.capIdx[k]}`;
    const j = at.get(key);
    if (j !== undefined) dS[j] += p.dS[k];
    else {
      at.set(key, dS.length);
      imgIdx.push(i);
      capIdx.push(p.capIdx[k]);
      dS.push(p.dS[k]);
    }
  });
  const keep = dS.map((_, k) => k).filter((k) => dS[k] !== 0);
  if (keep.length === 0) return { imgIdx: [0], capIdx: [0], dS: Float32Array.from([0]) };
  const pick = (xs: number[]) => keep.map((k) => xs[k]);
  return { imgIdx: pick(imgIdx), capIdx: pick(capIdx), dS: Float32Array.from(pick(dS)) };
}

/** Rows per first-level chunk of `sumRows`. */
const SUM_CHUNK = 8;

/**
 * The plan of `sumRows` for summing rows into targets: `lists[t]` the rows of target t (rows are 0…X−1; X is the
 * zero row), cut into chunks of `SUM_CHUNK`. Returns `first` `[H, SUM_CHUNK]` and `second` `[targets, J]`
 * (row-major), H and J.
 */
export function sumPlan(
  lists: readonly number[][],
  X: number,
): { first: number[]; H: number; second: number[]; J: number } {
  const first: number[] = [];
  const chunksOf = lists.map((rows) => {
    const ids: number[] = [];
    for (let i = 0; i < rows.length; i += SUM_CHUNK) {
      const chunk = rows.slice(i, i + SUM_CHUNK);
      ids.push(first.length / SUM_CHUNK);
      first.push(...chunk, ...new Array<number>(SUM_CHUNK - chunk.length).fill(X));
    }
    return ids;
  });
  if (first.length === 0) first.push(...new Array<number>(SUM_CHUNK).fill(X)); // one chunk of zeros
  const H = first.length / SUM_CHUNK;
  const J = Math.max(1, ...chunksOf.map((ids) => ids.length));
  const second = chunksOf.flatMap((ids) => [...ids, ...new Array<number>(J - ids.length).fill(H)]);
  return { first, H, second, J };
}

/**
 * Scored pairs in groups of K captions of one image for the backward graph: each image's pairs in order, K at a
 * time (an image that is many captions' hardest negative fills several groups; the last is padded with caption
 * 0 at dS 0, which contributes nothing), with the plans that sum the groups into images and the slots into
 * captions.
 */
export function pairGroups(
  p: { imgIdx: number[]; capIdx: number[]; dS: Float32Array },
  B: number,
  K: number,
): {
  G: number;
  groupImage: number[];
  slots: number[];
  dS: Float32Array;
  images: ReturnType<typeof sumPlan>;
  captions: ReturnType<typeof sumPlan>;
} {
  const byImage: number[][] = Array.from({ length: B }, () => []);
  p.imgIdx.forEach((i, k) => byImage[i].push(k));
  const groupImage: number[] = [],
    slots: number[] = [],
    dS: number[] = [];
  const groupsOf: number[][] = Array.from({ length: B }, () => []);
  const slotsOf: number[][] = Array.from({ length: B }, () => []);
  byImage.forEach((pairs, n) => {
    for (let i = 0; i < pairs.length; i += K) {
      groupsOf[n].push(groupImage.length);
      groupImage.push(n);
      for (let k = 0; k < K; k++) {
        const pair = pairs[i + k];
        if (pair !== undefined) slotsOf[p.capIdx[pair]].push(slots.length);
        slots.push(pair === undefined ? 0 : p.capIdx[pair]);
        dS.push(pair === undefined ? 0 : p.dS[pair]);
      }
    }
  });
  const G = groupImage.length;
  return {
    G,
    groupImage,
    slots,
    dS: Float32Array.from(dS),
    images: sumPlan(groupsOf, G),
    captions: sumPlan(slotsOf, G * K),
  };
}

/** SCAN's encoders, scores and training gradients on ONNX Runtime (see the module comment). */
export class OnnxScan {
  private readonly sessions: SessionCache;
  /** The parameters' shapes by name, in `scanParams` order. */
  private readonly shapes: Map<Param, number[]>;
  constructor(
    readonly config: ScanConfig,
    readonly regions: number,
    readonly threads = 0,
  ) {
    this.sessions = SessionCache.require("OnnxScan", threads);
    this.shapes = new Map(scanParams(config).map((p) => [p.name, p.shape]));
  }

  private session(key: string, build: () => Uint8Array): Promise<OrtSession> {
    return this.sessions.get(key, build);
  }

  private feeds(
    params: Record<string, Float32Array>,
    names: readonly Param[],
    extra: Record<string, [Float32Array | BigInt64Array, number[]]>,
  ) {
    const values = { ...extra };
    for (const n of names) values[n] = [params[n], this.shapes.get(n)!];
    return graphFeeds(values);
  }

  /** The model's parameter values by name. */
  static parameters(model: ScanModel): Promise<Record<string, Float32Array>> {
    return parameterValues(model.namedVariables(), scanParamNames(model.config));
  }

  /** `[N, R, E]` features → unit region vectors `[N, R, d]` (row-major). */
  async encodeImages(params: Record<string, Float32Array>, features: Float32Array, N: number): Promise<Float32Array> {
    const s = await this.session(`img${N}`, () => forwardGraph(this.config, this.regions, { images: N }));
    const out = await s.run(
      this.feeds(params, IMG, { features: [features, [N, this.regions, this.config.encoderDim]] }),
    );
    return out.images.data as Float32Array;
  }

  /** Padded ids `[C, T]` with their lengths → unit word vectors `[C, T, d]` (zero at padding). */
  async encodeCaptions(
    params: Record<string, Float32Array>,
    ids: ArrayLike<number>,
    lengths: readonly number[],
    T: number,
  ): Promise<Float32Array> {
    const C = lengths.length;
    const s = await this.session(`cap${C}x${T}`, () => forwardGraph(this.config, this.regions, { captions: [C, T] }));
    const out = await s.run(
      this.feeds(params, textParams(this.config), { ids: [int64(ids), [C, T]], mask: [maskOf(lengths, T), [C, T]] }),
    );
    return out.captions.data as Float32Array;
  }

  /** Scores `[N, C]` (row-major) of unit vectors `images [N, R, d]` against `captions [C, T, d]`. */
  async scores(
    images: Float32Array,
    N: number,
    captions: Float32Array,
    lengths: readonly number[],
    T: number,
  ): Promise<Float32Array> {
    const C = lengths.length,
      R = this.regions,
      d = this.config.jointDim;
    const s = await this.session(`scores${N}x${C}x${T}`, () => scoresGraph(this.config, N, C, T, R));
    const out = await s.run(
      graphFeeds({ images: [images, [N, R, d]], captions: [captions, [C, T, d]], mask: [maskOf(lengths, T), [C, T]] }),
    );
    return out.scores.data as Float32Array;
  }

  /**
   * One training step's loss and gradients (tfjs tensors keyed by variable name, for tfjs optimisers) for a
   * batch of B images `[B, R, E]` matched with B captions `[B, T]` (padded with 0), with the hinge loss over the
   * `negatives` hardest negatives (1: VSE++ max violation). `backward: false` gives the loss alone (validation);
   * `allPairs` differentiates every picked pair also in the warm-up (gradientPairs off: the path before it);
   * `groupSize` sets the backward's K captions per group (PairGroups; the same gradients for any K).
   */
  async gradients(
    model: ScanModel,
    features: Float32Array,
    ids: Int32Array,
    lengths: readonly number[],
    T: number,
    opts: { backward?: boolean; negatives?: number; allPairs?: boolean; groupSize?: number } = {},
  ): Promise<{ loss: number; grads: tf.NamedTensorMap }> {
    const B = lengths.length,
      R = this.regions,
      d = this.config.jointDim;
    const params = await OnnxScan.parameters(model);
    const names = [...this.shapes.keys()];
    const ids64 = int64(ids),
      mask = maskOf(lengths, T);
    const fwd = await this.session(`fwd${B}x${T}`, () =>
      forwardGraph(this.config, R, { images: B, captions: [B, T], scores: true }),
    );
    const inputs = {
      features: [features, [B, R, this.config.encoderDim]],
      ids: [ids64, [B, T]],
      mask: [mask, [B, T]],
    } as Record<string, [Float32Array | BigInt64Array, number[]]>;
    const f = await fwd.run(this.feeds(params, names, inputs));
    const pairs = hardestNegatives(f.scores.data as Float32Array, B, this.config.margin, opts.negatives ?? 1);
    if (opts.backward === false) return { loss: pairs.loss, grads: {} };
    const saved = {
      ...inputs,
      Z: [f.Z.data as Float32Array, [B * R, d]],
      Yfw: [f.Yfw.data as Float32Array, [B, T, d]],
      Ybw: [f.Ybw.data as Float32Array, [B, T, d]],
    } as typeof inputs;
    // the pairs' backward inside the graph (addPairBackward), over the pairs with a gradient (a pair picked twice
    // once, pairs that do not violate left out), grouped by image
    // groups of K: about an image's share of the pairs (3 with one negative, ~30 in the warm-up)
    const K = opts.groupSize ?? ((opts.negatives ?? 1) > 1 ? 16 : 4);
    const gp = pairGroups(opts.allPairs ? pairs : gradientPairs(pairs), B, K);
    const plan = (name: string, q: ReturnType<typeof sumPlan>) => ({
      [`${name}First`]: [int64(q.first), [q.H, SUM_CHUNK]] as [BigInt64Array, number[]],
      [`${name}Second`]: [int64(q.second), [B, q.J]] as [BigInt64Array, number[]],
    });
    const bwd = await this.session(`bwd${B}x${T}x${K}`, () => backwardGraph(this.config, B, T, R, K));
    const out = await bwd.run(
      this.feeds(params, names, {
        ...saved,
        images: [f.images.data as Float32Array, [B, R, d]],
        captions: [f.captions.data as Float32Array, [B, T, d]],
        groupImage: [int64(gp.groupImage), [gp.G]],
        slots: [int64(gp.slots), [gp.G, K]],
        dS: [gp.dS, [gp.G, K]],
        ...plan("images", gp.images),
        ...plan("captions", gp.captions),
      }),
    );
    const grads: Record<string, Float32Array> = {};
    for (const n of names) grads[n] = out[`grad/${n}`].data as Float32Array;
    return { loss: pairs.loss, grads: gradientTensors(model.namedVariables(), names, grads) };
  }

  async dispose(): Promise<void> {
    await this.sessions.release();
  }
}

function maskOf(lengths: readonly number[], T: number): Float32Array {
  const m = new Float32Array(lengths.length * T);
  lengths.forEach((n, c) => m.fill(1, c * T, c * T + n));
  return m;
}
