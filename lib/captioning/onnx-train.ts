/**
 * The decoder's training step — teacher-forced forward, loss, and the gradient of every parameter — compiled
 * to one ONNX graph and run by ONNX Runtime's native CPU kernels (npm `onnxruntime-node`, optional).
 *
 * Why: on a CPU, tfjs's wasm backend multiplies matrices at ~20 GFLOP/s on one thread; ONNX Runtime's kernels
 * (AVX2/FMA) reach 50–65 on one thread and use every core. The step is ~55 GFLOP for 64 captions, so this is
 * what makes training on a laptop-class CPU practical. The math is exactly lib/captioning/decoder.ts + lib/captioning/bptt.ts (the
 * same forward, the same hand-written backward) and a test checks the gradients against tfjs autodiff.
 * The parameters stay tfjs variables (checkpoints, Adam and inference are unchanged); each step sends their
 * values in and takes the gradients out.
 *
 * The recurrence is unrolled over S = T − 1 steps, so there is one graph per (batch size, S), compiled once
 * and cached (length-bucketed batches make a few dozen). Dropout's mask is an input, drawn by the caller.
 */
import * as tf from "@tensorflow/tfjs";
import type { DecoderConfig, DecoderRNN } from "./decoder";
import { INT64, OnnxGraph } from "../engine/onnx/proto";
import { Rng } from "../util/rng";
import type { StepResult } from "./train-step";
import { SessionCache, loadOrt } from "../engine/onnx/session";

/** Parameter names in `decoder.variables` order (the stable names of `namedVariables()`). */
export const PARAMS = [
  "attention/W",
  "attention/bW",
  "attention/U",
  "attention/bU",
  "attention/A",
  "attention/bA",
  "decoder/embedding",
  "decoder/initH",
  "decoder/bInitH",
  "decoder/initC",
  "decoder/bInitC",
  "decoder/Wx",
  "decoder/Wh",
  "decoder/bLstm",
  "decoder/fBeta",
  "decoder/bBeta",
  "decoder/fcn",
  "decoder/bFcn",
] as const;

/**
 * The ONNX graph of one training step for batch size B and S decoder steps.
 * Inputs: every parameter (`PARAMS`), `features [B, R, E]`, `words [B, S]` (int64, the input words),
 * `targets [B·S]` (int64), `mask [B·S]` (1 for real target words), `dropMask [B·S, D]` (0 or 1/(1−p)),
 * `ceScale [1]` (1 / real target words), `penScale [1]` (λ / captions).
 * Outputs: `loss`, `crossEntropy`, `penalty` (each [1]) and `grad/<param>` for every parameter (unless
 * `backward: false`, for evaluation).
 */
