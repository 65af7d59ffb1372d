/**
 * The seed's `DecoderRNN` with soft attention (Show, Attend and Tell, Xu et al. 2015, §3.1–3.2):
 *   h₀, c₀ = init_h(mean features), init_c(mean features)
 *   at step t:  α_t, ctx_t = Attention(features, h_{t−1});  β_t = σ(f_beta(h_{t−1}));
 *               h_t, c_t = LSTMCell([embed(w_t) ; β_t·ctx_t], (h_{t−1}, c_{t−1}));  logits_t = fcn(dropout(h_t))
 * With a region layer (`regionLayer`), "features" above are f′_r = ReLU(f_r·W_f + b_f), learned with the rest.
 * Teacher forcing feeds the true word w_t (from `<SOS>`); the T−1 outputs predict w_1 … w_{T−1}.
 * The output layer runs once over all steps (`[B·(T−1), D] × [D, V]`), not once per step.
 * LSTM gates are laid out as PyTorch's LSTMCell (i, f, g, o), weights `[in, 4D]`.
 */
import * as tf from "@tensorflow/tfjs";
import { Attention, AttentionParam, attend } from "./attention";
import { attentionRecurrence } from "./bptt";
import { RecurrenceWeights, lstmCell } from "./recurrence";
import { FEATURE_MAPS, type FeatureMap } from "../encoder/feature-maps";
import { RemovedVariantError, checkFields } from "../util/schema";
import { Ops, ParamSpec, tfOps } from "../engine/ops";
import { Rng } from "../util/rng";

export interface DecoderConfig {
  vocabSize: number;
  embedSize: number;
  attentionDim: number;
  encoderDim: number;
  decoderDim: number;
  dropout: number;
  /**
   * The features it reads (lib/encoder FEATURE_MAPS), recorded when trained so that evaluate and caption compute
   * the same ones; absent in decoders from before conv4-pooled, which go by encoderDim (decoderFeatureMap).
   */
  featureMap?: FeatureMap;
  /**
   * How teacher-forced `forward` runs the recurrence: "fused" (default; the hand-written backward of bptt.ts, the
   * faster on every backend measured — wasm 15 vs 11 captions/s at batch 64, WebGPU on an H200 6,478 vs 5,535 at
   * batch 2048) or "stepwise" (autodiff through `step`, the reference it is tested against).
   */
  recurrence?: Recurrence;
  /**
   * Recorded by earlier versions, which had variants here (docs/variants.md): only the seed's values are read — h₀,
   * c₀ from the mean region feature, the gate β, words read from h alone.
   */
  initState?: "mean";
  gate?: true;
  deepOutput?: false;
  /**
   * A layer learned with the decoder over each region alone, f′_r = ReLU(f_r·W_f + b_f) (a 1 × 1 convolution
   * E → E), which everything else reads in place of f_r: recognition that an early ResNet stage lacks, without
   * mixing regions as a later stage does (docs/attention-study.md). Default false: the frozen features as they are.
   */
  regionLayer?: boolean;
  /**
   * The width of the region layer's output (E → regionDim), which the attention, the contexts and h₀/c₀ then read:
   * narrower than the features, it makes every product over regions cheaper. Default: the features' width.
   */
  regionDim?: number;
}

/** The width of the region vectors the decoder reads: the region layer's output, else the features'. */
export function regionWidth(c: Pick<DecoderConfig, "encoderDim" | "regionLayer" | "regionDim">): number {
  return c.regionLayer ? (c.regionDim ?? c.encoderDim) : c.encoderDim;
}

/** A parameter's stable name: `attention/…` and `decoder/…`, as checkpoints, the ONNX graphs and Adam's state use. */
export type ParamName =
  | `attention/${AttentionParam}`
  | `decoder/${"embedding" | "initH" | "bInitH" | "initC" | "bInitC" | "Wx" | "Wh" | "bLstm"}`
  | `decoder/${"fBeta" | "bBeta" | "fcn" | "bFcn" | "Wf" | "bF"}`;

/**
 * The decoder's parameters in `variables` order — the one list that the tfjs variables, the initialiser's draws,
 * the ONNX training and decoding graphs' inputs and Adam's moments follow. E is `regionWidth` (what the attention,
 * the contexts and h₀/c₀ read); the region layer's W_f, b_f come last, with `regionLayer` only.
 */
