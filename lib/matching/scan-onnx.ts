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
import { SessionCache, loadOrt } from "../engine/onnx/session";
import { ScanConfig, ScanModel } from "./scan";

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
type Op = (
  type: string,
  inputs: string[],
  attrs?: { name: string; i?: number; ints?: number[]; f?: number }[],
) => string;

/** Small helpers over a graph, named as the math reads. */
function ops(g: OnnxGraph) {
  const op1: Op = (type, inputs, attrs = []) => g.op(type, inputs, attrs)[0];
  const c = (v: number) => g.constFloat([v], []);
  const h = {
    op1,
    c,
    mm: (a: string, b: string) => op1("MatMul", [a, b]),
    add: (a: string, b: string) => op1("Add", [a, b]),
    sub: (a: string, b: string) => op1("Sub", [a, b]),
    mul: (a: string, b: string) => op1("Mul", [a, b]),
    div: (a: string, b: string) => op1("Div", [a, b]),
    reshape: (a: string, dims: number[]) => op1("Reshape", [a, g.constInt(dims)]),
    transpose: (a: string, perm: number[]) => op1("Transpose", [a], [{ name: "perm", ints: perm }]),
    concat: (xs: string[], axis: number) => (xs.length === 1 ? xs[0] : op1("Concat", xs, [{ name: "axis", i: axis }])),
    split: (a: string, sizes: number[], axis: number) =>
      g.op("Split", [a, g.constInt(sizes)], [{ name: "axis", i: axis }], sizes.length),
    sum: (a: string, axes: number[], keep = 0) =>
      op1("ReduceSum", [a, g.constInt(axes)], [{ name: "keepdims", i: keep }]),
    /** x / (√(Σx² + 1e-16) + 1e-8) along `axis` (lib/matching/scan.ts l2norm). */
    l2norm: (x: string, axis: number) =>
      h.div(x, h.add(op1("Sqrt", [h.add(h.sum(h.mul(x, x), [axis], 1), c(1e-16))]), c(EPS))),
  };
  return h;
}

/**
 * Scores `[N, C]` of unit region vectors `images [N, R, d]` against unit word vectors `captions [C, T, d]`
 * with `wordMask [C, T]` — lib/matching/scan.ts crossAttentionScores, laid out as s[n, r, c, t] so that no 4-D
 * transpose is needed for t2i.
 */
