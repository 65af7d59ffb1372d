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
  allPairScores,
  gruGates,
  pairForward,
  regionVectors,
  wordVectors,
} from "./scan";

/** Parameter names as `ScanModel.namedVariables()` gives them. */
export const SCAN_PARAMS = [
  "img/W",
  "img/b",
  "embedding",
  "gru_fw/Wx",
  "gru_fw/Wh",
  "gru_fw/bx",
  "gru_fw/bh",
  "gru_bw/Wx",
  "gru_bw/Wh",
  "gru_bw/bx",
  "gru_bw/bh",
] as const;
type Param = (typeof SCAN_PARAMS)[number];

export function scanParamShape(c: ScanConfig, name: Param): number[] {
  const { vocabSize: V, embedSize: M, jointDim: d, regionDim: E } = c;
  if (name === "img/W") return [E, d];
  if (name === "img/b") return [d];
  if (name === "embedding") return [V, M];
  const part = name.split("/")[1];
  return part === "Wx" ? [M, 3 * d] : part === "Wh" ? [d, 3 * d] : [3 * d];
}

const EPS = 1e-8;

/** Graph inputs for the parameters that a graph uses. */
function paramInputs(g: OnnxGraph, cfg: ScanConfig, names: readonly Param[]): Record<Param, string> {
  return parameterInputs(g, names, (n) => scanParamShape(cfg, n)) as Record<Param, string>;
}

const IMG: Param[] = ["img/W", "img/b"];
const TXT: Param[] = SCAN_PARAMS.filter((n) => !IMG.includes(n));

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
  const { jointDim: d, regionDim: E } = cfg;
  const o = graphOps(new OnnxGraph("scan_forward"));
  const g = o.g;
  const p = paramInputs(g, cfg, [...(opts.images ? IMG : []), ...(opts.captions ? TXT : [])]);
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
 * Gradients of Σ_p dS_p · S(image_p, caption_p) with respect to the unit vectors, for pairs gathered from
 * `images [B, R, d]` and `captions [B, T, d]` by `imgIdx`, `capIdx` (`[P]`, int64): lib/matching/scan.ts
 * pairForward for the pairs, then its backward by hand — aggregation (LSE or mean over the queries) → cosine →
 * attended vectors and dot → softmax → l2norm → LeakyReLU → s = V·Eᵀ.
 *   t2i: queries are words, each attends over regions (softmax over r, l2norm over the real words t);
 *   i2t: queries are regions, each attends over the real words (softmax over t, l2norm over the regions r).
 * Returns `[dImages, dCaptions]`, the pairs' gradients summed into each image and caption.
 */
