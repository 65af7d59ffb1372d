/**
 * Stacked Cross Attention (SCAN; Lee, Chen, Hua, Hu & He, ECCV 2018) for image–text matching.
 *   regions: v_r = l2norm(W·f_r + b)                      (the 49 ResNet-50 regions stand in for detected objects)
 *   words:   e_t = l2norm(½(→h_t + ←h_t))                 (embedding → bidirectional GRU, directions averaged)
 *   text-to-image (t2i): each word attends over the regions, image-to-text (i2t): each region over the words:
 *     s_rt = cos(v_r, e_t);  s̄ = l2norm_over_queries-side(LeakyReLU₀.₁(s))  (SCAN's "clipped_l2norm")
 *     α = softmax_context(λ_softmax · s̄);  a_q = Σ_context α · context;  R_q = cos(query_q, a_q)
 *     S(image, caption) = (1/λ_lse)·log Σ_q exp(λ_lse·R_q)   ("lse")   or   mean_q R_q   ("mean")
 *   loss: hinge triplet loss with the hardest negative in the batch, both directions (VSE++ max violation).
 * Efficiency: with unit-norm vectors, a_q·query_q = Σ α·s and |a_q|² = αᵀ G α with G the Gram matrix of the
 * context vectors, so a score needs the similarities s and G, never the d-dimensional attended vectors.
 * Parameter layouts are [in, out]; GRU gates are PyTorch's (r, z, n) with separate input and hidden biases.
 * The math is written once against `Ops` (lib/engine/ops.ts): `ScanModel` runs it on tfjs tensors, and
 * lib/matching/scan-onnx.ts builds the same functions into ONNX graphs (adding the hand-written backward).
 */
import { checkFields } from "../util/schema";
import * as tf from "@tensorflow/tfjs";
import { Ops, ParamSpec, tfOps } from "../engine/ops";
import { Rng } from "../util/rng";

export interface ScanConfig {
  vocabSize: number;
  embedSize: number;
  /** Dimension of the joint space. */
  jointDim: number;
  /** The width of the region features it reads (2048: ResNet-50's conv5), as `DecoderConfig.encoderDim`. */
  encoderDim: number;
  direction: "t2i" | "i2t";
  aggregation: "lse" | "mean";
  lambdaSoftmax: number;
  lambdaLse: number;
  margin: number;
}

/** A stored config as this version names it: checkpoints written before `encoderDim` call it `regionDim`. */
export function scanConfig(stored: ScanConfig | (Omit<ScanConfig, "encoderDim"> & { regionDim: number })): ScanConfig {
  if (!("regionDim" in stored) || "encoderDim" in stored) return stored as ScanConfig;
  const { regionDim, ...rest } = stored;
  return { ...rest, encoderDim: regionDim };
}

/**
 * The paper's Flickr30k settings with ResNet-50 regions: t-i LSE (λ_softmax 9, λ_lse 6) by default, and for
 * `direction: "i2t"` its best i-t model, i-t AVG (λ_softmax 4).
 */
export function defaultScanConfig(vocabSize: number, direction: "t2i" | "i2t" = "t2i"): ScanConfig {
  const base = { vocabSize, embedSize: 300, jointDim: 1024, encoderDim: 2048, lambdaLse: 6, margin: 0.2 };
  return direction === "t2i"
    ? { ...base, direction, aggregation: "lse", lambdaSoftmax: 9 }
    : { ...base, direction, aggregation: "mean", lambdaSoftmax: 4 };
}

const EPS = 1e-8;

/**
 * x / (‖x‖ + 1e-8) along `axis`, as SCAN's l2norm; the norm is taken as √(Σx² + 1e-16) so that all-zero rows
 * (padding) have a finite gradient instead of NaN.
 */
export function l2norm<T extends tf.Tensor>(x: T, axis = -1): T {
  return tf.tidy(() => l2normOf(tfOps, x, axis < 0 ? x.rank + axis : axis)) as T;
}