export function decoderParams(c: DecoderConfig): ParamSpec<ParamName>[] {
  const { vocabSize: V, embedSize: M, attentionDim: K, decoderDim: D } = c;
  const E = regionWidth(c);
  const p = (name: ParamName, shape: number[], fanIn: number): ParamSpec<ParamName> => ({ name, shape, fanIn });
  return [
    p("attention/W", [E, K], E),
    p("attention/bW", [K], E),
    p("attention/U", [D, K], D),
    p("attention/bU", [K], D),
    p("attention/A", [K, 1], K),
    p("attention/bA", [1], K),
    p("decoder/embedding", [V, M], V),
    p("decoder/initH", [E, D], E),
    p("decoder/bInitH", [D], E),
    p("decoder/initC", [E, D], E),
    p("decoder/bInitC", [D], E),
    p("decoder/Wx", [M + E, 4 * D], D), // PyTorch's LSTMCell draws all its weights with 1/√hidden_size
    p("decoder/Wh", [D, 4 * D], D),
    p("decoder/bLstm", [4 * D], D),
    p("decoder/fBeta", [D, E], D),
    p("decoder/bBeta", [E], D),
    p("decoder/fcn", [D, V], D),
    p("decoder/bFcn", [V], D),
    ...(c.regionLayer ? [p("decoder/Wf", [c.encoderDim, E], c.encoderDim), p("decoder/bF", [E], c.encoderDim)] : []),
  ];
}

/** The parameters' names, in `decoder.variables` order. */
export function paramNames(c: DecoderConfig): ParamName[] {
  return decoderParams(c).map((p) => p.name);
}

/** A parameter's shape under `c`. */
export function paramShape(c: DecoderConfig, name: ParamName): number[] {
  const spec = decoderParams(c).find((p) => p.name === name);
  if (!spec)
    throw new Error(
      `the decoder has no parameter ${name}${name.endsWith("/Wf") || name.endsWith("/bF") ? " (no region layer)" : ""}`,
    );
  return spec.shape;
}

/** Variants that lost their experiments and left the code (docs/variants.md): the field, its value, its name. */
const REMOVED_VARIANTS: [keyof DecoderConfig, unknown, string][] = [
  ["initState", "learned", "a learned initial state (initState: learned)"],
  ["gate", false, "no gate on the context (gate: false)"],
  ["deepOutput", true, "the deep output (deepOutput: true)"],
];

/**
 * Refuses a config with an unknown field or value (from a damaged or newer checkpoint), naming it, and one of a
 * variant that was removed, naming the variant.
 */
export function checkDecoderConfig(c: DecoderConfig): void {
  for (const [field, value, name] of REMOVED_VARIANTS) {
    if ((c as unknown as Record<string, unknown>)[field] === value)
      throw new RemovedVariantError(
        `decoder config: ${name} was a study variant and is no longer supported (docs/variants.md); use an attend-tell from before it was removed to load this model`,
      );
  }
  checkFields(
    "decoder config",
    c,
    {
      vocabSize: "count",
      embedSize: "count",
      attentionDim: "count",
      encoderDim: "count",
      decoderDim: "count",
      dropout: "fraction",
    },
    {
      featureMap: Object.keys(FEATURE_MAPS),
      recurrence: ["fused", "stepwise"],
      initState: ["mean"],
      gate: "boolean",
      deepOutput: "boolean",
      regionLayer: "boolean",
      regionDim: "count",
    },
  );
}

/** The seed's dimensions. */
export function getDefaultConfig(vocabSize: number): DecoderConfig {
  return { vocabSize, embedSize: 300, attentionDim: 256, encoderDim: 2048, decoderDim: 512, dropout: 0.3 };
}

/** The small decoder the quick (CI) size of `npm start` and the chapters train. */
export function quickDecoderConfig(vocabSize: number): DecoderConfig {
  return { ...getDefaultConfig(vocabSize), embedSize: 64, attentionDim: 64, decoderDim: 128 };
}

/** Makes a parameter's initial value; `fanIn` is the input size of the layer it belongs to. */
export type Initializer = (name: string, shape: number[], fanIn: number) => tf.Tensor;

/** Uniform(−1/√fan_in, 1/√fan_in), as PyTorch's Linear and LSTMCell; N(0, 1) for the embedding, as nn.Embedding. */
export function defaultInitializer(seed: number): Initializer {
  const rng = new Rng(seed);
  return (name, shape, fanIn) => {
    const s = rng.int(2 ** 31);
    if (name.endsWith("embedding")) return tf.randomNormal(shape, 0, 1, "float32", s);
    const k = 1 / Math.sqrt(fanIn);
    return tf.randomUniform(shape, -k, k, "float32", s);
  };
}

