/**
 * Retrieval for a person with a question rather than a benchmark: the images that fit a typed query (a data set's
 * split or any folder of photos, features computed once and cached) and the captions that fit a picture. One
 * model or several (SCAN's t2i + i2t ensemble): their scores are averaged, as in evaluateMatching.
 */
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { EncoderCNN } from "../encoder/encoder";
import { FeatureCache, extractFeatures } from "../encoder/features";
import { ensureWeights } from "../encoder/weights";
import { padCaptions } from "../data/collate";
import { tokenize } from "../data/tokenizer";
import { scoreAll } from "./scan-engine";
import { MatchingModel } from "./scan-train";

/** The model and its ensemble partners, every one scored and averaged. */
export type Matchers = MatchingModel & { ensemble?: MatchingModel[] };

const membersOf = (o: Matchers): MatchingModel[] => [{ model: o.model, vocab: o.vocab }, ...(o.ensemble ?? [])];

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
  o: Matchers & { query: string; images: readonly string[]; cache: FeatureCache; k?: number },
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

/** The `k` captions that score highest against one image's features `[1, R, E]` (image → text). */
export async function retrieveCaptions(
  o: Matchers & { features: tf.Tensor3D; captions: readonly string[]; k?: number },
): Promise<{ caption: string; score: number }[]> {
  const sum = new Float64Array(o.captions.length);
  const members = membersOf(o);
  for (const { model, vocab } of members) {
    const encoded = o.captions.map((c) => vocab.encode(c));
    const { ids, maxLen } = padCaptions(encoded);
    const lengths = encoded.map((c) => c.length);
    const img = tf.tidy(() => model.encodeImages(o.features));
    const capIds = tf.tensor2d(ids, [encoded.length, maxLen], "int32");
    const caps = tf.tidy(() => model.encodeCaptions(capIds, lengths));
    (await scoreAll(img, caps, lengths, model.config)).forEach((v, i) => (sum[i] += v / members.length));
    tf.dispose([img, capIds, caps]);
  }
  return bestScored(o.captions, sum, o.k ?? 5).map(({ item, score }) => ({ caption: item, score }));
}

/**
 * The `k` photos of `files` (paths) that fit a typed query. Their features are computed on first use into
 * `featuresDir` (keyed by file name) and read from there after; photos that cannot be decoded stop it, naming
 * the file, or with `onBadImage: "skip"` are left out and listed in `skipped`.
 */
export async function searchPhotos(
  o: Matchers & {
    query: string;
    files: readonly string[];
    featuresDir: string;
    k?: number;
    onBadImage?: "error" | "skip";
    quiet?: boolean;
  },
): Promise<{ results: { file: string; score: number }[]; skipped: { file: string; why: string }[] }> {
  checkQuery(o, o.query);
  ensureWeights({ log: o.quiet ? () => {} : undefined });
  const { skipped } = await extractFeatures({
    files: [...o.files],
    out: o.featuresDir,
    quiet: o.quiet,
    onBadImage: o.onBadImage,
  });
  const bad = new Set(skipped.map((b) => b.file));
  const files = o.files.filter((f) => !bad.has(f));
  const byName = new Map(files.map((f) => [path.basename(f), f]));
  const cache = FeatureCache.open(o.featuresDir);
  try {
    const ranked = await retrieveImages({ ...o, images: [...byName.keys()], cache });
    return { results: ranked.map((r) => ({ file: byName.get(r.image)!, score: r.score })), skipped };
  } finally {
    cache.close();
  }
}

/** The `k` of `captions` that fit a picture file (any JPEG, PNG or WebP), through the frozen ResNet-50. */
export async function captionsForPicture(
  o: Matchers & { file: string; captions: readonly string[]; k?: number; encoder?: EncoderCNN },
): Promise<{ caption: string; score: number }[]> {
  if (o.captions.length === 0) throw new Error(`no captions to rank for ${o.file}`);
  const encoder = o.encoder ?? (await EncoderCNN.load());
  const x = await EncoderCNN.loadBatch([o.file]);
  const f = encoder.encode(x);
  try {
    return await retrieveCaptions({ ...o, features: f });
  } finally {
    tf.dispose([x, f]);
    if (!o.encoder) encoder.dispose();
  }
}
