/**
 * The image–text retrieval protocol (as in VSE++ and SCAN): 1,000 images × 5,000 captions; an image counts as
 * retrieved at the rank of its best-ranked caption (image → text), a caption at the rank of its image
 * (text → image). Recall@K = % with rank < K (ranks from 0); medr = floor(median rank) + 1, as VSE++'s
 * evaluation code computes it; rsum = the six recalls' sum.
 */
import * as tf from "@tensorflow/tfjs";
import { TrainEngine, defaultEngine } from "../engine/backend";
import { ScanConfig, ScanModel, crossAttentionScores } from "./scan";
import { OnnxScan } from "./scan-onnx";

export interface RecallScores {
  r1: number;
  r5: number;
  r10: number;
  medr: number;
}

export interface RetrievalReport {
  i2t: RecallScores;
  t2i: RecallScores;
  rsum: number;
}

function recalls(ranks: number[]): RecallScores {
  const n = ranks.length;
  const at = (k: number) => (100 * ranks.filter((r) => r < k).length) / n;
  const sorted = [...ranks].sort((a, b) => a - b);
  const median = n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2; // numpy's median
  return { r1: at(1), r5: at(5), r10: at(10), medr: Math.floor(median) + 1 };
}

/**
 * Recall@K both ways from a score matrix `scores[i][c]` (images × captions, row-major, nImages·nCaptions) and
 * the image of each caption. Ties and NaN count against the true match.
 */
export function retrievalRecall(
  scores: Float32Array | number[],
  nImages: number,
  captionImage: readonly number[],
): RetrievalReport {
  const C = captionImage.length;
  if (scores.length !== nImages * C)
    throw new Error(`retrievalRecall: ${scores.length} scores for ${nImages} images × ${C} captions`);
  const own: number[][] = Array.from({ length: nImages }, () => []);
  captionImage.forEach((im, c) => {
    if (im < 0 || im >= nImages)
      throw new Error(`retrievalRecall: caption ${c} belongs to image ${im}, outside 0..${nImages - 1}`);
    own[im].push(c);
  });
  // "!(s < mine)": a tie or a NaN ranks above the true match, so that a broken model (NaN or constant scores)
  // scores no recall at all rather than a perfect one.
  const i2t = own.map((caps, i) => {
    if (caps.length === 0) throw new Error(`retrievalRecall: image ${i} has no caption`);
    const row = i * C;
    const best = Math.max(...caps.map((c) => scores[row + c]));
    let rank = 0;
    for (let c = 0; c < C; c++) if (captionImage[c] !== i && !(scores[row + c] < best)) rank++;
    return rank;
  });
  const t2i = captionImage.map((im, c) => {
    const mine = scores[im * C + c];
    let rank = 0;
    for (let i = 0; i < nImages; i++) if (i !== im && !(scores[i * C + c] < mine)) rank++;
    return rank;
  });
  const a = recalls(i2t),
    b = recalls(t2i);
  return { i2t: a, t2i: b, rsum: a.r1 + a.r5 + a.r10 + b.r1 + b.r5 + b.r10 };
}

/**
 * Querybank normalisation by the inverted softmax (Smith et al. 2017; QB-Norm, Bogolin et al. 2022): a gallery
 * item's scores against the queries become s(q, g) − (1/β)·log Σ_b exp(β·s(b, g)), the sum over a bank of
 * queries b from the train split — an item that every query scores high (a hub) is discounted, so that it stops
 * crowding out the right answers. This returns that offset per gallery item from the bank's scores `bank`
 * (row-major `[rows, cols]`): with `galleryAxis` 1 the gallery items are the columns (one offset per column,
 * over the rows), with 0 the rows (over the columns).
 */
export function hubOffsets(
  bank: Float32Array,
  rows: number,
  cols: number,
  galleryAxis: 0 | 1,
  beta: number,
): Float32Array {
  if (bank.length !== rows * cols) throw new Error(`hubOffsets: ${bank.length} scores for ${rows} × ${cols}`);
  const [n, m] = galleryAxis === 1 ? [cols, rows] : [rows, cols];
  const at =
    galleryAxis === 1 ? (g: number, b: number) => bank[b * cols + g] : (g: number, b: number) => bank[g * cols + b];
  const out = new Float32Array(n);
  for (let g = 0; g < n; g++) {
    let max = -Infinity;
    for (let b = 0; b < m; b++) max = Math.max(max, at(g, b));
    let sum = 0;
    for (let b = 0; b < m; b++) sum += Math.exp(beta * (at(g, b) - max));
    out[g] = max + Math.log(sum) / beta; // log-sum-exp, stable
  }
  return out;
}