/** How `forward` runs the recurrence (DecoderConfig.recurrence). */
export type Recurrence = "fused" | "stepwise";

export interface DecoderOutput {
  /** `[B, T−1, V]` */
  logits: tf.Tensor3D;
  /** `[B, T−1, R]`: α_t for each predicted word. */
  alphas: tf.Tensor3D;
}

export class DecoderRNN {
  readonly attention: Attention;
  readonly embedding: tf.Variable; // [V, M]
  // E below is the width of the region vectors read (regionWidth): the features', or the region layer's output
  readonly initH: tf.Variable; // [E, D]
  readonly bInitH: tf.Variable;
  readonly initC: tf.Variable;
  readonly bInitC: tf.Variable;
  readonly Wx: tf.Variable; // [M + E, 4D]
  readonly Wh: tf.Variable; // [D, 4D]
  readonly bLstm: tf.Variable; // [4D]  (PyTorch's b_ih + b_hh)
  readonly fBeta: tf.Variable; // [D, E]
  readonly bBeta: tf.Variable;
  readonly fcn: tf.Variable; // [D, V]
  readonly bFcn: tf.Variable;
  /** `[encoderDim, E]`, `[E]`, with `regionLayer` only. */
  readonly Wf?: tf.Variable;
  readonly bF?: tf.Variable;

  /** tfjs variable names are process-wide: each instance gets its own scope, stripped by namedVariables(). */
  private static instances = 0;
  private readonly scope = `m${DecoderRNN.instances++}/`;

  constructor(
    readonly config: DecoderConfig,
    init: Initializer = defaultInitializer(1),
  ) {
    checkDecoderConfig(config);
    const vars = new Map(
      decoderParams(config).map((p) => [
        p.name,
        tf.variable(init(p.name, p.shape, p.fanIn), true, `${this.scope}${p.name}`),
      ]),
    );
    this.variables = [...vars.values()];
    this.named = Object.fromEntries(vars);
    const v = (name: ParamName) => vars.get(name)!;
    const { decoderDim, attentionDim } = config;
    this.attention = new Attention({ regionDim: regionWidth(config), decoderDim, attentionDim }, (n) =>
      v(`attention/${n}`),
    );
    this.embedding = v("decoder/embedding");
    this.initH = v("decoder/initH");
    this.bInitH = v("decoder/bInitH");
    this.initC = v("decoder/initC");
    this.bInitC = v("decoder/bInitC");
    this.Wx = v("decoder/Wx");
    this.Wh = v("decoder/Wh");
    this.bLstm = v("decoder/bLstm");
    this.fBeta = v("decoder/fBeta");
    this.bBeta = v("decoder/bBeta");
    this.fcn = v("decoder/fcn");
    this.bFcn = v("decoder/bFcn");
    this.Wf = vars.get("decoder/Wf");
    this.bF = vars.get("decoder/bF");
  }

  /** Every parameter, in `decoderParams` order. */
  readonly variables: tf.Variable[];
  private readonly named: Record<string, tf.Variable>;

  /** Variables by their stable parameter name (`decoder/fcn`, `attention/W`, …), for saving. */
  namedVariables(): Record<string, tf.Variable> {
    return this.named;
  }

  /**
   * The region vectors every other part reads: the features themselves, or with `regionLayer` f′ = ReLU(f·W_f + b_f).
   * Call once per image batch; `forward` calls it itself.
   */
  regions(features: tf.Tensor3D): tf.Tensor3D {
    const [B, R, E] = features.shape;
    return regionFeatures(tfOps, { B, R, E, F: regionWidth(this.config) }, features, this) as tf.Tensor3D;
  }

  /**
   * What decoding a batch of images starts from: their region vectors (`regions`; `features` itself without a
   * region layer), the attention's projection of them, and h₀, c₀. Greedy, sampling and beam search share it.
   */
  start(features: tf.Tensor3D): {
    regions: tf.Tensor3D;
    projected: tf.Tensor3D;
    state: { h: tf.Tensor2D; c: tf.Tensor2D };
  } {
    return tf.tidy(() => {
      const regions = this.regions(features);
      return { regions, projected: this.attention.projectFeatures(regions), state: this.initHidden(regions) };
    });
  }

  /** h₀, c₀ (`initialState`) from the region vectors (`regions`). */
  initHidden(features: tf.Tensor3D): { h: tf.Tensor2D; c: tf.Tensor2D } {
    const { h, c } = initialState(tfOps, features, this);
    return { h: h as tf.Tensor2D, c: c as tf.Tensor2D };
  }