export function addScores(
  g: OnnxGraph,
  images: string,
  captions: string,
  wordMask: string,
  N: number,
  C: number,
  T: number,
  R: number,
  d: number,
  cfg: Pick<ScanConfig, "direction" | "aggregation" | "lambdaSoftmax" | "lambdaLse">,
): string {
  const o = ops(g);
  const { c, mul, add, sub, sum, reshape, transpose, op1 } = o;
  const s = reshape(o.mm(reshape(images, [N * R, d]), transpose(reshape(captions, [C * T, d]), [1, 0])), [N, R, C, T]);
  const leaky = op1("LeakyRelu", [s], [{ name: "alpha", f: 0.1 }]);
  const mask4 = reshape(wordMask, [1, 1, C, T]);
  let rowSim: string, queryMask: string | undefined, queryAxis: number;
  const cosine = (dot: string, sq: string) => o.div(dot, op1("Max", [op1("Sqrt", [add(sq, c(1e-16))]), c(EPS)]));
  if (cfg.direction === "t2i") {
    // each word attends over the regions: normalise over the caption's words, softmax over the regions
    const norm = o.l2norm(mul(leaky, mask4), 3);
    const alpha = op1("Softmax", [mul(norm, c(cfg.lambdaSoftmax))], [{ name: "axis", i: 1 }]); // [N, R, C, T]
    const dot = sum(mul(alpha, s), [1]); // [N, C, T]
    const gram = o.mm(images, transpose(images, [0, 2, 1])); // [N, R, R]
    const a3 = reshape(alpha, [N, R, C * T]);
    const sq = reshape(sum(mul(o.mm(gram, a3), a3), [1]), [N, C, T]);
    rowSim = cosine(dot, sq); // [N, C, T]
    queryMask = reshape(wordMask, [1, C, T]);
    queryAxis = 2;
  } else {
    // each region attends over the words: normalise over the regions, softmax over the real words
    const norm = o.l2norm(leaky, 1);
    const logits = add(mul(norm, c(cfg.lambdaSoftmax)), mul(sub(c(1), mask4), c(-1e9)));
    const alpha = op1("Softmax", [logits], [{ name: "axis", i: 3 }]); // [N, R, C, T]
    const dot = sum(mul(alpha, s), [3]); // [N, R, C]
    const gram = o.mm(captions, transpose(captions, [0, 2, 1])); // [C, T, T]
    const aC = reshape(transpose(alpha, [2, 0, 1, 3]), [C, N * R, T]);
    const sq = transpose(reshape(sum(mul(o.mm(aC, gram), aC), [2]), [C, N, R]), [1, 2, 0]); // [N, R, C]
    rowSim = cosine(dot, sq);
    queryAxis = 1; // every region counts
  }
  if (cfg.aggregation === "lse") {
    let e = op1("Exp", [mul(rowSim, c(cfg.lambdaLse))]);
    if (queryMask) e = mul(e, queryMask);
    return mul(op1("Log", [sum(e, [queryAxis])]), c(1 / cfg.lambdaLse));
  }
  if (!queryMask)
    return op1(
      "ReduceMean",
      [rowSim],
      [
        { name: "axes", ints: [queryAxis] },
        { name: "keepdims", i: 0 },
      ],
    );
  return o.div(sum(mul(rowSim, queryMask), [queryAxis]), reshape(sum(wordMask, [1]), [1, C]));
}

/** PyTorch-order GRU gates (r, z, n) from input and hidden pre-activations `[rows, 3d]`. */
function gruGates(o: ReturnType<typeof ops>, ax: string, ah: string, d: number) {
  const [xr, xz, xn] = o.split(ax, [d, d, d], 1);
  const [hr, hz, hn] = o.split(ah, [d, d, d], 1);
  const r = o.op1("Sigmoid", [o.add(xr, hr)]);
  const z = o.op1("Sigmoid", [o.add(xz, hz)]);
  const n = o.op1("Tanh", [o.add(xn, o.mul(r, hn))]);
  return { r, z, n, hn };
}

