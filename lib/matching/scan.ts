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
 */
import * as tf from "@tensorflow/tfjs";
import { Rng } from "../util/rng";

export interface ScanConfig {
  vocabSize: number;
  embedSize: number;
  /** Dimension of the joint space. */
  jointDim: number;
  regionDim: number;
  direction: "t2i" | "i2t";
  aggregation: "lse" | "mean";
  lambdaSoftmax: number;
  lambdaLse: number;
  margin: number;
}

/**
 * The paper's Flickr30k settings with ResNet-50 regions: t-i LSE (λ_softmax 9, λ_lse 6) by default, and for
 * `direction: "i2t"` its best i-t model, i-t AVG (λ_softmax 4).
 */
export function defaultScanConfig(vocabSize: number, direction: "t2i" | "i2t" = "t2i"): ScanConfig {
  const base = { vocabSize, embedSize: 300, jointDim: 1024, regionDim: 2048, lambdaLse: 6, margin: 0.2 };
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
  return tf.tidy(() => x.div(x.square().sum(axis, true).add(1e-16).sqrt().add(EPS))) as T;
}

/** `[C, T]`: 1 for the first `lengths[c]` positions of each caption, 0 at its padding. */
export function lengthMask(lengths: readonly number[], T: number): tf.Tensor2D {
  return tf.tensor2d(
    Array.from({ length: lengths.length * T }, (_, i) => (i % T < lengths[Math.floor(i / T)] ? 1 : 0)),
    [lengths.length, T],
  );
}

export class ScanModel {
  readonly imgW: tf.Variable; // [E, d]
  readonly imgB: tf.Variable;
  readonly embedding: tf.Variable; // [V, M]
  /** GRU weights per direction (0 forward, 1 backward): Wx [M, 3d], Wh [d, 3d], bx [3d], bh [3d]. */
  readonly gru: { Wx: tf.Variable; Wh: tf.Variable; bx: tf.Variable; bh: tf.Variable }[];
  private static instances = 0;
  private readonly scope = `scan${ScanModel.instances++}/`;

  /** `seed` picks the default initialisation (models differing only in it are an ensemble's members). */
  constructor(
    readonly config: ScanConfig,
    init?: (name: string, shape: number[], fanIn: number) => tf.Tensor,
    seed = 1,
  ) {
    const { vocabSize: V, embedSize: M, jointDim: d, regionDim: E } = config;
    const rng = new Rng(seed);
    const initFn =
      init ??
      ((name: string, shape: number[], fanIn: number) => {
        const s = rng.int(2 ** 31);
        if (name === "embedding") return tf.randomUniform(shape, -0.1, 0.1, "float32", s); // as SCAN's init_weights
        const k = 1 / Math.sqrt(fanIn);
        return tf.randomUniform(shape, -k, k, "float32", s);
      });
    const v = (name: string, shape: number[], fanIn: number) =>
      tf.variable(initFn(name, shape, fanIn), true, `${this.scope}${name}`);
    this.imgW = v("img/W", [E, d], E);
    this.imgB = v("img/b", [d], E);
    this.embedding = v("embedding", [V, M], M);
    this.gru = ["fw", "bw"].map((dir) => ({
      Wx: v(`gru_${dir}/Wx`, [M, 3 * d], d),
      Wh: v(`gru_${dir}/Wh`, [d, 3 * d], d),
      bx: v(`gru_${dir}/bx`, [3 * d], d),
      bh: v(`gru_${dir}/bh`, [3 * d], d),
    }));
  }

  get variables(): tf.Variable[] {
    return [this.imgW, this.imgB, this.embedding, ...this.gru.flatMap((g) => [g.Wx, g.Wh, g.bx, g.bh])];
  }

  /** Stable names (without the per-instance scope), for checkpoints. */
  namedVariables(): Record<string, tf.Variable> {
    return Object.fromEntries(this.variables.map((x) => [x.name.slice(this.scope.length), x]));
  }

  /** `[N, R, E]` region features → `[N, R, d]` unit vectors. */
  encodeImages(features: tf.Tensor3D): tf.Tensor3D {
    const [N, R, E] = features.shape;
    return l2norm(
      features
        .reshape([N * R, E])
        .matMul(this.imgW)
        .add(this.imgB)
        .reshape([N, R, this.config.jointDim]),
    ) as tf.Tensor3D;
  }