  /**
   * One decoder step from embedded words `[B, M]`: returns the new state, α and the gated context β⊙ctx (what
   * `output` reads besides h). Shared by teacher forcing and by greedy/beam search.
   */
  step(
    emb: tf.Tensor2D,
    projected: tf.Tensor3D,
    features: tf.Tensor3D,
    state: { h: tf.Tensor2D; c: tf.Tensor2D },
  ): { h: tf.Tensor2D; c: tf.Tensor2D; alpha: tf.Tensor2D; context: tf.Tensor2D } {
    const [B, R, K] = projected.shape;
    const dims = { B, R, K, D: this.config.decoderDim };
    const r = decoderStep<tf.Tensor>(tfOps, stepWeights(this.namedVariables()), dims, emb, projected, features, state);
    const [h, c, alpha, context] = [r.h, r.c, r.alpha, r.context] as tf.Tensor2D[];
    return { h, c, alpha, context };
  }

  /** Output logits `[N, V]` from decoder states `[N, D]` (dropout only when training). */
  output(h: tf.Tensor2D, training: boolean, seed?: number): tf.Tensor2D {
    const x = training && this.config.dropout > 0 ? tf.dropout(h, this.config.dropout, undefined, seed) : h;
    return x.matMul(this.fcn).add(this.bFcn);
  }

  /**
   * Teacher-forced pass over `captions [B, T]` (with `<SOS>` … `<EOS>`, padded). Two implementations of the same
   * math (tested equal, values and gradients): "fused" runs the recurrence as one op with hand-written
   * backpropagation through time (lib/captioning/bptt.ts), the default; "stepwise" unrolls `step` and leaves the gradient
   * to autodiff (the reference). Default: the config's choice.
   */
  forward(
    features: tf.Tensor3D,
    captions: tf.Tensor2D,
    opts: { training?: boolean; seed?: number; recurrence?: Recurrence } = {},
  ): DecoderOutput {
    const [B, T] = captions.shape;
    const S = T - 1;
    const { embedSize: M, decoderDim: D, vocabSize: V } = this.config;
    const E = regionWidth(this.config);
    const start = this.start(features);
    const [regions, projected, h0, c0] = [start.regions, start.projected, start.state.h, start.state.c];
    let h: tf.Tensor3D, alphas: tf.Tensor3D;
    if ((opts.recurrence ?? this.config.recurrence ?? "fused") === "fused") {
      const { WxEmb, ...weights } = recurrenceWeights<tf.Tensor>(tfOps, this.namedVariables(), { M, E });
      // The embedding half of the LSTM input: one matMul for all steps (teacher forcing knows every word).
      const embeds = tf.gather(this.embedding, captions.slice([0, 0], [B, S]).reshape([B * S])); // [B·S, M]
      const embGates = embeds
        .matMul(WxEmb)
        .add(this.bLstm)
        .reshape([B, S, 4 * D]) as tf.Tensor3D;
      ({ h, alphas } = attentionRecurrence(regions, {
        projected,
        embGates,
        h0,
        c0,
        ...(weights as RecurrenceWeights<tf.Tensor2D>),
        featureGrad: this.config.regionLayer,
      }));
    } else {
      const embeds = tf.gather(this.embedding, captions); // [B, T, M]
      let state = { h: h0, c: c0 };
      const hs: tf.Tensor2D[] = [];
      const as: tf.Tensor2D[] = [];
      for (let t = 0; t < S; t++) {
        const emb = embeds.slice([0, t, 0], [B, 1, M]).reshape([B, M]) as tf.Tensor2D;
        const next = this.step(emb, projected, regions, state);
        state = next;
        hs.push(next.h);
        as.push(next.alpha);
      }
      h = tf.stack(hs, 1) as tf.Tensor3D;
      alphas = tf.stack(as, 1) as tf.Tensor3D;
    }
    // One output projection for all steps: [B·S, D] × [D, V].
    const rows = (x: tf.Tensor3D) => x.reshape([B * S, x.shape[2]]) as tf.Tensor2D;
    const training = opts.training ?? false;
    const logits = this.output(rows(h), training, opts.seed).reshape([B, S, V]);
    return { logits: logits as tf.Tensor3D, alphas };
  }

  dispose(): void {
    tf.dispose(this.variables);
  }
}