/** `l2norm` on any engine. */
export function l2normOf<V>(o: Ops<V>, x: V, axis: number): V {
  return o.div(x, o.add(o.sqrt(o.add(o.sum(o.mul(x, x), [axis], true), o.scalar(1e-16))), o.scalar(EPS)));
}

/** Region vectors: `Z = F·W + b` `[N·R, d]` and `v = l2norm(Z)` `[N, R, d]`. */
export function regionVectors<V>(
  o: Ops<V>,
  { N, R, E, d }: { N: number; R: number; E: number; d: number },
  features: V,
  W: V,
  b: V,
): { Z: V; v: V } {
  const Z = o.add(o.matMul(o.reshape(features, [N * R, E]), W), b);
  return { Z, v: o.reshape(l2normOf(o, Z, 1), [N, R, d]) };
}

/** PyTorch-order GRU gates (r, z, n) from input and hidden pre-activations `[rows, 3d]`. */
export function gruGates<V>(o: Ops<V>, ax: V, ah: V, d: number): { r: V; z: V; n: V; hn: V } {
  const [xr, xz, xn] = o.split(ax, [d, d, d], 1);
  const [hr, hz, hn] = o.split(ah, [d, d, d], 1);
  const r = o.sigmoid(o.add(xr, hr));
  const z = o.sigmoid(o.add(xz, hz));
  const n = o.tanh(o.add(xn, o.mul(r, hn)));
  return { r, z, n, hn };
}

export interface GruWeights<V> {
  Wx: V;
  Wh: V;
  bx: V;
  bh: V;
}

/**
 * Word vectors of `ids [C, T]` (padded; `mask [C, T]` 1 at real words): embedding → bidirectional GRU →
 * `e = l2norm(½(y_fw + y_bw))` `[C, T, d]`. Each direction's outputs `y` are zero at padding, where the state is
 * kept, so the backward GRU starts at each caption's last real word (as PyTorch's packed sequences).
 */
export function wordVectors<V>(
  o: Ops<V>,
  { C, T, d }: { C: number; T: number; d: number },
  embedding: V,
  ids: V,
  mask: V,
  gru: [GruWeights<V>, GruWeights<V>],
): { yFw: V; yBw: V; e: V } {
  const x = o.gather(embedding, o.reshape(ids, [C * T])); // [C·T, M]
  const masks = o.split(mask, Array(T).fill(1), 1); // T × [C, 1]
  const one = o.scalar(1);
  const run = (w: GruWeights<V>, reverse: boolean) => {
    const xg = o.split(o.reshape(o.add(o.matMul(x, w.Wx), w.bx), [C, T, 3 * d]), Array(T).fill(1), 1);
    let h = o.zeros([C, d]);
    const outs: V[] = new Array(T);
    for (let k = 0; k < T; k++) {
      const t = reverse ? T - 1 - k : k;
      const { z, n } = gruGates(o, o.reshape(xg[t], [C, 3 * d]), o.add(o.matMul(h, w.Wh), w.bh), d);
      const hNew = o.add(o.mul(o.sub(one, z), n), o.mul(z, h));
      outs[t] = o.mul(hNew, masks[t]);
      h = o.add(outs[t], o.mul(h, o.sub(one, masks[t]))); // padding keeps the state (0 before a backward start)
    }
    return o.stack(outs, 1); // [C, T, d]
  };
  const yFw = run(gru[0], false);
  const yBw = run(gru[1], true);
  return { yFw, yBw, e: l2normOf(o, o.mul(o.add(yFw, yBw), o.scalar(0.5)), 2) };
}

/** `[C, T]`: 1 for the first `lengths[c]` positions of each caption, 0 at its padding. */
export function lengthMask(lengths: readonly number[], T: number): tf.Tensor2D {
  return tf.tensor2d(
    Array.from({ length: lengths.length * T }, (_, i) => (i % T < lengths[Math.floor(i / T)] ? 1 : 0)),
    [lengths.length, T],
  );
}