/**
 * SCAN scores of all images × all captions, in chunks of captions so that memory stays bounded
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

/**
 * Unit region vectors `[N, R, d]` of `images` (R regions of features read through `read`) and unit word vectors `[C, T, d]`
 * of padded captions, as row-major arrays: on ONNX Runtime where it is installed, else tfjs. Fixed chunk sizes
 * (the last chunk padded) so that a few compiled graphs serve any split.
 */
export async function encodeForRetrieval(
  model: ScanModel,
  read: (names: string[]) => Float32Array,
  regions: number,
  images: readonly string[],
  ids: ArrayLike<number>,
  lengths: readonly number[],
  T: number,
  engine: TrainEngine = defaultEngine(),
): Promise<{ images: Float32Array; captions: Float32Array }> {
  const d = model.config.jointDim,
    E = model.config.regionDim,
    N = images.length,
    C = lengths.length;
  const R = regions;
  const imgOut = new Float32Array(N * R * d),
    capOut = new Float32Array(C * T * d);
  const onnx = engine === "onnx" ? new OnnxScan(model.config, R) : undefined;
  const params = onnx ? await OnnxScan.parameters(model) : {};
  const IMG_CHUNK = 64,
    CAP_CHUNK = 256;
  for (let i = 0; i < N; i += IMG_CHUNK) {
    const names = images.slice(i, i + IMG_CHUNK);
    const f = read([...names]);
    let v: Float32Array;
    if (onnx) {
      const padded = new Float32Array(IMG_CHUNK * R * E);
      padded.set(f);
      v = await onnx.encodeImages(params, padded, IMG_CHUNK);
    } else {
      const t = tf.tensor3d(f, [names.length, R, E]);
      const e = tf.tidy(() => model.encodeImages(t));
      v = (await e.data()) as Float32Array;
      tf.dispose([t, e]);
    }
    imgOut.set(v.subarray(0, names.length * R * d), i * R * d);
  }
  // captions in order of length, each chunk padded only to its own longest caption
  for (const idx of lengthOrderedChunks(lengths, () => CAP_CHUNK)) {
    const n = idx.length,
      Tc = Math.max(1, ...idx.map((c) => lengths[c]));
    const chunkIds: number[] = [];
    for (const c of idx) for (let t = 0; t < Tc; t++) chunkIds.push(ids[c * T + t]);
    const lens = idx.map((c) => lengths[c]);
    let v: Float32Array;
    if (onnx) {
      // padding captions: one <PAD> word of length 1 each (their vectors are dropped)
      v = await onnx.encodeCaptions(
        params,
        [...chunkIds, ...Array((CAP_CHUNK - n) * Tc).fill(0)],
        [...lens, ...Array(CAP_CHUNK - n).fill(1)],
        Tc,
      );
    } else {
      const t = tf.tensor2d(chunkIds, [n, Tc], "int32");
      const e = tf.tidy(() => model.encodeCaptions(t, lens));
      v = (await e.data()) as Float32Array;
      tf.dispose([t, e]);
    }
    idx.forEach((c, j) => capOut.set(v.subarray(j * Tc * d, (j + 1) * Tc * d), c * T * d));
  }
  await onnx?.dispose();
  return { images: imgOut, captions: capOut };
}

/**
 * Scores `[N, C]` (row-major) of unit region vectors `images [N, R, d]` against unit word vectors
 * `captions [C, T, d]` (row-major arrays), in chunks of captions: on ONNX Runtime where it is installed
 * (lib/matching/scan-onnx.ts, every core), else tfjs (lib/matching/retrieval.ts scoreAll).
 */
export async function scoreMatrix(
  scan: ScanConfig,
  images: Float32Array,
  N: number,
  captions: Float32Array,
  lengths: readonly number[],
  T: number,
  opts: { chunk?: number; onChunk?: (done: number) => void; engine?: TrainEngine } = {},
): Promise<Float32Array> {
  const C = lengths.length,
    d = scan.jointDim,
    R = images.length / (N * d);
  if ((opts.engine ?? defaultEngine()) === "tfjs") {
    const img = tf.tensor3d(images, [N, R, d]),
      cap = tf.tensor3d(captions, [C, T, d]);
    const out = await scoreAll(img, cap, lengths, scan, { onChunk: opts.onChunk });
    tf.dispose([img, cap]);
    return out;
  }
  const onnx = new OnnxScan(scan, R);
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
    const v = await onnx.scores(
      images,
      N,
      part,
      idx.map((c) => lengths[c]),
      Tc,
    );
    for (let i = 0; i < N; i++) idx.forEach((c, j) => (out[i * C + c] = v[i * n + j]));
    opts.onChunk?.((done += n));
  }
  await onnx.dispose();
  return out;
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
