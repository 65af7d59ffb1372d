/**
 * (image features, caption ids) pairs of a split, the features read from the cache batch by batch: what both
 * models train on, since the encoder is frozen.
 */
import { SPLIT_FILES, readCaptions, resolveLayout, splitImages } from "../data/captions";
import * as tf from "@tensorflow/tfjs";
import { CollateAt, DataLoader } from "../data/dataloader";
import { FeatureCache } from "./feature-cache";
import { FEATURE_MAP, FeatureMap, decoderFeatureMap } from "./feature-maps";
import { FlickrDataset } from "../data/dataset";
import { padCaptions } from "../data/collate";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { trainCaptions } from "../data/dataset";
import { Vocabulary, buildVocabulary } from "../data/vocabulary";
import { projectRoot } from "../util/paths";
import { Rng } from "../util/rng";
import { cachedSplit, describeSkipped } from "./features";
import { ensureWeights } from "./weights";

export interface FeatureBatch {
  features: tf.Tensor3D;
  captions: tf.Tensor2D;
  imageNames: string[];
}

/**
 * A second view of every photo: its features computed on the photo flipped left to right, shown with its caption's
 * "left" and "right" swapped — twice the images for a model that overfits 6,000 of them (docs/mirrored-photos.md).
 */
export interface MirrorView {
  cache: FeatureCache;
  /** Word ids swapped in a mirrored photo's caption (left ↔ right). */
  swap: ReadonlyMap<number, number>;
}

/** The swap of a mirrored caption: left ↔ right, where the vocabulary has both. */
export function mirrorSwap(vocab: Vocabulary): Map<number, number> {
  if (!vocab.has("left") || !vocab.has("right")) return new Map();
  const [l, r] = [vocab.id("left"), vocab.id("right")];
  return new Map([
    [l, r],
    [r, l],
  ]);
}