function addPairBackward(
  o: GraphOps,
  x: { images: string; captions: string; mask: string; imgIdx: string; capIdx: string; dS: string },
  { B, T, R, d }: { B: number; T: number; R: number; d: number },
  cfg: ScanConfig,
): [string, string] {
  const P = -1; // the number of pairs is the graph's one dynamic dimension: Reshape infers it
  const { mul, add, sub, div, sum, reshape, matMul: mm, c } = o;
  const t2i = cfg.direction === "t2i";
  const ctxAxis = t2i ? 1 : 2; // the softmax's axis of s[p, r, t]
  const normAxis = t2i ? 2 : 1; // the l2norm's axis
  const Q = t2i ? T : R; // queries per pair
  const tr = (v: string) => o.transpose(v, [0, 2, 1]);
  const V = o.gather(x.images, x.imgIdx); // [P, R, d]
  const Ew = o.gather(x.captions, x.capIdx); // [P, T, d]
  const m = reshape(o.gather(x.mask, x.capIdx), [P, 1, T]);
  const { s, alpha, a, dot, root, den, rowSim } = pairForward(o, { P, T }, V, Ew, m, cfg);
  // backward from dS [P]
  const dS1 = reshape(x.dS, [P, 1]);
  const mT = reshape(m, [P, T]);
  let drs: string;
  if (cfg.aggregation === "lse") {
    let e = o.exp(mul(rowSim, c(cfg.lambdaLse)));
    if (t2i) e = mul(e, mT);
    drs = mul(dS1, div(e, sum(e, [1], true)));
  } else drs = t2i ? mul(dS1, div(mT, sum(mT, [1], true))) : mul(dS1, c(1 / R)); // i2t: every region counts
  const ddot = div(drs, den);
  const dden = o.op1("Neg", [div(mul(drs, dot), mul(den, den))]);
  const live = o.op1("Cast", [o.op1("Greater", [root, c(EPS)])], [{ name: "to", i: 1 }]);
  const dsq = mul(div(dden, mul(root, c(2))), live); // [P, Q]
  const da = mul(reshape(mul(dsq, c(2)), [P, Q, 1]), a); // [P, Q, d]
  const ddot3 = reshape(ddot, t2i ? [P, 1, T] : [P, R, 1]);
  const dAlpha = add(t2i ? mm(V, tr(da)) : mm(da, tr(Ew)), mul(ddot3, s)); // [P, R, T]
  const dz = mul(alpha, sub(dAlpha, sum(mul(alpha, dAlpha), [ctxAxis], true))); // softmax
  // LeakyReLU′ and the l2norm's input, as pairForward formed them
  const slope = add(c(0.1), mul(o.op1("Cast", [o.op1("Greater", [s, c(0)])], [{ name: "to", i: 1 }]), c(0.9)));
  const l = t2i ? mul(mul(s, slope), m) : mul(s, slope);
  const dl = l2normBackward(o, l, mul(dz, c(cfg.lambdaSoftmax)), normAxis);
  const ds = add(mul(ddot3, alpha), mul(t2i ? mul(dl, m) : dl, slope));
  // s = V·Eᵀ, and the attended vectors: t2i a = αᵀV, i2t a = αE
  // t2i: α·da + ds·Ew as one product over the joined contraction axis (no [P, R, d] sum of two products)
  const dV = t2i ? mm(o.concat([alpha, ds], 2), o.concat([da, Ew], 1)) : mm(ds, Ew); // [P, R, d]
  const dE = t2i ? mm(tr(ds), V) : add(mm(tr(ds), V), mm(tr(alpha), da)); // [P, T, d]
  const scatter = (shape: number[], idx: string, upd: string) =>
    reshape(o.g.scatterAddRows(idx, reshape(upd, [P, shape[1] * shape[2]]), B), shape);
  return [scatter([B, R, d], x.imgIdx, dV), scatter([B, T, d], x.capIdx, dE)];
}

/**
 * The backward graph of the two encoders for a batch of B images and B captions of padded length T.
 * Inputs: the parameters, `features`, `ids`, `mask`, the forward's `Z`, `Yfw`, `Ybw`, `images`, `captions`, and
 * the P scored pairs `imgIdx`, `capIdx` (int64) with the loss's gradient `dS [P]` for each (LossPairs). P is
 * dynamic: one graph per (B, T) serves every number of pairs (the warm-up's counts change from step to step).
 * Outputs `grad/<param>` for every parameter.
 */
export function backwardGraph(cfg: ScanConfig, B: number, T: number, R: number): Uint8Array {
  const { jointDim: d, regionDim: E, vocabSize: V } = cfg;
  const o = graphOps(new OnnxGraph("scan_backward"));
  const g = o.g;
  const p = paramInputs(g, cfg, SCAN_PARAMS);
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
    imgIdx: g.input("imgIdx", ["P"], INT64),
    capIdx: g.input("capIdx", ["P"], INT64),
    dS: g.input("dS", ["P"]),
  };
  const [dImages, dCaptions] = addPairBackward(o, pairs, { B, T, R, d }, cfg);
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
  for (const name of SCAN_PARAMS) g.output(grads[name]!, `grad/${name}`, scanParamShape(cfg, name));
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

