/**
 * The image–text retrieval protocol (as in VSE++ and SCAN): 1,000 images × 5,000 captions; an image counts as
 * retrieved at the rank of its best-ranked caption (image → text), a caption at the rank of its image
 * (text → image). Recall@K = % with rank < K (ranks from 0); medr = floor(median rank) + 1, as VSE++'s
 * evaluation code computes it; rsum = the six recalls' sum.
 */
import * as tf from "@tensorflow/tfjs";
import { ScanConfig, crossAttentionScores } from "./scan";

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
 * the image of each caption. Ties count against the true match (a strict ">" ranks).
 */
export function retrievalRecall(scores: Float32Array | number[], nImages: number, captionImage: readonly number[]): RetrievalReport {
  const C = captionImage.length;
  if (scores.length !== nImages * C) throw new Error(`retrievalRecall: ${scores.length} scores for ${nImages} images × ${C} captions`);
  const own: number[][] = Array.from({ length: nImages }, () => []);
  captionImage.forEach((im, c) => {
    if (im < 0 || im >= nImages) throw new Error(`retrievalRecall: caption ${c} belongs to image ${im}, outside 0..${nImages - 1}`);
    own[im].push(c);
  });
  const i2t = own.map((caps, i) => {
    if (caps.length === 0) throw new Error(`retrievalRecall: image ${i} has no caption`);
    const row = i * C;
    const best = Math.max(...caps.map((c) => scores[row + c]));
    let rank = 0;
    for (let c = 0; c < C; c++) if (scores[row + c] > best) rank++;
    return rank;
  });
  const t2i = captionImage.map((im, c) => {
    const mine = scores[im * C + c];
    let rank = 0;
    for (let i = 0; i < nImages; i++) if (scores[i * C + c] > mine) rank++;
    return rank;
  });
  const a = recalls(i2t), b = recalls(t2i);
  return { i2t: a, t2i: b, rsum: a.r1 + a.r5 + a.r10 + b.r1 + b.r5 + b.r10 };
}

/**
 * SCAN scores of all images × all captions, in chunks of captions so that memory stays bounded
 * (O(N · chunk · R · T)). Returns row-major `[N, C]`.
 */
export async function scoreAll(
  images: tf.Tensor3D, captions: tf.Tensor3D, lengths: readonly number[],
  cfg: Pick<ScanConfig, "direction" | "aggregation" | "lambdaSoftmax" | "lambdaLse">, opts: { chunk?: number; onChunk?: (done: number) => void } = {},
): Promise<Float32Array> {
  const [N] = images.shape;
  const [C, T, d] = captions.shape;
  const chunk = opts.chunk ?? 16;
  const out = new Float32Array(N * C);
  for (let c0 = 0; c0 < C; c0 += chunk) {
    const n = Math.min(chunk, C - c0);
    const s = tf.tidy(() => crossAttentionScores(images, captions.slice([c0, 0, 0], [n, T, d]), lengths.slice(c0, c0 + n), cfg));
    const v = (await s.data()) as Float32Array;
    s.dispose();
    for (let i = 0; i < N; i++) out.set(v.subarray(i * n, (i + 1) * n), i * C + c0);
    opts.onChunk?.(c0 + n);
  }
  return out;
}