  /**
   * `[C, T]` word ids (padded) with their lengths → `[C, T, d]` unit word vectors (zero rows at padding).
   * The backward GRU starts at each caption's last real word (as PyTorch's packed sequences).
   */
  encodeCaptions(ids: tf.Tensor2D, lengths: readonly number[]): tf.Tensor3D {
    const [C, T] = ids.shape;
    const d = this.config.jointDim;
    const mask = lengthMask(lengths, T);
    const x = tf.gather(this.embedding, ids); // [C, T, M]
    const run = (g: ScanModel["gru"][number], order: number[]) => {
      const xg = x
        .reshape([C * T, this.config.embedSize])
        .matMul(g.Wx)
        .add(g.bx)
        .reshape([C, T, 3 * d]);
      let h = tf.zeros([C, d]) as tf.Tensor2D;
      const outs: tf.Tensor2D[] = new Array(T);
      for (const t of order) {
        const [xr, xz, xn] = tf.split(xg.slice([0, t, 0], [C, 1, 3 * d]).reshape([C, 3 * d]), 3, 1);
        const [hr, hz, hn] = tf.split(h.matMul(g.Wh).add(g.bh), 3, 1);
        const r = tf.sigmoid(xr.add(hr));
        const z = tf.sigmoid(xz.add(hz));
        const n = tf.tanh(xn.add(r.mul(hn)));
        const hNew = tf.scalar(1).sub(z).mul(n).add(z.mul(h));
        const m = mask.slice([0, t], [C, 1]);
        h = hNew.mul(m).add(h.mul(tf.scalar(1).sub(m))) as tf.Tensor2D; // padding keeps the state (0 before a backward start)
        outs[t] = hNew.mul(m) as tf.Tensor2D;
      }
      return tf.stack(outs, 1) as tf.Tensor3D;
    };
    const fw = run(
      this.gru[0],
      Array.from({ length: T }, (_, t) => t),
    );
    const bw = run(
      this.gru[1],
      Array.from({ length: T }, (_, t) => T - 1 - t),
    );
    return l2norm(fw.add(bw).div(2)) as tf.Tensor3D;
  }

  /** Scores `[N, C]` of every image against every caption (unit vectors in, see the module comment). */
  similarity(images: tf.Tensor3D, captions: tf.Tensor3D, lengths: readonly number[]): tf.Tensor2D {
    return crossAttentionScores(images, captions, lengths, this.config);
  }

  dispose(): void {
    tf.dispose(this.variables);
  }
}

type ScoreConfig = Pick<ScanConfig, "direction" | "aggregation" | "lambdaSoftmax" | "lambdaLse">;

/**
 * SCAN scores of N images × C captions from unit region vectors `[N, R, d]` and unit word vectors `[C, T, d]`
 * (padding rows ignored through `lengths`). Memory O(N·C·R·T).
 */
export function crossAttentionScores(
  images: tf.Tensor3D,
  captions: tf.Tensor3D,
  lengths: readonly number[],
  cfg: ScoreConfig,
): tf.Tensor2D {
  return tf.tidy(() => {
    const [N, R, d] = images.shape;
    const [C, T] = captions.shape;
    const wordMask = lengthMask(lengths, T);
    // s[n, c, r, t] = v_nr · e_ct
    const s = images
      .reshape([N * R, d])
      .matMul(captions.reshape([C * T, d]).transpose())
      .reshape([N, R, C, T])
      .transpose([0, 2, 1, 3]) as tf.Tensor4D;
    const gram =
      cfg.direction === "t2i"
        ? tf.matMul(images, images, false, true).reshape([N, 1, R, R])
        : tf.matMul(captions, captions, false, true).reshape([1, C, T, T]);
    return attendAndScore(
      s,
      wordMask.reshape([1, C, 1, T]) as tf.Tensor4D,
      { gram: gram as tf.Tensor4D },
      cfg,
    ) as tf.Tensor2D;
  });
}

/**
 * Scores of P (image, caption) pairs: `images [P, R, d]` with `captions [P, T, d]` → `[P]` (the same numbers as
 * the matching entries of crossAttentionScores, at P pairs' cost instead of all N·C).
 */
export function pairScores(
  images: tf.Tensor3D,
  captions: tf.Tensor3D,
  lengths: readonly number[],
  cfg: ScoreConfig,
): tf.Tensor1D {
  return tf.tidy(() => {
    const [P, R] = images.shape;
    const T = captions.shape[1];
    const s = tf.matMul(images, captions.transpose([0, 2, 1])).reshape([P, 1, R, T]) as tf.Tensor4D;
    const mask4 = lengthMask(lengths, T).reshape([P, 1, 1, T]) as tf.Tensor4D;
    // per pair, |a_q|² from the attended vectors themselves where that is cheaper than the R × R Gram (t2i)
    const context =
      cfg.direction === "t2i"
        ? {
            attendedNormSq: (attn: tf.Tensor4D) =>
              tf
                .matMul(attn.reshape([P, T, R]), images)
                .square()
                .sum(2)
                .reshape([P, 1, T]),
          }
        : { gram: tf.matMul(captions, captions.transpose([0, 2, 1])).reshape([P, 1, T, T]) as tf.Tensor4D };
    return attendAndScore(s, mask4, context, cfg).reshape([P]) as tf.Tensor1D;
  });
}