/** A parameter's stable name, as checkpoints, the ONNX graphs and Adam's state use. */
export type ScanParam = "img/W" | "img/b" | "embedding" | `gru_${"fw" | "bw"}/${"Wx" | "Wh" | "bx" | "bh"}`;

/**
 * SCAN's parameters in `variables` order — the one list that the tfjs variables, the initialiser's draws, the ONNX
 * graphs' inputs and Adam's moments follow: the region projection (E → d), the word embedding, and per GRU
 * direction Wx [M, 3d], Wh [d, 3d], bx, bh [3d].
 */
export function scanParams(c: ScanConfig): ParamSpec<ScanParam>[] {
  const { vocabSize: V, embedSize: M, jointDim: d, encoderDim: E } = c;
  const p = (name: ScanParam, shape: number[], fanIn: number): ParamSpec<ScanParam> => ({ name, shape, fanIn });
  return [
    p("img/W", [E, d], E),
    p("img/b", [d], E),
    p("embedding", [V, M], M),
    ...(["fw", "bw"] as const).flatMap((dir) => [
      p(`gru_${dir}/Wx`, [M, 3 * d], d),
      p(`gru_${dir}/Wh`, [d, 3 * d], d),
      p(`gru_${dir}/bx`, [3 * d], d),
      p(`gru_${dir}/bh`, [3 * d], d),
    ]),
  ];
}

export class ScanModel {
  readonly imgW: tf.Variable; // [E, d]
  readonly imgB: tf.Variable;
  readonly embedding: tf.Variable; // [V, M]
  /** GRU weights per direction (0 forward, 1 backward): Wx [M, 3d], Wh [d, 3d], bx [3d], bh [3d]. */
  readonly gru: { Wx: tf.Variable; Wh: tf.Variable; bx: tf.Variable; bh: tf.Variable }[];
  /** In `scanParams` order. */
  readonly variables: tf.Variable[];
  private static instances = 0;
  private readonly scope = `scan${ScanModel.instances++}/`;

  readonly config: ScanConfig;

  /** `config` as stored (`scanConfig`); `seed` picks the default initialisation (an ensemble's members differ in it). */
  constructor(
    stored: Parameters<typeof scanConfig>[0],
    init?: (name: string, shape: number[], fanIn: number) => tf.Tensor,
    seed = 1,
  ) {
    const config = (this.config = scanConfig(stored));
    checkFields("SCAN config", config, {
      vocabSize: "count",
      embedSize: "count",
      jointDim: "count",
      encoderDim: "count",
      direction: ["t2i", "i2t"],
      aggregation: ["lse", "mean"],
      lambdaSoftmax: "number",
      lambdaLse: "number",
      margin: "number",
    });
    const rng = new Rng(seed);
    const initFn =
      init ??
      ((name: string, shape: number[], fanIn: number) => {
        const s = rng.int(2 ** 31);
        if (name === "embedding") return tf.randomUniform(shape, -0.1, 0.1, "float32", s); // as SCAN's init_weights
        const k = 1 / Math.sqrt(fanIn);
        return tf.randomUniform(shape, -k, k, "float32", s);
      });
    const vars = new Map(
      scanParams(config).map((p) => [
        p.name,
        tf.variable(initFn(p.name, p.shape, p.fanIn), true, `${this.scope}${p.name}`),
      ]),
    );
    this.variables = [...vars.values()];
    const v = (name: ScanParam) => vars.get(name)!;
    [this.imgW, this.imgB, this.embedding] = [v("img/W"), v("img/b"), v("embedding")];
    this.gru = (["fw", "bw"] as const).map((dir) => ({
      Wx: v(`gru_${dir}/Wx`),
      Wh: v(`gru_${dir}/Wh`),
      bx: v(`gru_${dir}/bx`),
      bh: v(`gru_${dir}/bh`),
    }));
  }