export function trainingGraph(
  config: DecoderConfig,
  B: number,
  S: number,
  R: number,
  opts: { backward?: boolean } = {},
): Uint8Array {
  const { vocabSize: V, embedSize: M, attentionDim: K, encoderDim: E, decoderDim: D } = config;
  const g = new OnnxGraph(`attend_tell_train_B${B}_S${S}`);
  const op1 = (type: string, inputs: string[], attrs: { name: string; i?: number; ints?: number[] }[] = []) =>
    g.op(type, inputs, attrs)[0];
  const mm = (a: string, b: string) => op1("MatMul", [a, b]);
  const add = (a: string, b: string) => op1("Add", [a, b]);
  const sub = (a: string, b: string) => op1("Sub", [a, b]);
  const mul = (a: string, b: string) => op1("Mul", [a, b]);
  const tanh = (a: string) => op1("Tanh", [a]);
  const sigmoid = (a: string) => op1("Sigmoid", [a]);
  const reshape = (a: string, dims: number[]) => op1("Reshape", [a, g.constInt(dims)]);
  const transpose = (a: string, perm: number[]) => op1("Transpose", [a], [{ name: "perm", ints: perm }]);
  const concat = (xs: string[], axis: number) => op1("Concat", xs, [{ name: "axis", i: axis }]);
  const split = (a: string, sizes: number[], axis: number) =>
    g.op("Split", [a, g.constInt(sizes)], [{ name: "axis", i: axis }], sizes.length);
  const sum = (a: string, axes: number[], keep = 0) =>
    op1("ReduceSum", [a, g.constInt(axes)], [{ name: "keepdims", i: keep }]);
  const one = g.constFloat([1], []);
  const oneMinus = (a: string) => sub(one, a);
  const sigmoidGrad = (y: string) => mul(y, oneMinus(y)); // σ' from σ's output
  const tanhGrad = (y: string) => oneMinus(mul(y, y)); // tanh' from tanh's output

  const p = Object.fromEntries(PARAMS.map((name) => [name, g.input(name, paramShape(config, name))])) as Record<
    (typeof PARAMS)[number],
    string
  >;
  const features = g.input("features", [B, R, E]);
  const words = g.input("words", [B, S], INT64);
  const targets = g.input("targets", [B * S], INT64);
  const mask = g.input("mask", [B * S]);
  const dropMask = g.input("dropMask", [B * S, D]);
  const ceScale = g.input("ceScale", [1]);
  const penScale = g.input("penScale", [1]);

  // ---- forward (lib/captioning/decoder.ts DecoderRNN.forward, lib/captioning/bptt.ts forward) ----
  const F2 = reshape(features, [B * R, E]);
  const P = reshape(add(mm(F2, p["attention/W"]), p["attention/bW"]), [B, R, K]);
  const meanF = op1(
    "ReduceMean",
    [features],
    [
      { name: "axes", ints: [1] },
      { name: "keepdims", i: 0 },
    ],
  ); // [B, E]
  const h0 = add(mm(meanF, p["decoder/initH"]), p["decoder/bInitH"]);
  const c0 = add(mm(meanF, p["decoder/initC"]), p["decoder/bInitC"]);
  const wordsFlat = reshape(words, [B * S]);
  const emb = op1("Gather", [p["decoder/embedding"], wordsFlat], [{ name: "axis", i: 0 }]); // [B·S, M]
  const [WxEmb, WxCtx] = split(p["decoder/Wx"], [M, E], 0);
  const embGates = reshape(add(mm(emb, WxEmb), p["decoder/bLstm"]), [B, S, 4 * D]);
  const G = split(embGates, Array(S).fill(1), 1).map((x) => reshape(x, [B, 4 * D]));
  const hW = concat([p["attention/U"], p["decoder/fBeta"], p["decoder/Wh"]], 1); // [D, K + E + 4D]
  const hB = concat([p["attention/bU"], p["decoder/bBeta"]], 0); // [K + E]
  const FT = transpose(features, [0, 2, 1]); // [B, E, R]
  type Saved = {
    hPrev: string;
    cPrev: string;
    z: string;
    alpha: string;
    ctx: string;
    beta: string;
    gc: string;
    i: string;
    f: string;
    gg: string;
    o: string;
    tc: string;
  };
  const saved: Saved[] = [];
  const hs: string[] = [];
  const alphas: string[] = [];
  let h = h0,
    c = c0;
  for (let t = 0; t < S; t++) {
    const [hpUB, gh] = split(mm(h, hW), [K + E, 4 * D], 1);
    const [u, b] = split(add(hpUB, hB), [K, E], 1);
    const z = tanh(add(P, reshape(u, [B, 1, K]))); // [B, R, K]
    const s = add(reshape(mm(z, p["attention/A"]), [B, R]), p["attention/bA"]);
    const alpha = op1("Softmax", [s], [{ name: "axis", i: 1 }]);
    const ctx = reshape(mm(reshape(alpha, [B, 1, R]), features), [B, E]);
    const beta = sigmoid(b);
    const gc = mul(beta, ctx);
    const gates = add(add(G[t], mm(gc, WxCtx)), gh);
    const [gi, gf, ggPre, go] = split(gates, [D, D, D, D], 1);
    const [i, f, gg, o] = [sigmoid(gi), sigmoid(gf), tanh(ggPre), sigmoid(go)];
    const cNew = add(mul(f, c), mul(i, gg));
    const tc = tanh(cNew);
    const hNew = mul(o, tc);
    saved.push({ hPrev: h, cPrev: c, z, alpha, ctx, beta, gc, i, f, gg, o, tc });
    hs.push(reshape(hNew, [B, 1, D]));
    alphas.push(reshape(alpha, [B, 1, R]));
    h = hNew;
    c = cNew;
  }
  const H = reshape(concat(hs, 1), [B * S, D]); // rows b·S + t
  const Hd = mul(H, dropMask);
  const logits = add(mm(Hd, p["decoder/fcn"]), p["decoder/bFcn"]); // [B·S, V]
  const logp = op1("LogSoftmax", [logits], [{ name: "axis", i: 1 }]);
  const picked = reshape(op1("GatherElements", [logp, reshape(targets, [B * S, 1])], [{ name: "axis", i: 1 }]), [
    B * S,
  ]);
  const crossEntropy = mul(op1("Neg", [sum(mul(picked, mask), [0], 1)]), ceScale);
  const alphaAll = concat(alphas, 1); // [B, S, R]
  const mask3 = reshape(mask, [B, S, 1]);
  const attended = sum(mul(alphaAll, mask3), [1]); // [B, R]
  const gap = oneMinus(attended);
  const penalty = mul(sum(sum(mul(gap, gap), [1]), [0], 1), penScale); // λ · mean_b Σ_r (1 − Σ_t α)²
  g.output(add(crossEntropy, penalty), "loss", [1]);
  g.output(crossEntropy, "crossEntropy", [1]);
  g.output(penalty, "penalty", [1]);
  if (opts.backward === false) return g.toBytes(17); // evaluation: the loss alone

  // ---- backward ----
  // Output layer: d logits = (softmax − onehot) · mask / tokens.
  const onehot = op1("OneHot", [targets, g.constInt([V], []), g.constFloat([0, 1], [2])], [{ name: "axis", i: -1 }]);
  const dLogits = mul(sub(op1("Exp", [logp]), onehot), reshape(mul(mask, ceScale), [B * S, 1]));
  const grads: Record<string, string> = {};
  grads["decoder/fcn"] = mm(transpose(Hd, [1, 0]), dLogits);
  grads["decoder/bFcn"] = sum(dLogits, [0]);
  const dH = mul(mm(dLogits, transpose(p["decoder/fcn"], [1, 0])), dropMask); // [B·S, D]
  const dHs = split(reshape(dH, [B, S, D]), Array(S).fill(1), 1).map((x) => reshape(x, [B, D]));
  // Attention penalty: d/dα_t = −2 · penScale · (1 − Σα) on real steps.
  const dAtt = mul(gap, mul(penScale, g.constFloat([-2], [])));
  const maskT = split(reshape(mask, [B, S]), Array(S).fill(1), 1); // S × [B, 1]
  const hWT = transpose(hW, [1, 0]);
  const WxCtxT = transpose(WxCtx, [1, 0]);
  const Arow = reshape(p["attention/A"], [1, 1, K]);
  let dh = "",
    dc = "",
    dP = "",
    dA = "";
  const dGates: string[] = new Array(S);
  const dHp: string[] = new Array(S);
  for (let t = S - 1; t >= 0; t--) {
    const sv = saved[t];
    const dhT = dh ? add(dHs[t], dh) : dHs[t];
    const dcFromH = mul(mul(dhT, sv.o), tanhGrad(sv.tc));
    const dcT = dc ? add(dcFromH, dc) : dcFromH;
    const dG = concat(
      [
        mul(mul(dcT, sv.gg), sigmoidGrad(sv.i)),
        mul(mul(dcT, sv.cPrev), sigmoidGrad(sv.f)),
        mul(mul(dcT, sv.i), tanhGrad(sv.gg)),
        mul(mul(dhT, sv.tc), sigmoidGrad(sv.o)),
      ],
      1,
    ); // [B, 4D]
    const dgc = mm(dG, WxCtxT); // [B, E]
    const db = mul(mul(dgc, sv.ctx), sigmoidGrad(sv.beta));
    const dCtx = mul(dgc, sv.beta);
    const dAlpha = add(mul(dAtt, maskT[t]), reshape(mm(reshape(dCtx, [B, 1, E]), FT), [B, R]));
    const ds = mul(sv.alpha, sub(dAlpha, sum(mul(sv.alpha, dAlpha), [1], 1))); // softmax backward
    const ds3 = reshape(ds, [B, R, 1]);
    const dAt = sum(mul(sv.z, ds3), [0, 1]); // [K]
    const dPre = mul(mul(ds3, Arow), tanhGrad(sv.z)); // [B, R, K]
    const dhp = concat([sum(dPre, [1]), db, dG], 1); // [B, K + E + 4D]
    dh = mm(dhp, hWT);
    dc = mul(dcT, sv.f);
    dP = dP ? add(dP, dPre) : dPre;
    dA = dA ? add(dA, dAt) : dAt;
    dGates[t] = dG;
    dHp[t] = dhp;
  }
  // Weight gradients, one matMul each over all steps (time-major rows on both sides).
  const hPrevAll = concat(
    saved.map((s) => s.hPrev),
    0,
  ); // [S·B, D]
  const dHpAll = concat(dHp, 0); // [S·B, K + E + 4D]
  const [dU, dFBeta, dWh] = split(mm(transpose(hPrevAll, [1, 0]), dHpAll), [K, E, 4 * D], 1);
  const [dHpUB] = split(dHpAll, [K + E, 4 * D], 1);
  const [dbU, dbBeta] = split(sum(dHpUB, [0]), [K, E], 0);
  Object.assign(grads, {
    "attention/U": dU,
    "decoder/fBeta": dFBeta,
    "decoder/Wh": dWh,
    "attention/bU": dbU,
    "decoder/bBeta": dbBeta,
  });
  const gcAll = concat(
    saved.map((s) => s.gc),
    0,
  ); // [S·B, E]
  const dWxCtx = mm(transpose(gcAll, [1, 0]), concat(dGates, 0));
  // Embedding half: rows b·S + t, like `emb`.
  const dGAll = reshape(
    concat(
      dGates.map((x) => reshape(x, [B, 1, 4 * D])),
      1,
    ),
    [B * S, 4 * D],
  );
  const dWxEmb = mm(transpose(emb, [1, 0]), dGAll);
  grads["decoder/Wx"] = concat([dWxEmb, dWxCtx], 0);
  grads["decoder/bLstm"] = sum(dGAll, [0]);
  const dEmb = mm(dGAll, transpose(WxEmb, [1, 0])); // [B·S, M]
  grads["decoder/embedding"] = g.scatterAddRows(wordsFlat, dEmb, V);
  // Attention projection (features are constant: no gradient into them).
  const dP2 = reshape(dP, [B * R, K]);
  grads["attention/W"] = mm(transpose(F2, [1, 0]), dP2);
  grads["attention/bW"] = sum(dP2, [0]);
  grads["attention/A"] = reshape(dA, [K, 1]);
  grads["attention/bA"] = g.constFloat([0], [1]); // softmax ignores a shift of all scores
  const meanFT = transpose(meanF, [1, 0]);
  grads["decoder/initH"] = mm(meanFT, dh);
  grads["decoder/bInitH"] = sum(dh, [0]);
  grads["decoder/initC"] = mm(meanFT, dc);
  grads["decoder/bInitC"] = sum(dc, [0]);
  for (const name of PARAMS) g.output(grads[name], `grad/${name}`, paramShape(config, name));
  return g.toBytes(17);
}

