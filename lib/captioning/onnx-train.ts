/**
 * The decoder's training step — teacher-forced forward, loss, and the gradient of every parameter — compiled
 * to one ONNX graph and run by ONNX Runtime's native CPU kernels (npm `onnxruntime-node`, optional).
 *
 * Why: on a CPU, tfjs's wasm backend multiplies matrices at ~20 GFLOP/s on one thread; ONNX Runtime's kernels
 * (AVX2/FMA) reach 50–65 on one thread and use every core. The step is ~55 GFLOP for 64 captions, so this is
 * what makes training on a laptop-class CPU practical. The recurrence is lib/captioning/recurrence.ts (the
 * same forward, the same hand-written backward, built here as graph nodes) and a test checks the gradients against tfjs autodiff.
 * Each step takes the parameters' values as arrays and gives the gradients as arrays: the step engine
 * (lib/captioning/step-engine.ts) keeps the weights in those arrays and TypedAdam updates them in place.
 *
 * The recurrence is unrolled over S = T − 1 steps, so there is one graph per (batch size, S), compiled once
 * and cached (length-bucketed batches make a few dozen). Dropout's mask is an input, drawn by the caller.
 */
import {
  ParamName,
  initWeights,
  initialState,
  lossTerms,
  paramNames,
  paramShape,
  recurrenceWeights,
  regionFeatures,
  regionWidth,
} from "./decoder";
import { projectRegions } from "./attention";
import type { DecoderConfig, DecoderRNN } from "./decoder";
import { INT64, OnnxGraph } from "../engine/onnx/proto";
import { GraphOps, graphOps } from "../engine/onnx/ops";
import { graphFeeds, parameterInputs, parameterValues } from "../engine/onnx/params";
import { RecurrenceDims, RecurrenceGrads, recurrenceBackward, recurrenceForward } from "./recurrence";
import { Rng } from "../util/rng";
import { SessionCache } from "../engine/onnx/session";

/** Graph values of the step's inputs: every parameter by name, and the batch. */
interface StepInputs {
  p: Record<ParamName, string>;
  features: string;
  words: string;
  targets: string;
  mask: string;
  dropMask: string;
  ceScale: string;
  penScale: string;
}

/**
 * The ONNX graph of one training step for batch size B and S decoder steps.
 * Inputs: every parameter (`PARAMS`), `features [B, R, E]`, `words [B, S]` (int64, the input words),
 * `targets [B·S]` (int64), `mask [B·S]` (1 for real target words), `dropMask [B·S, D]` (0 or 1/(1−p)),
 * `ceScale [1]` (1 / real target words), `penScale [1]` (λ / captions).
 * Outputs: `loss`, `crossEntropy`, `penalty` (each [1]) and `grad/<param>` for every parameter (unless
 * `backward: false`, for evaluation). The recurrence and its backward are lib/captioning/recurrence.ts on graph ops.
 */
export function trainingGraph(
  config: DecoderConfig,
  B: number,
  S: number,
  R: number,
  opts: { backward?: boolean } = {},
): Uint8Array {
  const { attentionDim: K, decoderDim: D } = config;
  const E = regionWidth(config);
  const o = graphOps(new OnnxGraph(`attend_tell_train_B${B}_S${S}`));
  const g = o.g;
  const x: StepInputs = {
    p: parameterInputs(g, paramNames(config), (name) => paramShape(config, name)) as Record<ParamName, string>,
    features: g.input("features", [B, R, config.encoderDim]),
    words: g.input("words", [B, S], INT64),
    targets: g.input("targets", [B * S], INT64),
    mask: g.input("mask", [B * S]),
    dropMask: g.input("dropMask", [B * S, D]),
    ceScale: g.input("ceScale", [1]),
    penScale: g.input("penScale", [1]),
  };
  const fw = forwardGraph(o, config, { B, S, D, R, K, E }, x);
  g.output(o.add(fw.crossEntropy, fw.penalty), "loss", [1]);
  g.output(fw.crossEntropy, "crossEntropy", [1]);
  g.output(fw.penalty, "penalty", [1]);
  if (opts.backward === false) return g.toBytes(17); // evaluation: the loss alone
  const grads = backwardGraph(o, config, { B, S, D, R, K, E }, x, fw);
  for (const name of paramNames(config)) g.output(grads[name], `grad/${name}`, paramShape(config, name));
  return g.toBytes(17);
}

