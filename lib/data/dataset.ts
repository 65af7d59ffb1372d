/**
 * The seed's `FlickrDataset`: one item per (image, caption) pair of a split, `getItem(i)` → the image as a
 * tensor plus the caption as ids with `<SOS>`/`<EOS>`. Reads any folder `resolveLayout` understands.
 */
import * as tf from "@tensorflow/tfjs";
import { CaptionRecord, DataLayout, Split, availableImages, imagePath, readCaptions, resolveLayout } from "./captions";
import { Normalization, loadImageTensor } from "./image";
import { Vocabulary } from "./vocabulary";

export interface FlickrDatasetOptions {
  /** Data folder (either layout). */
  dataDir: string;
  split: Split | "all";
  vocab: Vocabulary;
  imageSize?: number;
  /** Chosen by the encoder: "caffe" for the Keras ResNet-50; default "unit" (0..1). */
  normalization?: Normalization;
  /** A split image that is not on disk: "error" (default) names it; "skip" drops its captions and counts it. */
  onMissing?: "error" | "skip";
  /** Images to leave out, with the reason (photos that cannot be decoded); they are listed in `skipped`. */
  exclude?: ReadonlyMap<string, string>;
}

export interface DatasetItem {
  /** `[size, size, 3]`; the caller (or the DataLoader) disposes it. */
  image: tf.Tensor3D;
  /** `<SOS>` w1 … wn `<EOS>`. */
  caption: number[];
  imageName: string;
  text: string;
}

export class FlickrDataset {
  readonly layout: DataLayout;
  readonly split: Split | "all";
  readonly vocab: Vocabulary;
  readonly imageSize: number;
  readonly normalization: Normalization;
  /** One per caption, in caption-file order. */
  readonly records: readonly CaptionRecord[];
  /** Distinct images, in split-file order. */
  readonly images: readonly string[];
  /** Split images skipped: missing on disk or without a caption (`onMissing: "skip"`), or excluded. */
  readonly skipped: { image: string; why: string }[] = [];
  private readonly encoded: number[][];
  private readonly byImage: Map<string, CaptionRecord[]>;

  constructor(opts: FlickrDatasetOptions) {
    this.layout = resolveLayout(opts.dataDir);
    this.split = opts.split;
    this.vocab = opts.vocab;
    this.imageSize = opts.imageSize ?? 224;
    this.normalization = opts.normalization ?? "unit";
    const all = readCaptions(this.layout.captionsFile);
    const byImage = new Map<string, CaptionRecord[]>();
    for (const r of all) {
      const list = byImage.get(r.image);
      if (list) list.push(r);
      else byImage.set(r.image, [r]);
    }
    const { images, skipped } = availableImages(this.layout, opts.split, all, {
      skipMissing: opts.onMissing === "skip",
      captioned: (image) => byImage.has(image),
    });
    this.skipped.push(...skipped);
    const excluded = images.filter((im) => opts.exclude?.has(im));
    this.skipped.push(...excluded.map((image) => ({ image, why: opts.exclude!.get(image)! })));
    this.images = excluded.length ? images.filter((im) => !opts.exclude!.has(im)) : images;
    // Only the split's images: captionsOf must not answer for images outside the split.
    this.byImage = new Map(this.images.map((im) => [im, byImage.get(im)!]));
    this.records = this.images.flatMap((im) => byImage.get(im)!);
    this.encoded = this.records.map((r) => this.vocab.encode(r.caption));
  }

  get length(): number {
    return this.records.length;
  }

  imagePath(imageName: string): string {
    return imagePath(this.layout, imageName);
  }

  /** Caption ids of item i (with `<SOS>`/`<EOS>`), without loading the image. */
  caption(i: number): number[] {
    this.check(i);
    return this.encoded[i];
  }

  /** Caption length of item i in tokens, `<SOS>`/`<EOS>` included: what length-bucketing sorts by. */
  captionLength(i: number): number {
    return this.caption(i).length;
  }

  async getItem(i: number): Promise<DatasetItem> {
    this.check(i);
    const r = this.records[i];
    const image = await loadImageTensor(this.imagePath(r.image), this.imageSize, this.normalization);
    return { image, caption: this.encoded[i], imageName: r.image, text: r.caption };
  }

  /** All captions of the split's images, as text: the references for evaluation, the input of the vocabulary. */
  captionsOf(image: string): string[] {
    return (this.byImage.get(image) ?? []).map((r) => r.caption);
  }

  private check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.records.length) {
      throw new RangeError(`FlickrDataset(${this.split}): index ${i} is outside 0..${this.records.length - 1}`);
    }
  }
}

export { trainCaptions } from "./captions";
