/**
 * Ranking images for a typed query with one SCAN model or several (the t2i + i2t pair: scores averaged): what
 * `retrieve` runs over a feature cache and the explorer runs in the page over the photos dropped into it.
 */
import * as tf from "@tensorflow/tfjs";
import { tokenize } from "../data/tokenizer";
import type { MatchingModel } from "./scan-train";

/** Where the region features `[N, R, E]` of named images come from (a FeatureCache, or a page's own). */
export interface FeatureReader {
  tensor(images: readonly string[]): tf.Tensor3D;
}

/** The model and its ensemble partners, every one scored and averaged. */
export type Matchers = MatchingModel & { ensemble?: MatchingModel[] };

export const membersOf = (o: Matchers): MatchingModel[] => [{ model: o.model, vocab: o.vocab }, ...(o.ensemble ?? [])];

/** The top `k` of `items` by score, best first; a NaN score (damaged or diverged weights) is refused. */
export function bestScored<T>(items: readonly T[], scores: ArrayLike<number>, k: number): { item: T; score: number }[] {
  const bad = Array.prototype.findIndex.call(scores, (x: number) => Number.isNaN(x));
  if (bad >= 0)
    throw new Error(
      `the model scores ${JSON.stringify(String(items[bad]))} as NaN: its weights are damaged or its training diverged; use another checkpoint`,
    );
  return Array.from(items, (item, i) => ({ item, score: scores[i] }))
    .sort((a, b) => b.score - a.score)
    .slice(0, k);
}

/** Throws when no word of the query is in any member's vocabulary: every score would be the empty caption's. */
export function checkQuery(o: Matchers, query: string): void {
  const words = tokenize(query);
  if (!membersOf(o).some(({ vocab }) => words.some((w) => vocab.has(w))))
    throw new Error(`no word of the query ${JSON.stringify(query)} is in the model's vocabulary; nothing to rank by`);
}

/** The `k` images of `images` (names in `cache`) that score highest against a typed query (text → image). */
export async function retrieveImages(
  o: Matchers & { query: string; images: readonly string[]; cache: FeatureReader; k?: number },
): Promise<{ image: string; score: number }[]> {
  const sum = new Float64Array(o.images.length);
  // each member's query once; each chunk of features read once for all members
  const queries = membersOf(o).map(({ model, vocab }) => {
    const ids = vocab.encode(o.query);
    const cap = tf.tidy(() => model.encodeCaptions(tf.tensor2d([ids], [1, ids.length], "int32"), [ids.length]));
    return { model, cap, length: ids.length };
  });
  for (let i = 0; i < o.images.length; i += 64) {
    const names = o.images.slice(i, i + 64);
    const f = o.cache.tensor(names);
    for (const { model, cap, length } of queries) {
      const s = tf.tidy(() => model.similarity(model.encodeImages(f), cap, [length]));
      (await s.data()).forEach((v, j) => (sum[i + j] += v / queries.length));
      s.dispose();
    }
    f.dispose();
  }
  tf.dispose(queries.map((q) => q.cap));
  return bestScored(o.images, sum, o.k ?? 5).map(({ item, score }) => ({ image: item, score }));
}