/** Graph inputs for the parameters that a graph uses. */
function paramInputs(g: OnnxGraph, cfg: ScanConfig, names: readonly Param[]): Record<Param, string> {
  return Object.fromEntries(names.map((n) => [n, g.input(n, scanParamShape(cfg, n))])) as Record<Param, string>;
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
  o: { images?: number; captions?: [number, number]; scores?: boolean },
): Uint8Array {
  const { jointDim: d, regionDim: E } = cfg;
  const g = new OnnxGraph("scan_forward");
  const h = ops(g);
  const p = paramInputs(g, cfg, [...(o.images ? IMG : []), ...(o.captions ? TXT : [])]);
  let images = "",
    captions = "",
    mask = "";
  if (o.images) {
    const N = o.images;
    const Z = h.add(h.mm(h.reshape(g.input("features", [N, R, E]), [N * R, E]), p["img/W"]), p["img/b"]);
    images = h.reshape(h.l2norm(Z, 1), [N, R, d]);
    g.output(Z, "Z", [N * R, d]);
    g.output(images, "images", [N, R, d]);
  }
  if (o.captions) {
    const [C, T] = o.captions;
    const ids = g.input("ids", [C, T], INT64);
    mask = g.input("mask", [C, T]);
    const x = h.op1("Gather", [p.embedding, h.reshape(ids, [C * T])], [{ name: "axis", i: 0 }]); // [C·T, M]
    const maskT = h.split(mask, Array(T).fill(1), 1); // T × [C, 1]
    const run = (dir: "fw" | "bw") => {
      const ax = h
        .split(h.reshape(h.add(h.mm(x, p[`gru_${dir}/Wx`]), p[`gru_${dir}/bx`]), [C, T, 3 * d]), Array(T).fill(1), 1)
        .map((a) => h.reshape(a, [C, 3 * d]));
      const outs: string[] = new Array(T);
      let state = "";
      const order = Array.from({ length: T }, (_, t) => (dir === "fw" ? t : T - 1 - t));
      for (const t of order) {
        const ah = state
          ? h.add(h.mm(state, p[`gru_${dir}/Wh`]), p[`gru_${dir}/bh`])
          : h.op1("Expand", [p[`gru_${dir}/bh`], g.constInt([C, 3 * d])]);
        const { z, n } = gruGates(h, ax[t], ah, d);
        const zh = state ? h.mul(z, state) : "";
        const hNew = zh ? h.add(h.mul(h.sub(h.c(1), z), n), zh) : h.mul(h.sub(h.c(1), z), n);
        outs[t] = h.mul(hNew, maskT[t]);
        // padding keeps the state (zero before a backward start)
        state = state ? h.add(outs[t], h.mul(state, h.sub(h.c(1), maskT[t]))) : outs[t];
      }
      return h.concat(
        outs.map((y) => h.reshape(y, [C, 1, d])),
        1,
      ); // [C, T, d]
    };
    const yf = run("fw"),
      yb = run("bw");
    captions = h.l2norm(h.mul(h.add(yf, yb), h.c(0.5)), 2);
    g.output(yf, "Yfw", [C, T, d]);
    g.output(yb, "Ybw", [C, T, d]);
    g.output(captions, "captions", [C, T, d]);
  }
  if (o.scores) {
    if (!o.images || !o.captions || o.images !== o.captions[0])
      throw new Error("forwardGraph: scores need as many images as captions");
    g.output(addScores(g, images, captions, mask, o.images, o.captions[0], o.captions[1], R, d, cfg), "scores", [
      o.images,
      o.captions[0],
    ]);
  }
  return g.toBytes(17);
}

/** Scores only: `images [N, R, d]`, `captions [C, T, d]`, `mask [C, T]` → `scores [N, C]`. */
export function scoresGraph(cfg: ScanConfig, N: number, C: number, T: number, R: number): Uint8Array {
  const g = new OnnxGraph("scan_scores");
  const d = cfg.jointDim;
  const s = addScores(
    g,
    g.input("images", [N, R, d]),
    g.input("captions", [C, T, d]),
    g.input("mask", [C, T]),
    N,
    C,
    T,
    R,
    d,
    cfg,
  );
  g.output(s, "scores", [N, C]);
  return g.toBytes(17);
}

/** dx of y = l2norm(x) along `axis` (lib/matching/scan.ts l2norm): dy/q − x·Σ(dy·x)/(q²·n), n = √(Σx²+1e-16), q = n + ε. */
function l2normBackward(h: ReturnType<typeof ops>, x: string, dy: string, axis: number): string {
  const n = h.op1("Sqrt", [h.add(h.sum(h.mul(x, x), [axis], 1), h.c(1e-16))]);
  const q = h.add(n, h.c(EPS));
  const proj = h.sum(h.mul(dy, x), [axis], 1);
  return h.sub(h.div(dy, q), h.mul(x, h.div(proj, h.mul(h.mul(q, q), n))));
}