/** DecoderRNN.forward and captionLoss as graph nodes; returns the loss parts and what the backward pass needs. */
function forwardGraph(o: GraphOps, config: DecoderConfig, dims: RecurrenceDims, x: StepInputs) {
  const { B, S, D, R, K, E } = dims;
  const { p } = x;
  const layer = { Wf: p["decoder/Wf"], bF: p["decoder/bF"] };
  const regions = regionFeatures(o, { B, R, E: config.encoderDim, F: E }, x.features, layer); // [B, R, E]
  const F2 = o.reshape(regions, [B * R, E]); // the backward's dW = F2ᵀ·dP
  const projected = projectRegions(o, regions, p["attention/W"], p["attention/bW"], { B, R, E, K });
  const init = initialState(o, regions, initWeights(p));
  const [meanF, h0, c0] = [init.mean, init.h, init.c]; // [B, E], [B, D], [B, D]
  const wordsFlat = o.reshape(x.words, [B * S]);
  const emb = o.op1("Gather", [p["decoder/embedding"], wordsFlat], [{ name: "axis", i: 0 }]); // [B·S, M]
  const { WxEmb, ...weights } = recurrenceWeights(o, p, { M: config.embedSize, E });
  const embGates = o.reshape(o.add(o.matMul(emb, WxEmb), p["decoder/bLstm"]), [B, S, 4 * D]);
  const steps = o.split(embGates, Array(S).fill(1), 1).map((t) => o.reshape(t, [B, 4 * D]));
  const rec = recurrenceForward(o, dims, { features: regions, projected, embGates: steps, h0, c0 }, weights);
  const H = o.reshape(o.stack(rec.h, 1), [B * S, D]); // rows b·S + t
  const Hd = o.mul(H, x.dropMask);
  const logits = o.add(o.matMul(Hd, p["decoder/fcn"]), p["decoder/bFcn"]); // [B·S, V]
  const logp = o.op1("LogSoftmax", [logits], [{ name: "axis", i: 1 }]);
  const picked = o.reshape(
    o.op1("GatherElements", [logp, o.reshape(x.targets, [B * S, 1])], [{ name: "axis", i: 1 }]),
    [B * S],
  );
  const alphas = o.stack(rec.alpha, 1); // [B, S, R]
  // the mask weighs the penalty too: trainer.step refuses caption weights with λ ≠ 0
  const { nll, gap, coverage } = lossTerms(o, picked, x.mask, x.mask, alphas, [B, S]);
  const crossEntropy = o.mul(nll, x.ceScale);
  const penalty = o.mul(coverage, x.penScale); // λ · mean_b Σ_r (1 − Σ_t α)²
  return {
    regions,
    projected,
    F2,
    meanF,
    wordsFlat,
    emb,
    WxEmb,
    weights,
    rec,
    Hd,
    logp,
    gap,
    crossEntropy,
    penalty,
    alphas,
  };
}

/** The gradient of every parameter, by hand: output layer, attention penalty, then recurrenceBackward. */
function backwardGraph(
  o: GraphOps,
  config: DecoderConfig,
  dims: RecurrenceDims,
  x: StepInputs,
  fw: ReturnType<typeof forwardGraph>,
): Record<string, string> {
  const { B, S, D, R, K, E } = dims;
  const { p } = x;
  const V = config.vocabSize;
  const T1 = (a: string) => o.transpose(a, [1, 0]);
  // Output layer: d logits = (softmax − onehot) · mask / tokens.
  const onehot = o.op1(
    "OneHot",
    [x.targets, o.g.constInt([V], []), o.g.constFloat([0, 1], [2])],
    [{ name: "axis", i: -1 }],
  );
  const dLogits = o.mul(o.sub(o.op1("Exp", [fw.logp]), onehot), o.reshape(o.mul(x.mask, x.ceScale), [B * S, 1]));
  const grads: Record<string, string> = {};
  grads["decoder/fcn"] = o.matMul(T1(fw.Hd), dLogits);
  grads["decoder/bFcn"] = o.sum(dLogits, [0]);
  const dH = o.mul(o.matMul(dLogits, T1(p["decoder/fcn"])), x.dropMask); // [B·S, D]
  const dHs = o.split(o.reshape(dH, [B, S, D]), Array(S).fill(1), 1).map((t) => o.reshape(t, [B, D]));
  // Attention penalty: d/dα_t = −2 · penScale · (1 − Σα) on real steps.
  const dAtt = o.mul(fw.gap, o.mul(x.penScale, o.c(-2)));
  const dAlphas = o.split(o.reshape(x.mask, [B, S]), Array(S).fill(1), 1).map((m) => o.mul(dAtt, m));
  const r = recurrenceBackward(
    o,
    dims,
    fw.regions,
    fw.projected,
    fw.rec.saved,
    dHs,
    dAlphas,
    fw.weights,
    config.regionLayer,
  );
  const [dU, dFBeta, dWh] = o.split(r.dhWeights, [K, E, 4 * D], 1);
  const [dbU, dbBeta] = o.split(r.dhBias, [K, E], 0);
  Object.assign(grads, {
    "attention/U": dU,
    "decoder/fBeta": dFBeta,
    "decoder/Wh": dWh,
    "attention/bU": dbU,
    "decoder/bBeta": dbBeta,
  });
  // Embedding half: rows b·S + t, like `emb`.
  const dGAll = o.reshape(o.stack(r.dEmbGates, 1), [B * S, 4 * D]);
  grads["decoder/Wx"] = o.concat([o.matMul(T1(fw.emb), dGAll), r.dctxWeights], 0);
  grads["decoder/bLstm"] = o.sum(dGAll, [0]);
  grads["decoder/embedding"] = o.g.scatterAddRows(fw.wordsFlat, o.matMul(dGAll, T1(fw.WxEmb)), V);
  // Attention projection (the frozen features get no gradient; the region layer's output does, below).
  const dP2 = o.reshape(r.dProjected, [B * R, K]);
  grads["attention/W"] = o.matMul(T1(fw.F2), dP2);
  grads["attention/bW"] = o.sum(dP2, [0]);
  grads["attention/A"] = r.dA;
  grads["attention/bA"] = o.g.constFloat([0], [1]); // softmax ignores a shift of all scores
  grads["decoder/initH"] = o.matMul(T1(fw.meanF), r.dh0);
  grads["decoder/bInitH"] = o.sum(r.dh0, [0]);
  grads["decoder/initC"] = o.matMul(T1(fw.meanF), r.dc0);
  grads["decoder/bInitC"] = o.sum(r.dc0, [0]);
  if (config.regionLayer) Object.assign(grads, regionLayerGrads(o, config, dims, x, fw, dP2, r));
  return grads;
}