/**
 * f′_r = ReLU(f_r·W_f + b_f) `[B, R, F]` for each region of `features` `[B, R, E]` (DecoderConfig.regionLayer), or
 * the features unchanged when there is no such layer (`Wf` absent). On every engine.
 */
export function regionFeatures<T>(
  o: Ops<T>,
  { B, R, E, F }: { B: number; R: number; E: number; F: number },
  features: T,
  w: { Wf?: T; bF?: T },
): T {
  if (!w.Wf) return features;
  const pre = o.add(o.matMul(o.reshape(features, [B * R, E]), w.Wf), w.bF!);
  return o.reshape(o.maximum(pre, o.scalar(0)), [B, R, F]);
}

/** h₀ = m·init_h + b, c₀ = m·init_c + b' with m the mean region feature `[B, E]`. Returns m for backward. */
export function initialState<T>(
  o: Ops<T>,
  features: T,
  w: { initH: T; bInitH: T; initC: T; bInitC: T },
): { mean: T; h: T; c: T } {
  const mean = o.mean(features, [1]);
  return { mean, h: o.add(o.matMul(mean, w.initH), w.bInitH), c: o.add(o.matMul(mean, w.initC), w.bInitC) };
}

/** `initialState`'s weights from parameters by their stable names (the ONNX graphs' inputs). */
export function initWeights<T>(p: Record<string, T>): { initH: T; bInitH: T; initC: T; bInitC: T } {
  return {
    initH: p["decoder/initH"],
    bInitH: p["decoder/bInitH"],
    initC: p["decoder/initC"],
    bInitC: p["decoder/bInitC"],
  };
}

/** What one decoding step reads, from the parameters by stable name (`namedVariables()`, an ONNX graph's inputs). */
export function stepWeights<T>(p: Record<string, T>): StepWeights<T> {
  return {
    U: p["attention/U"],
    bU: p["attention/bU"],
    A: p["attention/A"],
    bA: p["attention/bA"],
    fBeta: p["decoder/fBeta"],
    bBeta: p["decoder/bBeta"],
    Wx: p["decoder/Wx"],
    Wh: p["decoder/Wh"],
    bLstm: p["decoder/bLstm"],
  };
}

/**
 * The fused recurrence's weights from the parameters by stable name: U, f_β and W_hh side by side, so that one
 * matMul of h per step feeds the attention, the gate and the LSTM; W_x split into its embedding rows (`WxEmb`,
 * applied to every word at once under teacher forcing) and its context rows.
 */
export function recurrenceWeights<T>(
  o: Ops<T>,
  p: Record<string, T>,
  { M, E }: { M: number; E: number },
): RecurrenceWeights<T> & { WxEmb: T } {
  const [WxEmb, ctxWeights] = o.split(p["decoder/Wx"], [M, E], 0);
  return {
    hWeights: o.concat([p["attention/U"], p["decoder/fBeta"], p["decoder/Wh"]], 1),
    hBias: o.concat([p["attention/bU"], p["decoder/bBeta"]], 0),
    A: p["attention/A"],
    bA: p["attention/bA"],
    ctxWeights,
    WxEmb,
  };
}

/** What one decoding step reads (see `decoderStep`). */
export interface StepWeights<T> {
  U: T;
  bU: T;
  A: T;
  bA: T;
  fBeta: T;
  bBeta: T;
  Wx: T;
  Wh: T;
  bLstm: T;
}

/**
 * One decoding step on any engine (`Ops`): from the embedded previous words `emb [B, M]` and the state, soft
 * attention over the regions, the gate β, and the LSTM cell: h, c and α. `DecoderRNN.step` runs it on tfjs,
 * lib/captioning/onnx-decode.ts as an ONNX graph for beam search on CPUs.
 */
export function decoderStep<T>(
  o: Ops<T>,
  w: StepWeights<T>,
  dims: { B: number; R: number; K: number; D: number },
  emb: T,
  projected: T,
  features: T,
  state: { h: T; c: T },
): { h: T; c: T; alpha: T; context: T } {
  const u = o.add(o.matMul(state.h, w.U), w.bU);
  const { alpha, ctx } = attend(o, dims, projected, (a) => o.weightedSum(a, features), w.A, w.bA, u);
  const beta = o.sigmoid(o.add(o.matMul(state.h, w.fBeta), w.bBeta));
  const context = o.mul(beta, ctx);
  const gates = o.add(o.add(o.matMul(o.concat([emb, context], 1), w.Wx), o.matMul(state.h, w.Wh)), w.bLstm);
  const { h, c } = lstmCell(o, dims.D, gates, state.c);
  return { h, c, alpha, context };
}