export function paramShape(c: DecoderConfig, name: (typeof PARAMS)[number]): number[] {
  const { vocabSize: V, embedSize: M, attentionDim: K, encoderDim: E, decoderDim: D } = c;
  const shapes: Record<(typeof PARAMS)[number], number[]> = {
    "attention/W": [E, K],
    "attention/bW": [K],
    "attention/U": [D, K],
    "attention/bU": [K],
    "attention/A": [K, 1],
    "attention/bA": [1],
    "decoder/embedding": [V, M],
    "decoder/initH": [E, D],
    "decoder/bInitH": [D],
    "decoder/initC": [E, D],
    "decoder/bInitC": [D],
    "decoder/Wx": [M + E, 4 * D],
    "decoder/Wh": [D, 4 * D],
    "decoder/bLstm": [4 * D],
    "decoder/fBeta": [D, E],
    "decoder/bBeta": [E],
    "decoder/fcn": [D, V],
    "decoder/bFcn": [V],
  };
  return shapes[name];
}

/** The loss parts and gradients of one step, as plain arrays (gradients by parameter name). */
export interface OnnxStepResult {
  loss: number;
  crossEntropy: number;
  penalty: number;
  grads: Record<string, Float32Array>;
}

/**
 * Runs training steps of a decoder's configuration on ONNX Runtime: one compiled session per (B, S).
 * `threads` defaults to every core.
 */