/**
 * The region layer's gradients: the regions f′ are read by the attention's projection, the contexts, and h₀, c₀
 * through their mean; ReLU passes the sum where f′ > 0.
 */
function regionLayerGrads(
  o: GraphOps,
  config: DecoderConfig,
  { B, R, E }: RecurrenceDims,
  x: StepInputs,
  fw: ReturnType<typeof forwardGraph>,
  dP2: string,
  r: RecurrenceGrads<string>,
): Record<string, string> {
  const { p } = x;
  const T1 = (a: string) => o.transpose(a, [1, 0]);
  const dMean = o.add(o.matMul(r.dh0, T1(p["decoder/initH"])), o.matMul(r.dc0, T1(p["decoder/initC"]))); // [B, E]
  const dRegions = o.add(
    o.add(o.reshape(o.matMul(dP2, T1(p["attention/W"])), [B, R, E]), r.dFeatures!),
    o.reshape(o.mul(dMean, o.c(1 / R)), [B, 1, E]),
  );
  const dPre = o.reshape(o.mul(dRegions, o.op1("Sign", [fw.regions])), [B * R, E]); // f′ ≥ 0: Sign is ReLU's mask
  return {
    "decoder/Wf": o.matMul(T1(o.reshape(x.features, [B * R, config.encoderDim])), dPre),
    "decoder/bF": o.sum(dPre, [0]),
  };
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
    this.sessions = SessionCache.require("OnnxTrainer", threads);
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
    const values: Record<string, [Float32Array | BigInt64Array, number[]]> = {
      features: [features, [B, this.regions, E]],
      words: [words, [B, S]],
      targets: [targets, [B * S]],
      mask: [mask, [B * S]],
      dropMask: [dropMask, [B * S, D]],
      ceScale: [Float32Array.of(1 / Math.max(1, tokens)), [1]],
      penScale: [Float32Array.of(opts.lambda / B), [1]],
    };
    for (const name of paramNames(this.config)) values[name] = [params[name], paramShape(this.config, name)];
    const feeds = graphFeeds(values);
    const out = await (await this.session(B, S, backward)).run(feeds);
    const grads: Record<string, Float32Array> = {};
    if (backward) for (const name of paramNames(this.config)) grads[name] = out[`grad/${name}`].data as Float32Array;
    const scalar = (k: string) => (out[k].data as Float32Array)[0];
    return { loss: scalar("loss"), crossEntropy: scalar("crossEntropy"), penalty: scalar("penalty"), grads };
  }

  /** The decoder's parameter values, by name, for `step`. */
  static parameters(decoder: DecoderRNN): Promise<Record<string, Float32Array>> {
    return parameterValues(decoder.namedVariables(), paramNames(decoder.config));
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