/**
 * The attention and aggregation shared by all-pairs and paired scoring: similarities `s [N, C, R, T]`, the
 * words' mask broadcastable to `[N, C, 1, T]`, and the context (regions for t2i, words for i2t) as its Gram
 * matrix broadcastable to `[N, C, ctx, ctx]` or as a function giving the attended vectors' squared norms
 * `[N, C, Q]` from the attention → scores `[N, C]`.
 */
function attendAndScore(
  s: tf.Tensor4D,
  mask4: tf.Tensor4D,
  context: { gram: tf.Tensor4D } | { attendedNormSq: (attn: tf.Tensor4D) => tf.Tensor },
  cfg: ScoreConfig,
): tf.Tensor2D {
  const [N, C, R, T] = s.shape;
  let attn: tf.Tensor4D; // weights over the context, for each query
  let sim: tf.Tensor4D; // s laid out [N, C, query, context]
  let queryMask: tf.Tensor; // broadcastable to [N, C, Q] — which queries count
  if (cfg.direction === "t2i") {
    attn = wordToRegionAttention(s, mask4, cfg.lambdaSoftmax);
    sim = s.transpose([0, 1, 3, 2]) as tf.Tensor4D; // [N, C, T, R]
    queryMask = mask4.reshape([mask4.shape[0], mask4.shape[1], T]);
  } else {
    // queries: regions; context: words. Normalise over the regions, softmax over the (real) words.
    const norm = l2norm(tf.leakyRelu(s, 0.1), 2); // [N, C, R, T]
    const logits = norm.mul(cfg.lambdaSoftmax).add(tf.scalar(1).sub(mask4).mul(-1e9)); // padded words get no weight
    attn = tf.softmax(logits) as tf.Tensor4D; // over T
    sim = s;
    queryMask = tf.ones([1, 1, R]);
  }
  // cos(query, Σ α·context) = (Σ α·s) / ‖Σ α·context‖, ‖Σ α·context‖² = αᵀ G α (query vectors are unit)
  const dot = attn.mul(sim).sum(3); // [N, C, Q]
  const [, , q, k] = attn.shape;
  let sq: tf.Tensor;
  if ("gram" in context) {
    const gB = tf.broadcastTo(context.gram, [N, C, k, k]).reshape([N * C, k, k]);
    sq = tf
      .matMul(attn.reshape([N * C, q, k]), gB)
      .reshape([N, C, q, k])
      .mul(attn)
      .sum(3);
  } else sq = context.attendedNormSq(attn);
  const rowSim = dot.div(tf.maximum(sq.add(1e-16).sqrt(), EPS)); // [N, C, Q]
  const qm = tf.broadcastTo(queryMask, rowSim.shape);
  if (cfg.aggregation === "lse") {
    const e = rowSim.mul(cfg.lambdaLse).exp().mul(qm).sum(2);
    return e.log().div(cfg.lambdaLse) as tf.Tensor2D;
  }
  return rowSim.mul(qm).sum(2).div(qm.sum(2)) as tf.Tensor2D;
}

/**
 * Text-to-image attention weights `[N, C, T, R]` from the similarities `s [N, C, R, T]` and the words' mask
 * (broadcastable to `[N, C, 1, T]`): for each word, a softmax over the regions of λ·(LeakyReLU₀.₁(s)
 * normalised over the caption's real words). These are the word–region alignments SCAN shows.
 */
export function wordToRegionAttention(s: tf.Tensor4D, mask4: tf.Tensor4D, lambdaSoftmax: number): tf.Tensor4D {
  return tf.tidy(() => {
    const norm = l2norm(tf.leakyRelu(s, 0.1).mul(mask4), 3);
    return tf.softmax(norm.mul(lambdaSoftmax).transpose([0, 1, 3, 2])) as tf.Tensor4D;
  });
}

/** The alignment of one caption with one image: α `[T, R]` (one distribution over the regions per word). */
export function alignment(model: ScanModel, features: tf.Tensor3D, ids: tf.Tensor2D, length: number): tf.Tensor2D {
  return tf.tidy(() => {
    const v = model.encodeImages(features); // [1, R, d]
    const e = model.encodeCaptions(ids, [length]); // [1, T, d]
    const [, R, d] = v.shape;
    const T = e.shape[1];
    const s = v
      .reshape([R, d])
      .matMul(e.reshape([T, d]).transpose())
      .reshape([1, 1, R, T]) as tf.Tensor4D;
    const mask = lengthMask([length], T).reshape([1, 1, 1, T]) as tf.Tensor4D;
    return wordToRegionAttention(s, mask, model.config.lambdaSoftmax)
      .reshape([T, R])
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