/** SCAN's encoders, scores and training gradients on ONNX Runtime (see the module comment). */
export class OnnxScan {
  private readonly sessions: SessionCache;
  constructor(
    readonly config: ScanConfig,
    readonly regions: number,
    readonly threads = 0,
  ) {
    this.sessions = SessionCache.require("OnnxScan", threads);
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
    for (const n of names) values[n] = [params[n], scanParamShape(this.config, n)];
    return graphFeeds(values);
  }

  /** The model's parameter values by name. */
  static parameters(model: ScanModel): Promise<Record<string, Float32Array>> {
    return parameterValues(model.namedVariables(), SCAN_PARAMS);
  }

  /** `[N, R, E]` features → unit region vectors `[N, R, d]` (row-major). */
  async encodeImages(params: Record<string, Float32Array>, features: Float32Array, N: number): Promise<Float32Array> {
    const s = await this.session(`img${N}`, () => forwardGraph(this.config, this.regions, { images: N }));
    const out = await s.run(
      this.feeds(params, IMG, { features: [features, [N, this.regions, this.config.regionDim]] }),
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
    const out = await s.run(this.feeds(params, TXT, { ids: [int64(ids), [C, T]], mask: [maskOf(lengths, T), [C, T]] }));
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
   * `allPairs` differentiates every picked pair also in the warm-up (gradientPairs off: the path before it).
   */
  async gradients(
    model: ScanModel,
    features: Float32Array,
    ids: Int32Array,
    lengths: readonly number[],
    T: number,
    opts: { backward?: boolean; negatives?: number; allPairs?: boolean } = {},
  ): Promise<{ loss: number; grads: tf.NamedTensorMap }> {
    const B = lengths.length,
      R = this.regions,
      d = this.config.jointDim;
    const params = await OnnxScan.parameters(model);
    const ids64 = int64(ids),
      mask = maskOf(lengths, T);
    const fwd = await this.session(`fwd${B}x${T}`, () =>
      forwardGraph(this.config, R, { images: B, captions: [B, T], scores: true }),
    );
    const inputs = {
      features: [features, [B, R, this.config.regionDim]],
      ids: [ids64, [B, T]],
      mask: [mask, [B, T]],
    } as Record<string, [Float32Array | BigInt64Array, number[]]>;
    const f = await fwd.run(this.feeds(params, SCAN_PARAMS, inputs));
    const pairs = hardestNegatives(f.scores.data as Float32Array, B, this.config.margin, opts.negatives ?? 1);
    if (opts.backward === false) return { loss: pairs.loss, grads: {} };
    const saved = {
      ...inputs,
      Z: [f.Z.data as Float32Array, [B * R, d]],
      Yfw: [f.Yfw.data as Float32Array, [B, T, d]],
      Ybw: [f.Ybw.data as Float32Array, [B, T, d]],
    } as typeof inputs;
    // the pairs' backward inside the graph (addPairBackward); in the warm-up's many-negative steps, where pairs
    // repeat and some do not violate, only over those with a gradient (with one negative that measured no faster)
    const many = (opts.negatives ?? 1) > 1 && !opts.allPairs;
    const used = many ? gradientPairs(pairs) : pairs;
    const P = used.imgIdx.length;
    const bwd = await this.session(`bwd${B}x${T}`, () => backwardGraph(this.config, B, T, R));
    const out = await bwd.run(
      this.feeds(params, SCAN_PARAMS, {
        ...saved,
        images: [f.images.data as Float32Array, [B, R, d]],
        captions: [f.captions.data as Float32Array, [B, T, d]],
        imgIdx: [int64(used.imgIdx), [P]],
        capIdx: [int64(used.capIdx), [P]],
        dS: [used.dS, [P]],
      }),
    );
    const grads: Record<string, Float32Array> = {};
    for (const n of SCAN_PARAMS) grads[n] = out[`grad/${n}`].data as Float32Array;
    return { loss: pairs.loss, grads: gradientTensors(model.namedVariables(), SCAN_PARAMS, grads) };
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
