/**
 * Where SCAN's computations run, chosen once per run — as `StepEngine` is for the captioner's training and
 * `DecodeRows` for its decoding. Training, the dev loss, retrieval's encoders and the score matrix call only this:
 *
 * - **onnx** (CPUs): the forward and the hand-written backward as ONNX Runtime graphs (lib/matching/scan-onnx.ts),
 *   compiled per shape — so batches are padded to a few fixed sizes.
 * - **tfjs** (GPUs): tfjs autodiff through `ScanModel` on the active backend.
 *
 * Both give the same loss, gradients, vectors and scores (test/scan-onnx.test.ts).
 */
import * as tf from "@tensorflow/tfjs";
import { TrainEngine, defaultEngine } from "../engine/backend";
import type { FeatureBatch } from "../encoder/feature-dataset";
import { ScanConfig, ScanModel, contrastiveLoss, crossAttentionScores } from "./scan";
import { OnnxScan } from "./scan-onnx";
import { PAD } from "../data/vocabulary";

/** Images and captions per encoder call in retrieval (ONNX Runtime pads the last call to these sizes). */
export const IMAGE_CHUNK = 64;
export const CAPTION_CHUNK = 256;

/** A model's encoders at its current weights, over row-major arrays. */
export interface ScanEncoders {
  /** `[n, R, E]` features (n ≤ IMAGE_CHUNK) → unit region vectors `[n, R, d]`. */
  images(features: Float32Array, n: number): Promise<Float32Array>;
  /** Padded ids `[n, T]` (n ≤ CAPTION_CHUNK) with their lengths → unit word vectors `[n, T, d]`. */
  captions(ids: readonly number[], lengths: readonly number[], T: number): Promise<Float32Array>;
}

export interface ScanEngine {
  /** For the log: where the steps run. */
  readonly description: string;
  /**
   * The batch's hinge loss over the `negatives` hardest negatives and, unless `backward` is false, its gradients
   * (tfjs tensors by variable name, for tfjs's optimiser).
   */
  step(
    model: ScanModel,
    b: FeatureBatch,
    o: { backward: boolean; negatives: number },
  ): Promise<{ loss: number; grads: tf.NamedTensorMap }>;
  encoders(model: ScanModel): Promise<ScanEncoders>;
  /**
   * Scores `[N, C]` (row-major) of unit vectors `images [N, R, d]` against `captions [C, T, d]`, in chunks of
   * captions so that memory stays bounded; `onChunk` gets the captions scored so far.
   */
  scoreMatrix(
    images: Float32Array,
    N: number,
    captions: Float32Array,
    lengths: readonly number[],
    T: number,
    opts?: { chunk?: number; onChunk?: (done: number) => void },
  ): Promise<Float32Array>;
  dispose(): Promise<void>;
}

/** The engine for models of `config` over `regions` regions per image. */
export function scanEngine(config: ScanConfig, regions: number, engine: TrainEngine = defaultEngine()): ScanEngine {
  return engine === "onnx" ? new OnnxScanEngine(config, regions) : new TfjsScanEngine(config, regions);
}

/** Real lengths of padded captions `[B, T]` (ids up to the first `<PAD>`). */
export function captionLengths(ids: ArrayLike<number>, B: number, T: number): number[] {
  return Array.from({ length: B }, (_, b) => {
    let n = 0;
    while (n < T && ids[b * T + n] !== PAD) n++;
    return n;
  });
}

/** The batch's hinge loss (images and captions of the batch matched along the diagonal). */
export function matchingLoss(model: ScanModel, b: FeatureBatch, lengths: number[], negatives = 1): tf.Scalar {
  const s = model.similarity(model.encodeImages(b.features), model.encodeCaptions(b.captions, lengths), lengths);
  return contrastiveLoss(s, model.config.margin, negatives);
}

/**
 * Caption indices in order of length (stable), cut into chunks: a chunk grows while it holds fewer than
 * `size(T)` captions (at least one), T being the longest in it, so short captions go in large chunks.
 */
export function lengthOrderedChunks(lengths: readonly number[], size: (T: number) => number): number[][] {
  const order = lengths.map((_, c) => c).sort((a, b) => lengths[a] - lengths[b] || a - b);
  const chunks: number[][] = [];
  let cur: number[] = [];
  for (const c of order) {
    const T = Math.max(1, lengths[c]);
    if (cur.length > 0 && cur.length + 1 > size(T)) {
      chunks.push(cur);
      cur = [];
    }
    cur.push(c);
  }
  if (cur.length) chunks.push(cur);
  return chunks;
}

/**
 * SCAN scores of all images × all captions on tfjs, in chunks of captions so that memory stays bounded
 * (O(N · chunk · R · T)). Returns row-major `[N, C]`.
 */
export async function scoreAll(
  images: tf.Tensor3D,
  captions: tf.Tensor3D,
  lengths: readonly number[],
  cfg: Pick<ScanConfig, "direction" | "aggregation" | "lambdaSoftmax" | "lambdaLse">,
  opts: { chunk?: number; onChunk?: (done: number) => void } = {},
): Promise<Float32Array> {
  const [N] = images.shape;
  const [C, T, d] = captions.shape;
  const chunk = opts.chunk ?? 16;
  const out = new Float32Array(N * C);
  for (let c0 = 0; c0 < C; c0 += chunk) {
    const n = Math.min(chunk, C - c0);
    const s = tf.tidy(() =>
      crossAttentionScores(images, captions.slice([c0, 0, 0], [n, T, d]), lengths.slice(c0, c0 + n), cfg),
    );
    const v = (await s.data()) as Float32Array;
    s.dispose();
    for (let i = 0; i < N; i++) out.set(v.subarray(i * n, (i + 1) * n), i * C + c0);
    opts.onChunk?.(c0 + n);
  }
  return out;
}