  /** Stable names (without the per-instance scope), for checkpoints. */
  namedVariables(): Record<string, tf.Variable> {
    return Object.fromEntries(this.variables.map((x) => [x.name.slice(this.scope.length), x]));
  }

  /** `[N, R, E]` region features → `[N, R, d]` unit vectors. */
  encodeImages(features: tf.Tensor3D): tf.Tensor3D {
    const [N, R, E] = features.shape;
    return tf.tidy(
      () => regionVectors(tfOps, { N, R, E, d: this.config.jointDim }, features, this.imgW, this.imgB).v,
    ) as tf.Tensor3D;
  }

  /** `[C, T]` word ids (padded) with their lengths → `[C, T, d]` unit word vectors (zero rows at padding). */
  encodeCaptions(ids: tf.Tensor2D, lengths: readonly number[]): tf.Tensor3D {
    const [C, T] = ids.shape;
    const d = this.config.jointDim;
    const [fw, bw] = this.gru;
    return tf.tidy(
      () => wordVectors(tfOps, { C, T, d }, this.embedding, ids, lengthMask(lengths, T), [fw, bw]).e,
    ) as tf.Tensor3D;
  }

  /** Scores `[N, C]` of every image against every caption (unit vectors in, see the module comment). */
  similarity(images: tf.Tensor3D, captions: tf.Tensor3D, lengths: readonly number[]): tf.Tensor2D {
    return crossAttentionScores(images, captions, lengths, this.config);
  }

  dispose(): void {
    tf.dispose(this.variables);
  }
}

export type ScoreConfig = Pick<ScanConfig, "direction" | "aggregation" | "lambdaSoftmax" | "lambdaLse">;

/** LSE or mean of the query similarities `rowSim` over `axis`; `queryMask` (t2i: the real words) where not all count. */
function aggregate<V>(o: Ops<V>, rowSim: V, axis: number, cfg: ScoreConfig, queryMask?: V): V {
  if (cfg.aggregation === "lse") {
    let e = o.exp(o.mul(rowSim, o.scalar(cfg.lambdaLse)));
    if (queryMask) e = o.mul(e, queryMask);
    return o.mul(o.log(o.sum(e, [axis])), o.scalar(1 / cfg.lambdaLse));
  }
  if (!queryMask) return o.mean(rowSim, [axis]);
  return o.div(o.sum(o.mul(rowSim, queryMask), [axis]), o.sum(queryMask, [axis]));
}

/**
 * SCAN's cross attention between unit region vectors `images [N, R, d]` and unit word vectors, laid out as
 * s[n, r, c, t] so that no 4-D transpose is needed; memory O(N·C·R·T). The captions are either
 *   - `[C, T, d]` with `wordMask [C, T]` (1 at real words), shared: every image against every caption (scores);
 *   - `[N, C, T, d]` with `wordMask [N, C, T]` (`perImage`): C captions of each image's own — chosen pairs, as the
 *     training step's hand-written backward (lib/matching/scan-onnx.ts) differentiates, N groups of them (N may
 *     be −1 there: the graph's dynamic dimension, which Reshape infers).
 * Returns the score `[N, C]` and what the backward reads: the similarities `s`, the attention `alpha`
 * `[N, R, C, T]`, per query (t2i `[N, C, T]`, i2t `[N, R, C]`) Σ α·s (`dot`), |a|² (`sq`), its root, the cosine's
 * denominator (`den`) and the cosine (`rowSim`), and `gramAlpha`, the Gram matrix of the context times α (t2i
 * `[N, R, C·T]`; i2t `[C, N·R, T]` shared, `[N·C, R, T]` per image).
 */
