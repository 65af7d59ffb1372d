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
import { readCaptions, resolveLayout, splitImages } from "../data/captions";
import { Rng } from "../util/rng";
import { scoreAll } from "./scan-engine";
import { encodeForRetrieval, hubOffsets, scoreMatrix } from "./retrieval";
import { Matchers, bestScored, checkQuery, membersOf, retrieveImages } from "./rank";

/** A query bank (QB-Norm): captions as probe queries, and the inverted softmax's inverse temperature β. */
export interface QueryBank {
  captions: readonly string[];
  beta: number;
}

/** The captions of `images` train images of a data folder, the images in a seeded order: a query bank's queries. */
export function bankCaptions(dataDir: string, images: number, seed = 1): string[] {
  const layout = resolveLayout(dataDir);
  const records = readCaptions(layout.captionsFile);
  const train = splitImages(layout, "train", records);
  if (train.length < images)
    throw new Error(`a query bank of ${images} train images, but ${dataDir} has ${train.length} (--querybank)`);
  const chosen = new Set(new Rng(seed).shuffle([...train]).slice(0, images));
  return records.filter((r) => chosen.has(r.image)).map((r) => r.caption);
}

/**
 * Each image's offset over a query bank (`hubOffsets`): (1/β)·log Σ_b exp(β·s(b, image)), the bank's captions
 * scored against the images by every member, averaged as a query's scores are. An image that every caption
 * matches (a hub) gets a large one.
 */
export async function bankOffsets(
  o: Matchers & { bank: QueryBank; images: readonly string[]; cache: FeatureCache },
): Promise<Float32Array> {
  const [N, C] = [o.images.length, o.bank.captions.length];
  const sum = new Float32Array(N * C);
  const members = membersOf(o);
  for (const { model, vocab } of members) {
    const caps = o.bank.captions.map((c) => vocab.encode(c));
    const { ids, maxLen } = padCaptions(caps);
    const lengths = caps.map((c) => c.length);
    const read = (names: string[]) => o.cache.read(names);
    const v = await encodeForRetrieval(model, read, o.cache.regions, o.images, ids, lengths, maxLen);
    const s = await scoreMatrix(model.config, v.images, N, v.captions, lengths, maxLen);
    s.forEach((x, i) => (sum[i] += x / members.length));
  }
  return hubOffsets(sum, N, C, 0, o.bank.beta);
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
    /** Scores less each photo's offset over this bank (`bankOffsets`): hubs stop crowding out the answer. */
    bank?: QueryBank;
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
    const images = [...byName.keys()];
    let ranked = await retrieveImages({ ...o, images, cache, k: o.bank ? images.length : o.k });
    if (o.bank) {
      const offsets = await bankOffsets({ ...o, bank: o.bank, images, cache });
      const at = new Map(images.map((im, i) => [im, i]));
      const scores = ranked.map((r) => r.score - offsets[at.get(r.image)!]);
      ranked = bestScored(
        ranked.map((r) => r.image),
        scores,
        o.k ?? 5,
      ).map(({ item, score }) => ({ image: item, score }));
    }
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