/**
 * log p(w_t | w_<t, I) of each caption's words under the teacher-forced output `out`: `[B, T−1]`, the word each
 * step predicts, 0 at `<PAD>`. Summed over t, a caption's log-likelihood (what self-critical training weighs).
 */
export function wordLogProbs(out: DecoderOutput, captions: tf.Tensor2D, padIdx = 0): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, T] = captions.shape;
    const V = out.logits.shape[2];
    const targets = captions.slice([0, 1], [B, T - 1]); // [B, T−1]: the word each step predicts
    const real = targets.notEqual(padIdx).toFloat();
    const logp = tf.logSoftmax(out.logits.reshape([B * (T - 1), V]));
    // log p(target) per step: gather from the flat [N·V] log-probabilities at n·V + target_n
    const flatIdx = tf
      .range(0, B * (T - 1), 1, "int32")
      .mul(tf.scalar(V, "int32"))
      .add(targets.reshape([-1]).toInt());
    return tf
      .gather(logp.reshape([B * (T - 1) * V]), flatIdx)
      .reshape([B, T - 1])
      .mul(real) as tf.Tensor2D;
  });
}

/**
 * The seed's loss, its math written once over `Ops`: tfjs differentiates it (`captionLoss`), the ONNX training
 * graph builds it and writes its gradient by hand (onnx-train.ts: dLogits from `nll`, dα from `gap`).
 *   picked  [N]        log p of each step's target word, rows b·S + t
 *   weights [N]        1 on a real target word, 0 on `<PAD>` (a caption's weight in self-critical training)
 *   real    [N]        1 on a real target word, 0 on `<PAD>`
 *   alphas  [B, S, R]  the attention of every step
 * Gives `nll` = −Σ weights · log p ([1]; the caller divides by the real words), the doubly stochastic term's
 * gap = 1 − Σ_t α_t over real steps ([B, R]) and `coverage` = Σ_b Σ_r gap² ([1]; the caller scales by λ / B).
 */
export function lossTerms<V>(o: Ops<V>, picked: V, weights: V, real: V, alphas: V, [B, S]: [number, number]) {
  const nll = o.mul(o.sum(o.mul(picked, weights), [0], true), o.scalar(-1));
  const attended = o.sum(o.mul(alphas, o.reshape(real, [B, S, 1])), [1]); // [B, R]
  const gap = o.sub(o.scalar(1), attended);
  const coverage = o.sum(o.sum(o.mul(gap, gap), [1]), [0], true);
  return { nll, gap, coverage };
}

/**
 * The seed's loss: cross-entropy over the predicted words ignoring `<PAD>` (mean over real tokens, as
 * PyTorch's CrossEntropyLoss(ignore_index=PAD)), plus the doubly stochastic attention regulariser
 *   λ · mean_batch Σ_regions (1 − Σ_t α_{t,r})²,  t over the caption's real (non-pad) steps,
 * which pushes the model to look at every region over the course of a caption (Xu et al. §4.2.1).
 */
export function captionLoss(
  out: DecoderOutput,
  captions: tf.Tensor2D,
  opts: {
    padIdx?: number;
    /** λ: no default here; the one default is defaultTrainConfig's. */
    lambda: number;
    /** `[B]`: a weight per caption on its words' cross-entropy (self-critical training's advantages). */
    captionWeights?: tf.Tensor1D;
  },
): { loss: tf.Scalar; crossEntropy: tf.Scalar; attentionPenalty: tf.Scalar } {
  const [B, T] = captions.shape;
  const S = T - 1;
  const real = captions
    .slice([0, 1], [B, S])
    .notEqual(opts.padIdx ?? 0)
    .toFloat()
    .reshape([B * S]);
  const weights = opts.captionWeights
    ? real.mul(
        opts.captionWeights
          .reshape([B, 1])
          .tile([1, S])
          .reshape([B * S]),
      )
    : real;
  const picked = wordLogProbs(out, captions, opts.padIdx).reshape([B * S]);
  const t = lossTerms(tfOps, picked, weights, real, out.alphas, [B, S]);
  const crossEntropy = t.nll.div(real.sum()).reshape([]) as tf.Scalar;
  const attentionPenalty = t.coverage.div(B).reshape([]) as tf.Scalar;
  const loss = crossEntropy.add(attentionPenalty.mul(opts.lambda)) as tf.Scalar;
  return { loss, crossEntropy, attentionPenalty };
}