/**
 * Gradients of Σ_p dS_p · S(image_p, caption_p) with respect to the unit vectors, for pairs gathered from
 * `images [B, R, d]` and `captions [B, T, d]` by `imgIdx`, `capIdx` (`[P]`, int64): lib/matching/scan.ts pairScores'
 * forward for the pairs, then its backward by hand — aggregation (LSE or mean over the queries) → cosine →
 * attended vectors and dot → softmax → l2norm → LeakyReLU → s = V·Eᵀ. Both directions share the layout
 * s[p, r, t]; they differ in which axis is the query and which the context:
 *   t2i: queries are words, each attends over regions (softmax over r, l2norm over the real words t);
 *   i2t: queries are regions, each attends over the real words (softmax over t, l2norm over the regions r).
 * Returns `[dImages, dCaptions]`, the pairs' gradients summed into each image and caption.
 */
function addPairBackward(
  g: OnnxGraph,
  h: ReturnType<typeof ops>,
  images: string,
  captions: string,
  mask: string,
  imgIdx: string,
  capIdx: string,
  dS: string,
  B: number,
  T: number,
  R: number,
  d: number,
  P: number,
  cfg: ScanConfig,
): [string, string] {
  const { mul, add, sub, div, sum, reshape, transpose, op1, c, mm } = h;
  const t2i = cfg.direction === "t2i";
  const ctxAxis = t2i ? 1 : 2; // the softmax's axis of s[p, r, t]
  const normAxis = t2i ? 2 : 1; // the l2norm's axis
  const Q = t2i ? T : R; // queries per pair
  const gather = (x: string, idx: string) => op1("Gather", [x, idx], [{ name: "axis", i: 0 }]);
  const tr = (x: string) => transpose(x, [0, 2, 1]);
  const V = gather(images, imgIdx); // [P, R, d]
  const Ew = gather(captions, capIdx); // [P, T, d]
  const m = reshape(gather(mask, capIdx), [P, 1, T]);
  const mT = reshape(m, [P, T]);
  // forward
  const s = mm(V, tr(Ew)); // [P, R, T]
  const slope = add(c(0.1), mul(op1("Cast", [op1("Greater", [s, c(0)])], [{ name: "to", i: 1 }]), c(0.9))); // LeakyReLU′
  const l = t2i ? mul(mul(s, slope), m) : mul(s, slope);
  const n0 = op1("Sqrt", [add(sum(mul(l, l), [normAxis], 1), c(1e-16))]);
  const nrm = add(n0, c(EPS));
  let logits = mul(div(l, nrm), c(cfg.lambdaSoftmax));
  if (!t2i) logits = add(logits, mul(sub(c(1), m), c(-1e9))); // padded words get no weight
  const alpha = op1("Softmax", [logits], [{ name: "axis", i: ctxAxis }]); // [P, R, T]
  const a = t2i ? mm(tr(alpha), V) : mm(alpha, Ew); // [P, Q, d] attended context vectors
  const dot = sum(mul(alpha, s), [ctxAxis]); // [P, Q]
  const root = op1("Sqrt", [add(sum(mul(a, a), [2]), c(1e-16))]);
  const den = op1("Max", [root, c(EPS)]);
  const rs = div(dot, den); // [P, Q] cosine of each query with its attended vector
  // backward from dS [P]
  const dS1 = reshape(dS, [P, 1]);
  let drs: string;
  if (cfg.aggregation === "lse") {
    let e = op1("Exp", [mul(rs, c(cfg.lambdaLse))]);
    if (t2i) e = mul(e, mT);
    drs = mul(dS1, div(e, sum(e, [1], 1)));
  } else drs = t2i ? mul(dS1, div(mT, sum(mT, [1], 1))) : mul(dS1, c(1 / R)); // i2t: every region counts
  const ddot = div(drs, den);
  const dden = op1("Neg", [div(mul(drs, dot), mul(den, den))]);
  const live = op1("Cast", [op1("Greater", [root, c(EPS)])], [{ name: "to", i: 1 }]);
  const dsq = mul(div(dden, mul(root, c(2))), live); // [P, Q]
  const da = mul(reshape(mul(dsq, c(2)), [P, Q, 1]), a); // [P, Q, d]
  const ddot3 = reshape(ddot, t2i ? [P, 1, T] : [P, R, 1]);
  const dAlpha = add(t2i ? mm(V, tr(da)) : mm(da, tr(Ew)), mul(ddot3, s)); // [P, R, T]
  const dz = mul(alpha, sub(dAlpha, sum(mul(alpha, dAlpha), [ctxAxis], 1))); // softmax
  const du = mul(dz, c(cfg.lambdaSoftmax));
  const dl = sub(div(du, nrm), mul(l, div(sum(mul(du, l), [normAxis], 1), mul(mul(nrm, nrm), n0))));
  const ds = add(mul(ddot3, alpha), mul(t2i ? mul(dl, m) : dl, slope));
  // s = V·Eᵀ, and the attended vectors: t2i a = αᵀV, i2t a = αE
  const dV = t2i ? add(mm(alpha, da), mm(ds, Ew)) : mm(ds, Ew); // [P, R, d]
  const dE = t2i ? mm(tr(ds), V) : add(mm(tr(ds), V), mm(tr(alpha), da)); // [P, T, d]
  const scatter = (shape: number[], idx: string, upd: string) =>
    reshape(g.scatterAddRows(idx, reshape(upd, [P, shape[1] * shape[2]]), B), shape);
  return [scatter([B, R, d], imgIdx, dV), scatter([B, T, d], capIdx, dE)];
}

