/**
 * The image–text retrieval protocol (as in VSE++ and SCAN): 1,000 images × 5,000 captions; an image counts as
 * retrieved at the rank of its best-ranked caption (image → text), a caption at the rank of its image
 * (text → image). Recall@K = % with rank < K (ranks from 0); medr = floor(median rank) + 1, as VSE++'s
 * evaluation code computes it; rsum = the six recalls' sum.
 */
import { TrainEngine, defaultEngine } from "../engine/backend";
import { ScanConfig, ScanModel } from "./scan";
import { CAPTION_CHUNK, IMAGE_CHUNK, lengthOrderedChunks, scanEngine } from "./scan-engine";

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
 * Unit region vectors `[N, R, d]` of `images` (R regions of features read through `read`) and unit word vectors `[C, T, d]`
 * of padded captions, as row-major arrays, on `engine` (lib/matching/scan-engine.ts), in chunks of IMAGE_CHUNK images
 * and CAPTION_CHUNK captions (each caption chunk padded only to its own longest caption).
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
    R = regions;
  const imgOut = new Float32Array(images.length * R * d),
    capOut = new Float32Array(lengths.length * T * d);
  const steps = scanEngine(model.config, R, engine);
  try {
    const encode = await steps.encoders(model);
    for (let i = 0; i < images.length; i += IMAGE_CHUNK) {
      const names = images.slice(i, i + IMAGE_CHUNK);
      const v = await encode.images(read([...names]), names.length);
      imgOut.set(v.subarray(0, names.length * R * d), i * R * d);
    }
    for (const idx of lengthOrderedChunks(lengths, () => CAPTION_CHUNK)) {
      const Tc = Math.max(1, ...idx.map((c) => lengths[c]));
      const chunkIds: number[] = [];
      for (const c of idx) for (let t = 0; t < Tc; t++) chunkIds.push(ids[c * T + t]);
      const v = await encode.captions(
        chunkIds,
        idx.map((c) => lengths[c]),
        Tc,
      );
      idx.forEach((c, j) => capOut.set(v.subarray(j * Tc * d, (j + 1) * Tc * d), c * T * d));
    }
  } finally {
    await steps.dispose();
  }
  return { images: imgOut, captions: capOut };
}

/**
 * Scores `[N, C]` (row-major) of unit region vectors `images [N, R, d]` against unit word vectors
 * `captions [C, T, d]` (row-major arrays), in chunks of captions, on `opts.engine` (lib/matching/scan-engine.ts).
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
  const steps = scanEngine(scan, images.length / (N * scan.jointDim), opts.engine);
  try {
    return await steps.scoreMatrix(images, N, captions, lengths, T, opts);
  } finally {
    await steps.dispose();
  }
}