class TfjsScanEngine implements ScanEngine {
  readonly description = `tfjs on ${tf.getBackend()}`;
  constructor(
    private readonly config: ScanConfig,
    private readonly regions: number,
  ) {}

  async step(model: ScanModel, b: FeatureBatch, o: { backward: boolean; negatives: number }) {
    const [B, T] = b.captions.shape;
    const lengths = captionLengths((await b.captions.data()) as Int32Array, B, T);
    if (!o.backward) {
      const l = tf.tidy(() => matchingLoss(model, b, lengths, o.negatives));
      const loss = (await l.data())[0];
      l.dispose();
      return { loss, grads: {} };
    }
    const { value, grads } = tf.variableGrads(() => matchingLoss(model, b, lengths, o.negatives), model.variables);
    const loss = (await value.data())[0];
    value.dispose();
    return { loss, grads };
  }

  async encoders(model: ScanModel): Promise<ScanEncoders> {
    const { regions: R, config } = this;
    const run = async (make: () => tf.Tensor) => {
      const e = tf.tidy(make);
      const v = (await e.data()) as Float32Array;
      e.dispose();
      return v;
    };
    return {
      images: (f, n) => run(() => model.encodeImages(tf.tensor3d(f, [n, R, config.encoderDim]))),
      captions: (ids, lengths, T) =>
        run(() => model.encodeCaptions(tf.tensor2d(ids as number[], [lengths.length, T], "int32"), [...lengths])),
    };
  }

  async scoreMatrix(
    images: Float32Array,
    N: number,
    captions: Float32Array,
    lengths: readonly number[],
    T: number,
    opts: { chunk?: number; onChunk?: (done: number) => void } = {},
  ): Promise<Float32Array> {
    const d = this.config.jointDim;
    const img = tf.tensor3d(images, [N, this.regions, d]),
      cap = tf.tensor3d(captions, [lengths.length, T, d]);
    const out = await scoreAll(img, cap, lengths, this.config, opts);
    tf.dispose([img, cap]);
    return out;
  }

  async dispose(): Promise<void> {}
}

class OnnxScanEngine implements ScanEngine {
  readonly description = "ONNX Runtime (native CPU kernels, all cores; lib/matching/scan-onnx.ts)";
  private readonly onnx: OnnxScan;
  constructor(
    private readonly config: ScanConfig,
    private readonly regions: number,
  ) {
    this.onnx = new OnnxScan(config, regions);
  }

  async step(model: ScanModel, b: FeatureBatch, o: { backward: boolean; negatives: number }) {
    const [B, T] = b.captions.shape;
    const ids = (await b.captions.data()) as Int32Array;
    const features = (await b.features.data()) as Float32Array;
    return this.onnx.gradients(model, features, ids, captionLengths(ids, B, T), T, o);
  }

  async encoders(model: ScanModel): Promise<ScanEncoders> {
    const params = await OnnxScan.parameters(model); // read once: the weights do not change while encoding
    const { regions: R, config } = this;
    return {
      images: (f, n) => {
        const padded = new Float32Array(IMAGE_CHUNK * R * config.encoderDim);
        padded.set(f.subarray(0, n * R * config.encoderDim));
        return this.onnx.encodeImages(params, padded, IMAGE_CHUNK);
      },
      // padding captions: one <PAD> word of length 1 each (their vectors are dropped)
      captions: (ids, lengths, T) => {
        const pad = CAPTION_CHUNK - lengths.length;
        return this.onnx.encodeCaptions(
          params,
          [...ids, ...Array(pad * T).fill(0)],
          [...lengths, ...Array(pad).fill(1)],
          T,
        );
      },
    };
  }

  async scoreMatrix(
    images: Float32Array,
    N: number,
    captions: Float32Array,
    lengths: readonly number[],
    T: number,
    opts: { chunk?: number; onChunk?: (done: number) => void } = {},
  ): Promise<Float32Array> {
    const C = lengths.length,
      d = this.config.jointDim,
      R = this.regions;
    // captions in order of length, each chunk cut to its longest caption; ~N·R·chunk·T floats per intermediate,
    // kept near 20 M (80 MB)
    const size = (Tc: number) => opts.chunk ?? Math.max(1, Math.floor(2e7 / (N * R * Tc)));
    const out = new Float32Array(N * C);
    let done = 0;
    for (const idx of lengthOrderedChunks(lengths, size)) {
      const n = idx.length,
        Tc = Math.max(1, ...idx.map((c) => lengths[c]));
      const part = new Float32Array(n * Tc * d);
      idx.forEach((c, j) => part.set(captions.subarray(c * T * d, c * T * d + Tc * d), j * Tc * d));
      const lens = idx.map((c) => lengths[c]);
      const v = await this.onnx.scores(images, N, part, lens, Tc);
      for (let i = 0; i < N; i++) idx.forEach((c, j) => (out[i * C + c] = v[i * n + j]));
      opts.onChunk?.((done += n));
    }
    return out;
  }

  dispose(): Promise<void> {
    return this.onnx.dispose();
  }
}
