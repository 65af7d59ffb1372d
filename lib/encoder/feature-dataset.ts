/**
 * (image features, caption ids) pairs of a split, the features read from the cache batch by batch: what both
 * models train on, since the encoder is frozen.
 */
import * as tf from "@tensorflow/tfjs";
import { DataLoader } from "../data/dataloader";
import { FeatureCache, ROW_VALUES } from "./features";
import { FlickrDataset } from "../data/dataset";
import { REGIONS, FEATURE_DIM } from "./encoder";
import { padCaptions } from "../data/collate";

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
      features: tf.tensor3d(this.cache.read(names, new Float32Array(names.length * ROW_VALUES)), [
        names.length,
        REGIONS,
        FEATURE_DIM,
      ]),
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