/** Whether item `index` is shown mirrored in `epoch`: a fair draw from (seed, epoch, index), so a resumed run agrees. */
export function mirroredAt(seed: number, epoch: number, index: number): boolean {
  return new Rng((seed ^ Math.imul(epoch + 1, 0x85ebca6b) ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0).next() < 0.5;
}

export class FeatureCaptionDataset {
  constructor(
    readonly dataset: FlickrDataset,
    readonly cache: FeatureCache,
    readonly mirror?: MirrorView,
  ) {
    for (const c of mirror ? [cache, mirror.cache] : [cache]) {
      const missing = dataset.images.filter((im) => !c.has(im));
      if (missing.length)
        throw new Error(
          `${missing.length} ${dataset.split} images are not in the feature cache ${c.dir} (first: ${missing[0]}); run \`attend-tell features\``,
        );
    }
  }
  get length(): number {
    return this.dataset.length;
  }
  captionLength(i: number): number {
    return this.dataset.captionLength(i);
  }
  async getItem(i: number): Promise<{ imageName: string; caption: number[] }> {
    return { imageName: this.dataset.records[i].image, caption: this.dataset.caption(i) };
  }
  collate = (items: { imageName: string; caption: number[] }[], at?: CollateAt & { seed: number }): FeatureBatch => {
    const names = items.map((i) => i.imageName);
    const flip = this.mirror && at ? at.indices.map((i) => mirroredAt(at.seed, at.epoch, i)) : undefined;
    const swap = this.mirror?.swap;
    const captions = items.map((it, k) => (flip?.[k] ? it.caption.map((w) => swap!.get(w) ?? w) : it.caption));
    const { ids, maxLen } = padCaptions(captions);
    let features: tf.Tensor3D;
    if (!flip?.some(Boolean)) features = this.cache.tensor(names);
    else {
      const row = this.cache.rowValues;
      const values = new Float32Array(names.length * row);
      names.forEach((n, k) =>
        (flip[k] ? this.mirror!.cache : this.cache).read([n], values.subarray(k * row, (k + 1) * row)),
      );
      features = tf.tensor3d(values, [names.length, this.cache.regions, this.cache.featureDim]);
    }
    return { features, captions: tf.tensor2d(ids, [items.length, maxLen], "int32"), imageNames: names };
  };

  loader(opts: {
    batchSize: number;
    shuffle: boolean;
    seed: number;
  }): DataLoader<{ imageName: string; caption: number[] }, FeatureBatch> {
    return new DataLoader(this, {
      ...opts,
      bucketByLength: true,
      collate: (items, at) => this.collate(items, { ...at, seed: opts.seed }),
      dispose: (b) => tf.dispose([b.features, b.captions]),
    });
  }
}

export interface CaptionData {
  dataDir: string;
  featuresDir: string;
  vocab: Vocabulary;
  cache: FeatureCache;
  train: FeatureCaptionDataset;
  val: FeatureCaptionDataset;
  /** Train and dev images left out (no photo, or one that cannot be decoded), with the reason for each. */
  skipped: { image: string; why: string }[];
}

/**
 * `data/features/<folder name>`; for generated (synthetic) sets, whose images change with their options under
 * the same names, the name also carries a hash of the set's options, so a cache never serves another set; features
 * other than the seed's conv5 go to a folder of their own (`-conv4`, `-conv4-pooled`).
 */
export function defaultFeaturesDir(dataDir: string, map: FeatureMap = FEATURE_MAP): string {
  const base = path.basename(path.resolve(dataDir));
  const config = path.join(dataDir, "synthetic.json");
  const tag = fs.existsSync(config)
    ? `-${createHash("sha1").update(fs.readFileSync(config)).digest("hex").slice(0, 8)}`
    : "";
  return path.join(projectRoot(), "data", "features", base + tag + (map === FEATURE_MAP ? "" : `-${map}`));
}

/** The cache a trained decoder reads for `dataDir`: the folder's, of the feature map it was trained on. */
export function decoderFeaturesDir(dataDir: string, config: { encoderDim: number; featureMap?: FeatureMap }): string {
  return defaultFeaturesDir(dataDir, decoderFeatureMap(config));
}

/** The mirror images' cache beside a feature cache: `<dir>-mirrored` (never inside it, whatever the trailing slash). */
export const mirroredDir = (featuresDir: string): string => `${path.resolve(featuresDir)}-mirrored`;

/** Training needs images in both splits: an empty one would give a NaN dev loss, or nothing to learn from. */
function emptySplit(dataDir: string, split: "train" | "dev", images: readonly string[]): void {
  if (images.length === 0)
    throw new Error(
      `${dataDir}: the ${split} split has no usable images (${SPLIT_FILES[split]}): training needs ${split === "dev" ? "dev images for its validation loss and selection" : "train images"}`,
    );
}

/**
 * Features of the train and dev images (computed once, then read from `data/features/<folder name>`), the
 * vocabulary of the train captions, and both splits as (features, caption) datasets.
 */
export async function prepareCaptionData(
  dataDir: string,
  o: {
    featuresDir?: string;
    /** The features (default conv5, the seed's); the default cache folder is the map's own. */
    map?: FeatureMap;
    /** Train on each photo and its mirror image (MirrorView), whose features go to `<features folder>-mirrored`. */
    mirror?: boolean;
    skipMissing?: boolean;
    skipBad?: boolean;
    threshold?: number;
    quiet?: boolean;
  } = {},
): Promise<CaptionData> {
  const featuresDir = o.featuresDir ?? defaultFeaturesDir(dataDir, o.map);
  const layout = resolveLayout(dataDir);
  const records = readCaptions(layout.captionsFile);
  for (const s of ["train", "dev"] as const) emptySplit(dataDir, s, splitImages(layout, s, records)); // before any work
  ensureWeights();
  const vocab = buildVocabulary(trainCaptions(dataDir), o.threshold ?? 5);
  const splitOptions = (s: "train" | "dev") => ({
    dataDir,
    split: s,
    vocab,
    featuresDir,
    map: o.map,
    skipMissing: o.skipMissing,
    skipBad: o.skipBad,
    quiet: o.quiet,
  });
  const split = (s: "train" | "dev") => cachedSplit(splitOptions(s));
  const train = await split("train");
  train.cache.close();
  const mirror = o.mirror
    ? {
        cache: (await cachedSplit({ ...splitOptions("train"), featuresDir: mirroredDir(featuresDir), mirror: true }))
          .cache,
        swap: mirrorSwap(vocab),
      }
    : undefined;
  const dev = await split("dev"); // its cache was opened after both extractions: it holds every row
  for (const [name, part] of [
    ["train", train],
    ["dev", dev],
  ] as const)
    emptySplit(dataDir, name, part.dataset.images);
  const skipped = [...train.skipped, ...dev.skipped];
  if (skipped.length && !o.quiet) console.error(`[attend-tell] ${describeSkipped(skipped)}`);
  return {
    dataDir,
    featuresDir,
    vocab,
    cache: dev.cache,
    skipped,
    train: new FeatureCaptionDataset(train.dataset, dev.cache, mirror),
    val: new FeatureCaptionDataset(dev.dataset, dev.cache),
  };
}
