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
import { scoreAll } from "./scan-engine";
import { Matchers, bestScored, checkQuery, membersOf, retrieveImages } from "./rank";

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