export class OnnxTrainer {
  private readonly sessions: SessionCache;
  constructor(
    readonly config: DecoderConfig,
    readonly regions: number,
    readonly threads = 0,
  ) {
    if (!loadOrt())
      throw new Error("OnnxTrainer needs the optional package onnxruntime-node (npm install onnxruntime-node)");
    this.sessions = new SessionCache(threads);
  }

  private session(B: number, S: number, backward: boolean) {
    const key = `${B}x${S}${backward ? "" : "-loss"}`;
    return this.sessions.get(key, () => trainingGraph(this.config, B, S, this.regions, { backward }));
  }

  /**
   * One step's loss and gradients. `captions` `[B·T]` row-major int ids (with `<SOS>`, padded with `pad`);
   * dropout masks come from `seed`.
   */
  async step(
    params: Record<string, Float32Array>,
    features: Float32Array,
    captions: Int32Array,
    B: number,
    T: number,
    opts: {
      seed: number;
      lambda: number;
      dropout: number;
      pad?: number;
      backward?: boolean;
      /** A weight per caption on its words' cross-entropy (self-critical training's advantages); default 1. */
      captionWeights?: ArrayLike<number>;
    },
  ): Promise<OnnxStepResult> {
    const backward = opts.backward ?? true;
    // the graph's mask also weighs the attention penalty, which a weighted caption would distort
    if (opts.captionWeights && opts.lambda !== 0) throw new Error("OnnxTrainer.step: captionWeights need lambda 0");
    const ort = loadOrt()!;
    const S = T - 1;
    const { encoderDim: E, decoderDim: D } = this.config;
    const words = new BigInt64Array(B * S);
    const targets = new BigInt64Array(B * S);
    const mask = new Float32Array(B * S);
    let tokens = 0;
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < S; t++) {
        words[b * S + t] = BigInt(captions[b * T + t]);
        const y = captions[b * T + t + 1];
        targets[b * S + t] = BigInt(y);
        if (y !== (opts.pad ?? 0)) {
          mask[b * S + t] = opts.captionWeights ? opts.captionWeights[b] : 1;
          tokens++;
        }
      }
    }
    const dropMask = dropoutMask(B * S * D, opts.dropout, opts.seed);
    const feeds: Record<string, import("onnxruntime-node").Tensor> = {
      features: new ort.Tensor("float32", features, [B, this.regions, E]),
      words: new ort.Tensor("int64", words, [B, S]),
      targets: new ort.Tensor("int64", targets, [B * S]),
      mask: new ort.Tensor("float32", mask, [B * S]),
      dropMask: new ort.Tensor("float32", dropMask, [B * S, D]),
      ceScale: new ort.Tensor("float32", Float32Array.of(1 / Math.max(1, tokens)), [1]),
      penScale: new ort.Tensor("float32", Float32Array.of(opts.lambda / B), [1]),
    };
    for (const name of PARAMS) feeds[name] = new ort.Tensor("float32", params[name], paramShape(this.config, name));
    const out = await (await this.session(B, S, backward)).run(feeds);
    const grads: Record<string, Float32Array> = {};
    if (backward) for (const name of PARAMS) grads[name] = out[`grad/${name}`].data as Float32Array;
    const scalar = (k: string) => (out[k].data as Float32Array)[0];
    return { loss: scalar("loss"), crossEntropy: scalar("crossEntropy"), penalty: scalar("penalty"), grads };
  }

  /** `step` for tfjs tensors and the decoder's current weights: loss and gradients as tfjs tensors (for tfjs optimisers). */
  async gradients(
    decoder: DecoderRNN,
    features: tf.Tensor3D,
    captions: tf.Tensor2D,
    o: { seed: number; lambda: number },
  ): Promise<StepResult> {
    const [B, T] = captions.shape;
    const r = await this.step(
      await OnnxTrainer.parameters(decoder),
      (await features.data()) as Float32Array,
      (await captions.data()) as Int32Array,
      B,
      T,
      { seed: o.seed, lambda: o.lambda, dropout: decoder.config.dropout },
    );
    return {
      loss: tf.scalar(r.loss),
      crossEntropy: tf.scalar(r.crossEntropy),
      grads: gradientsToTensors(decoder, r.grads),
    };
  }

  /** Loss parts without dropout and without gradients (validation). */
  async loss(
    decoder: DecoderRNN,
    features: tf.Tensor3D,
    captions: tf.Tensor2D,
    lambda: number,
  ): Promise<{ loss: number; crossEntropy: number }> {
    const [B, T] = captions.shape;
    const r = await this.step(
      await OnnxTrainer.parameters(decoder),
      (await features.data()) as Float32Array,
      (await captions.data()) as Int32Array,
      B,
      T,
      { seed: 0, lambda, dropout: 0, backward: false },
    );
    return { loss: r.loss, crossEntropy: r.crossEntropy };
  }

  /** The decoder's parameter values, by name, for `step`. */
  static async parameters(decoder: DecoderRNN): Promise<Record<string, Float32Array>> {
    const named = decoder.namedVariables();
    const out: Record<string, Float32Array> = {};
    for (const name of PARAMS) out[name] = (await named[name].data()) as Float32Array;
    return out;
  }

  async dispose(): Promise<void> {
    await this.sessions.release();
  }
}

/** Inverted dropout's mask: 0 with probability p, else 1/(1−p); seeded. */
export function dropoutMask(n: number, p: number, seed: number): Float32Array {
  const m = new Float32Array(n).fill(1);
  if (p <= 0) return m;
  const rng = new Rng(seed);
  const keep = 1 / (1 - p);
  for (let i = 0; i < n; i++) m[i] = rng.next() < p ? 0 : keep;
  return m;
}

/** Gradients as tfjs tensors keyed by the decoder's variable names (what optimizers take). */
export function gradientsToTensors(decoder: DecoderRNN, grads: Record<string, Float32Array>): tf.NamedTensorMap {
  const named = decoder.namedVariables();
  return Object.fromEntries(PARAMS.map((name) => [named[name].name, tf.tensor(grads[name], named[name].shape)]));
}