export function crossAttention<V>(
  o: Ops<V>,
  { N, C, T, R, d, perImage }: { N: number; C: number; T: number; R: number; d: number; perImage?: boolean },
  images: V,
  captions: V,
  wordMask: V,
  cfg: ScoreConfig,
) {
  const CT = C * T;
  const s = perImage
    ? o.reshape(o.matMul(images, o.transpose(o.reshape(captions, [N, CT, d]), [0, 2, 1])), [N, R, C, T])
    : o.reshape(o.matMul(o.reshape(images, [N * R, d]), o.transpose(o.reshape(captions, [CT, d]), [1, 0])), [
        N,
        R,
        C,
        T,
      ]);
  const M = perImage ? N : 1;
  const mask4 = o.reshape(wordMask, [M, 1, C, T]);
  const cosineOf = (dot: V, sq: V) => {
    const root = o.sqrt(o.add(sq, o.scalar(1e-16)));
    const den = o.maximum(root, o.scalar(EPS)); // as SCAN's cosine_similarity (norm clamped at 1e-8)
    return { dot, sq, root, den, rowSim: o.div(dot, den) };
  };
  if (cfg.direction === "t2i") {
    // each word attends over the regions: normalise over the caption's words, softmax over the regions
    const alpha = wordRegionAttention(o, s, mask4, cfg.lambdaSoftmax, 3); // [N, R, C, T]
    const gram = o.matMul(images, o.transpose(images, [0, 2, 1])); // [N, R, R]
    const a3 = o.reshape(alpha, [N, R, CT]);
    const gramAlpha = o.matMul(gram, a3);
    const c = cosineOf(o.sum(o.mul(alpha, s), [1]), o.reshape(o.sum(o.mul(gramAlpha, a3), [1]), [N, C, T]));
    const score = aggregate(o, c.rowSim, 2, cfg, o.reshape(wordMask, [M, C, T]));
    return { s, alpha, gramAlpha, ...c, score };
  }
  // each region attends over the words: normalise over the regions, softmax over the real words
  const norm = l2normOf(o, o.leakyRelu(s, 0.1), 1);
  const padded = o.mul(o.sub(o.scalar(1), mask4), o.scalar(-1e9)); // padded words get no weight
  const alpha = o.softmax(o.add(o.mul(norm, o.scalar(cfg.lambdaSoftmax)), padded), 3); // [N, R, C, T]
  // |a|² with the Gram matrix of each caption's words, batched over the captions
  let sq: V, gramAlpha: V;
  if (perImage) {
    const e = o.reshape(captions, [-1, T, d]); // [N·C, T, d]
    const aC = o.reshape(o.transpose(alpha, [0, 2, 1, 3]), [-1, R, T]);
    gramAlpha = o.matMul(aC, o.matMul(e, o.transpose(e, [0, 2, 1])));
    sq = o.transpose(o.reshape(o.sum(o.mul(gramAlpha, aC), [2]), [N, C, R]), [0, 2, 1]);
  } else {
    const gram = o.matMul(captions, o.transpose(captions, [0, 2, 1])); // [C, T, T]
    const aC = o.reshape(o.transpose(alpha, [2, 0, 1, 3]), [C, N * R, T]);
    gramAlpha = o.matMul(aC, gram);
    sq = o.transpose(o.reshape(o.sum(o.mul(gramAlpha, aC), [2]), [C, N, R]), [1, 2, 0]); // [N, R, C]
  }
  const c = cosineOf(o.sum(o.mul(alpha, s), [3]), sq);
  return { s, alpha, gramAlpha, ...c, score: aggregate(o, c.rowSim, 1, cfg) }; // every region counts
}

/** SCAN scores `[N, C]` of every image against every caption (`crossAttention`, shared captions). */
export function allPairScores<V>(
  o: Ops<V>,
  dims: { N: number; C: number; T: number; R: number; d: number },
  images: V,
  captions: V,
  wordMask: V,
  cfg: ScoreConfig,
): V {
  return crossAttention(o, dims, images, captions, wordMask, cfg).score;
}

/**
 * Text-to-image attention `[P, R, T]` of P pairs from their similarities `s [P, R, T]` and words' mask
 * `[P, 1, T]`: for each word, a softmax over the regions of λ·(LeakyReLU₀.₁(s) normalised over the caption's
 * real words). These are the word–region alignments SCAN shows. (`crossAttention` passes `[N, R, C, T]`, words
 * on `wordAxis` 3.)
 */
