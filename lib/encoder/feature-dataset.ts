/**
 * (image features, caption ids) pairs of a split, the features read from the cache batch by batch: what both
 * models train on, since the encoder is frozen.
 */
import { SPLIT_FILES, readCaptions, resolveLayout, splitImages } from "../data/captions";
import * as tf from "@tensorflow/tfjs";
import { DataLoader } from "../data/dataloader";
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
import { cachedSplit, describeSkipped } from "./features";
import { ensureWeights } from "./weights";

export interface FeatureBatch {
  features: tf.Tensor3D;
  captions: tf.Tensor2D;
  imageNames: string[];
}

export class FeatureCaptionDataset {
  constructor(
    readonly dataset: FlickrDataset,
    readonly cache: FeatureCache,
  ) {
    const missing = dataset.images.filter((im) => !cache.has(im));
    if (missing.length)
      throw new Error(
        `${missing.length} ${dataset.split} images are not in the feature cache ${cache.dir} (first: ${missing[0]}); run \`attend-tell features\``,
      );
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
  collate = (items: { imageName: string; caption: number[] }[]): FeatureBatch => {
    const names = items.map((i) => i.imageName);
    const { ids, maxLen } = padCaptions(items.map((i) => i.caption));
    return {
      features: this.cache.tensor(names),
      captions: tf.tensor2d(ids, [items.length, maxLen], "int32"),
      imageNames: names,
    };
  };
  loader(opts: {
    batchSize: number;
    shuffle: boolean;
    seed: number;
  }): DataLoader<{ imageName: string; caption: number[] }, FeatureBatch> {
    return new DataLoader(this, {
      ...opts,
      bucketByLength: true,
      collate: this.collate,
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
  const split = (s: "train" | "dev") =>
    cachedSplit({
      dataDir,
      split: s,
      vocab,
      featuresDir,
      map: o.map,
      skipMissing: o.skipMissing,
      skipBad: o.skipBad,
      quiet: o.quiet,
    });
  const train = await split("train");
  train.cache.close();
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
    train: new FeatureCaptionDataset(train.dataset, dev.cache),
    val: new FeatureCaptionDataset(dev.dataset, dev.cache),
  };
}