/**
 * The backward graph of the two encoders for a batch of B images and B captions of padded length T.
 * Inputs: the parameters, `features`, `ids`, `mask`, the forward's `Z`, `Yfw`, `Ybw`, `images`, `captions`, and
 * the P scored pairs `imgIdx`, `capIdx` (int64) with the loss's gradient `dS [P]` for each (LossPairs).
 * Outputs `grad/<param>` for every parameter.
 */
export function backwardGraph(cfg: ScanConfig, B: number, T: number, R: number, P: number): Uint8Array {
  const { jointDim: d, regionDim: E, vocabSize: V } = cfg;
  const g = new OnnxGraph("scan_backward");
  const h = ops(g);
  const p = paramInputs(g, cfg, SCAN_PARAMS);
  const F2 = h.reshape(g.input("features", [B, R, E]), [B * R, E]);
  const ids = h.reshape(g.input("ids", [B, T], INT64), [B * T]);
  const mask = g.input("mask", [B, T]);
  const Z = g.input("Z", [B * R, d]);
  const Y = { fw: g.input("Yfw", [B, T, d]), bw: g.input("Ybw", [B, T, d]) };
  // the loss's gradients with respect to the unit vectors, through the P scored pairs
  const [dImages, dCaptions] = addPairBackward(
    g,
    h,
    g.input("images", [B, R, d]),
    g.input("captions", [B, T, d]),
    mask,
    g.input("imgIdx", [P], INT64),
    g.input("capIdx", [P], INT64),
    g.input("dS", [P]),
    B,
    T,
    R,
    d,
    P,
    cfg,
  );
  const grads: Partial<Record<Param, string>> = {};

  // regions: V = l2norm(F·W + b)
  const dZ = l2normBackward(h, Z, h.reshape(dImages, [B * R, d]), 1);
  grads["img/W"] = h.op1("Gemm", [F2, dZ], [{ name: "transA", i: 1 }]);
  grads["img/b"] = h.sum(dZ, [0]);

  // words: e = l2norm(½(y_fw + y_bw)), each direction a masked GRU
  const A = h.mul(h.add(Y.fw, Y.bw), h.c(0.5));
  const dY = h.mul(l2normBackward(h, A, dCaptions, 2), h.c(0.5)); // [B, T, d], the same for both directions
  const dYt = h.split(dY, Array(T).fill(1), 1).map((a) => h.reshape(a, [B, d]));
  const maskT = h.split(mask, Array(T).fill(1), 1); // T × [B, 1]
  const x = h.op1("Gather", [p.embedding, ids], [{ name: "axis", i: 0 }]); // [B·T, M]
  const zeros = h.op1("ConstantOfShape", [g.constInt([B, 1, d])]);
  const dX: string[] = [];
  for (const dir of ["fw", "bw"] as const) {
    const [Wx, Wh, bx, bh] = (["Wx", "Wh", "bx", "bh"] as const).map((k) => p[`gru_${dir}/${k}`]);
    // the state each step started from: the previous output in processing order (the masked steps' gradient is 0)
    const [head, tail] = h.split(Y[dir], dir === "fw" ? [T - 1, 1] : [1, T - 1], 1);
    const hPrev = h.reshape(dir === "fw" ? h.concat([zeros, head], 1) : h.concat([tail, zeros], 1), [B * T, d]);
    const { r, z, n, hn } = gruGates(h, h.add(h.mm(x, Wx), bx), h.add(h.mm(hPrev, Wh), bh), d);
    // step-independent factors, for all steps at once
    const perStep = (a: string) =>
      h.split(h.reshape(a, [B, T, d]), Array(T).fill(1), 1).map((v) => h.reshape(v, [B, d]));
    const oneMinusZ = perStep(h.sub(h.c(1), z));
    const hMinusN = perStep(h.sub(hPrev, n));
    const tanhGrad = perStep(h.sub(h.c(1), h.mul(n, n)));
    const rGrad = perStep(h.mul(r, h.sub(h.c(1), r)));
    const zGrad = perStep(h.mul(z, h.sub(h.c(1), z)));
    const zT = perStep(z),
      rT = perStep(r),
      hnT = perStep(hn);
    const WhT = h.transpose(Wh, [1, 0]);
    const dGh: string[] = new Array(T),
      dGx: string[] = new Array(T);
    let dState = "";
    const order = Array.from({ length: T }, (_, t) => (dir === "fw" ? T - 1 - t : t)); // reverse of processing
    for (const t of order) {
      const dh = h.mul(maskT[t], dState ? h.add(dState, dYt[t]) : dYt[t]);
      const dn = h.mul(dh, oneMinusZ[t]);
      const dz = h.mul(dh, hMinusN[t]);
      const dan = h.mul(dn, tanhGrad[t]);
      const dar = h.mul(h.mul(dan, hnT[t]), rGrad[t]);
      const daz = h.mul(dz, zGrad[t]);
      dGh[t] = h.concat([dar, daz, h.mul(dan, rT[t])], 1);
      dGx[t] = h.concat([dar, daz, dan], 1);
      const through = h.add(h.mul(dh, zT[t]), h.mm(dGh[t], WhT));
      dState = dState ? h.add(through, h.mul(dState, h.sub(h.c(1), maskT[t]))) : through;
    }
    // weight gradients, one matMul each over all B·T rows (rows b·T + t)
    const rows = (xs: string[]) =>
      h.reshape(
        h.concat(
          xs.map((v) => h.reshape(v, [B, 1, 3 * d])),
          1,
        ),
        [B * T, 3 * d],
      );
    const DGh = rows(dGh),
      DGx = rows(dGx);
    grads[`gru_${dir}/Wh`] = h.op1("Gemm", [hPrev, DGh], [{ name: "transA", i: 1 }]);
    grads[`gru_${dir}/bh`] = h.sum(DGh, [0]);
    grads[`gru_${dir}/Wx`] = h.op1("Gemm", [x, DGx], [{ name: "transA", i: 1 }]);
    grads[`gru_${dir}/bx`] = h.sum(DGx, [0]);
    dX.push(h.op1("Gemm", [DGx, Wx], [{ name: "transB", i: 1 }]));
  }
  grads.embedding = g.scatterAddRows(ids, h.add(dX[0], dX[1]), V);
  for (const name of SCAN_PARAMS) g.output(grads[name]!, `grad/${name}`, scanParamShape(cfg, name));
  return g.toBytes(17);
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

/** SCAN's encoders, scores and training gradients on ONNX Runtime (see the module comment). */
export class OnnxScan {
  private readonly sessions: SessionCache;
  constructor(
    readonly config: ScanConfig,
    readonly regions: number,
    readonly threads = 0,
  ) {
    if (!loadOrt())
      throw new Error("OnnxScan needs the optional package onnxruntime-node (npm install onnxruntime-node)");
    this.sessions = new SessionCache(threads);
  }

  private session(key: string, build: () => Uint8Array): Promise<OrtSession> {
    return this.sessions.get(key, build);
  }

  private feeds(
    params: Record<string, Float32Array>,
    names: readonly Param[],
    extra: Record<string, [Float32Array | BigInt64Array, number[]]>,
  ) {
    const ort = loadOrt()!;
    const f: Record<string, import("onnxruntime-node").Tensor> = {};
    for (const n of names) f[n] = new ort.Tensor("float32", params[n], scanParamShape(this.config, n));
    for (const [k, [data, dims]] of Object.entries(extra))
      f[k] =
        data instanceof BigInt64Array ? new ort.Tensor("int64", data, dims) : new ort.Tensor("float32", data, dims);
    return f;
  }

  /** The model's parameter values by name. */
  static async parameters(model: ScanModel): Promise<Record<string, Float32Array>> {
    const named = model.namedVariables();
    const out: Record<string, Float32Array> = {};
    for (const n of SCAN_PARAMS) out[n] = (await named[n].data()) as Float32Array;
    return out;
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
    const ort = loadOrt()!;
    const out = await s.run({
      images: new ort.Tensor("float32", images, [N, R, d]),
      captions: new ort.Tensor("float32", captions, [C, T, d]),
      mask: new ort.Tensor("float32", maskOf(lengths, T), [C, T]),
    });
    return out.scores.data as Float32Array;
  }

  /**
   * One training step's loss and gradients (tfjs tensors keyed by variable name, for tfjs optimisers) for a
   * batch of B images `[B, R, E]` matched with B captions `[B, T]` (padded with 0), with the hinge loss over the
   * `negatives` hardest negatives (1: VSE++ max violation). `backward: false` gives the loss alone (validation).
   */
  async gradients(
    model: ScanModel,
    features: Float32Array,
    ids: Int32Array,
    lengths: readonly number[],
    T: number,
    opts: { backward?: boolean; negatives?: number } = {},
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
    // the pairs' backward inside the graph (addPairBackward)
    const P = pairs.imgIdx.length;
    const bwd = await this.session(`bwd${B}x${T}p${P}`, () => backwardGraph(this.config, B, T, R, P));
    const out = await bwd.run(
      this.feeds(params, SCAN_PARAMS, {
        ...saved,
        images: [f.images.data as Float32Array, [B, R, d]],
        captions: [f.captions.data as Float32Array, [B, T, d]],
        imgIdx: [int64(pairs.imgIdx), [P]],
        capIdx: [int64(pairs.capIdx), [P]],
        dS: [pairs.dS, [P]],
      }),
    );
    const named = model.namedVariables();
    const grads = Object.fromEntries(
      SCAN_PARAMS.map((n) => [named[n].name, tf.tensor(out[`grad/${n}`].data as Float32Array, named[n].shape)]),
    );
    return { loss: pairs.loss, grads };
  }

  async dispose(): Promise<void> {
    await this.sessions.release();
  }
}

function int64(ids: ArrayLike<number>): BigInt64Array {
  return BigInt64Array.from(Array.from(ids, (v) => BigInt(v)));
}

function maskOf(lengths: readonly number[], T: number): Float32Array {
  const m = new Float32Array(lengths.length * T);
  lengths.forEach((n, c) => m.fill(1, c * T, c * T + n));
  return m;
}