export function wordRegionAttention<V>(o: Ops<V>, s: V, mask: V, lambdaSoftmax: number, wordAxis = 2): V {
  const norm = l2normOf(o, o.mul(o.leakyRelu(s, 0.1), mask), wordAxis);
  return o.softmax(o.mul(norm, o.scalar(lambdaSoftmax)), 1);
}

/** SCAN scores `[N, C]` of tfjs unit vectors (padding rows ignored through `lengths`): allPairScores. */
export function crossAttentionScores(
  images: tf.Tensor3D,
  captions: tf.Tensor3D,
  lengths: readonly number[],
  cfg: ScoreConfig,
): tf.Tensor2D {
  return tf.tidy(() => {
    const [N, R, d] = images.shape;
    const [C, T] = captions.shape;
    return allPairScores(tfOps, { N, C, T, R, d }, images, captions, lengthMask(lengths, T), cfg);
  }) as tf.Tensor2D;
}

/** Scores `[P]` of P tfjs (image, caption) pairs `[P, R, d]`, `[P, T, d]`: `crossAttention`, one caption per image. */
export function pairScores(
  images: tf.Tensor3D,
  captions: tf.Tensor3D,
  lengths: readonly number[],
  cfg: ScoreConfig,
): tf.Tensor1D {
  return tf.tidy(() => {
    const [P, R, d] = images.shape;
    const T = captions.shape[1];
    const dims = { N: P, C: 1, T, R, d, perImage: true };
    return crossAttention(tfOps, dims, images, captions, lengthMask(lengths, T), cfg).score.reshape([P]);
  }) as tf.Tensor1D;
}

/** The alignment of one caption with one image: α `[T, R]` (one distribution over the regions per word). */
export function alignment(model: ScanModel, features: tf.Tensor3D, ids: tf.Tensor2D, length: number): tf.Tensor2D {
  return tf.tidy(() => {
    const v = model.encodeImages(features); // [1, R, d]
    const e = model.encodeCaptions(ids, [length]); // [1, T, d]
    const [, R] = v.shape;
    const T = e.shape[1];
    const s = tf.matMul(v, e.transpose([0, 2, 1])); // [1, R, T]
    const mask = lengthMask([length], T).reshape([1, 1, T]);
    return (wordRegionAttention(tfOps, s, mask, model.config.lambdaSoftmax) as tf.Tensor)
      .reshape([R, T])
      .transpose()
      .slice([0, 0], [length, R]) as tf.Tensor2D;
  });
}

/**
 * VSE++'s hinge triplet loss with the hardest negatives: scores `[B, B]` with matching pairs on the diagonal;
 * Σ_i max_c [margin − S(i,i) + S(i,c)]₊ + Σ_c max_i [margin − S(c,c) + S(i,c)]₊ over non-matching pairs.
 * With `k` > 1 each image and caption counts its k largest violations (a gentler start: see trainMatching).
 */
export function contrastiveLoss(scores: tf.Tensor2D, margin: number, k = 1): tf.Scalar {
  return tf.tidy(() => {
    const B = scores.shape[0];
    const diag = tf.sum(scores.mul(tf.eye(B)), 1); // [B]
    const offDiag = tf.scalar(1).sub(tf.eye(B));
    const costCaption = tf.relu(scores.add(margin).sub(diag.reshape([B, 1]))).mul(offDiag); // per image (row): negatives are captions
    const costImage = tf.relu(scores.add(margin).sub(diag.reshape([1, B]))).mul(offDiag); // per caption (column): negatives are images
    if (k === 1) return costCaption.max(1).sum().add(costImage.max(0).sum()) as tf.Scalar;
    // the k largest costs of each row (TopK's gradient: lib/engine/kernels.ts)
    return tf.topk(costCaption, k).values.sum().add(tf.topk(costImage.transpose(), k).values.sum()) as tf.Scalar;
  });
}
