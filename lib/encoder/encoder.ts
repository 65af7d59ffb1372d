/**
 * The seed's `EncoderCNN`: ImageNet ResNet-50, frozen, with its last two layers (average pool, fc1000)
 * removed. The 7×7×2048 map of the last residual block (`activation_48`) becomes 49 region features:
 *   [B, 224, 224, 3] → [B, 7, 7, 2048] → [B, 49, 2048],  region r = row·7 + col (row-major, r = 0 top-left,
 *   r = 6 top-right, r = 48 bottom-right) — heatmaps map attention back to the picture in this order.
 * Input: Keras "caffe" preprocessing (RGB→BGR, minus the ImageNet BGR mean, no scaling): `normalization: "caffe"`.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { fileSystemIO } from "../util/io";
import { foldBatchNorm } from "./fold";
import { encodeRegions, resnetModels } from "./resnet";
import { RgbImage, loadRgb, normalizePixels } from "../data/image";
import { ensureWeights, weightsDir } from "./weights";
import { projectRoot } from "../util/paths";
import { Rng } from "../util/rng";
import {
  ENCODER_IDENTITY,
  EncoderIdentity,
  FEATURE_MAP,
  FeatureMap,
  Grid,
  encoderIdentity,
  mapShape,
} from "./feature-maps";

export * from "./feature-maps";

/**
 * The verified Keras ResNet50 as tfjs artifacts, batch norms folded into the convolutions (lib/encoder/fold.ts: same
 * outputs, ~15–25 % faster on wasm) unless `fold: false`.
 */
export async function loadResNetArtifacts(
  opts: { fetch?: boolean; fold?: boolean } = {},
): Promise<tf.io.ModelArtifacts> {
  const dir = ensureWeights({ fetch: opts.fetch });
  try {
    const artifacts = await fileSystemIO(path.join(dir, "ResNet50")).load!();
    return opts.fold === false ? artifacts : (await foldBatchNorm(artifacts)).artifacts;
  } catch (e) {
    throw new Error(
      `cannot load ResNet-50 from ${dir}: ${(e as Error).message} — delete it and run \`npm run weights\``,
      { cause: e },
    );
  }
}

/**
 * The same ResNet-50 with seeded random weights, from the topology in the package's `model.json` alone (110 KB
 * instead of 98 MiB): He-normal kernels, batch norms as identities, folded as the real ones are. For speed
 * measurements where the weights cannot travel (a GPU host takes 64 MiB): the time does not depend on the values.
 */
export async function randomResNetArtifacts(modelJson: string, seed = 1): Promise<tf.io.ModelArtifacts> {
  let m: { modelTopology: object; weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[] };
  try {
    m = JSON.parse(fs.readFileSync(modelJson, "utf8"));
  } catch (e) {
    throw new Error(`cannot read the ResNet-50 topology ${modelJson}: ${(e as Error).message}`, { cause: e });
  }
  const specs = m.weightsManifest.flatMap((g) => g.weights);
  const rng = new Rng(seed);
  const sizes = specs.map((w) => w.shape.reduce((a, b) => a * b, 1));
  const data = new Float32Array(sizes.reduce((a, b) => a + b, 0));
  let at = 0;
  specs.forEach((w, i) => {
    const kind = w.name.split("/").pop();
    const fanIn = w.shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const part = data.subarray(at, at + sizes[i]);
    if (kind === "kernel") for (let j = 0; j < part.length; j++) part[j] = rng.normal() * Math.sqrt(2 / fanIn);
    else if (kind === "gamma" || kind === "moving_variance") part.fill(1);
    at += sizes[i];
  });
  const artifacts = {
    modelTopology: m.modelTopology,
    weightSpecs: specs.map((w) => ({ name: w.name, shape: w.shape, dtype: "float32" as const })),
    weightData: data.buffer,
  };
  return (await foldBatchNorm(artifacts)).artifacts;
}

let labels: string[] | undefined;
/** The 1,000 ImageNet class names, index = fc1000 output (data/imagenet-labels.json, from the same package). */
export function imagenetLabels(): string[] {
  labels ??= JSON.parse(fs.readFileSync(path.join(projectRoot(), "data", "imagenet-labels.json"), "utf8")) as string[];
  return labels;
}

export interface Prediction {
  index: number;
  label: string;
  probability: number;
}

export class EncoderCNN {
  readonly identity: EncoderIdentity;

  private constructor(
    /** The whole Keras ResNet50, fc1000 (softmax) included: for classification. */
    readonly full: tf.LayersModel,
    /** Input → the feature layer (activation_48 on the seed's grid): the encoder proper. */
    readonly trunk: tf.LayersModel,
    /** The features it gives (FEATURE_MAPS). */
    readonly map: FeatureMap,
  ) {
    this.identity = encoderIdentity(map);
  }

  /** Loads the verified weights (fetching them on first use) and freezes every layer. */
  static async load(opts: { fetch?: boolean; fold?: boolean; map?: FeatureMap } = {}): Promise<EncoderCNN> {
    return EncoderCNN.fromArtifacts(await loadResNetArtifacts(opts), opts.map);
  }

  /** The encoder from Keras ResNet50 artifacts (loadResNetArtifacts, or randomResNetArtifacts for speed tests). */
  static async fromArtifacts(artifacts: tf.io.ModelArtifacts, map: FeatureMap = FEATURE_MAP): Promise<EncoderCNN> {
    try {
      const { full, trunk } = await resnetModels(artifacts, map);
      return new EncoderCNN(full, trunk, map);
    } catch (e) {
      throw new Error(
        `cannot build ResNet-50: ${(e as Error).message} — delete ${path.dirname(weightsDir())} and run \`npm run weights\``,
        { cause: e },
      );
    }
  }

  /** The side of its region grid. */
  get grid(): Grid {
    return mapShape(this.map).grid;
  }

  /** Names of the layers cut off after the feature layer (the seed's `modules[:-2]` for conv5). */
  get removedLayers(): string[] {
    const names = this.full.layers.map((l) => l.name);
    return names.slice(names.indexOf(mapShape(this.map).layer) + 1);
  }

  /** [B, 224, 224, 3] caffe-normalised → [B, 49, 2048] (conv4: [B, 196, 1024]; conv4-pooled: [B, 49, 1024]). */
  encode(images: tf.Tensor4D): tf.Tensor3D {
    return encodeRegions(this.trunk, images, this.map);
  }

  /** Image files → a caffe-normalised batch [B, 224, 224, 3]. Decoding runs on sharp's threads. */
  static async loadBatch(files: string[]): Promise<tf.Tensor4D> {
    const { batch, bad } = await EncoderCNN.loadBatchSkipping(files);
    if (bad.length) {
      batch?.dispose();
      throw new Error(bad[0].why);
    }
    return batch!;
  }

  /**
   * As loadBatch, but files that fail to decode are left out and returned in `bad` (batch undefined if none is
   * left); `mirror`: the photos flipped left to right.
   */
  static async loadBatchSkipping(
    files: string[],
    mirror = false,
  ): Promise<{ batch?: tf.Tensor4D; ok: string[]; bad: { file: string; why: string }[] }> {
    const size = ENCODER_IDENTITY.imageSize;
    const settled = await Promise.allSettled(files.map((f) => loadRgb(f, size, mirror)));
    const ok: string[] = [];
    const bad: { file: string; why: string }[] = [];
    const pixels: RgbImage[] = [];
    settled.forEach((r, i) => {
      if (r.status === "fulfilled") {
        ok.push(files[i]);
        pixels.push(r.value);
      } else bad.push({ file: files[i], why: (r.reason as Error).message });
    });
    if (ok.length === 0) return { ok, bad };
    const data = new Float32Array(ok.length * size * size * 3);
    pixels.forEach((p, i) => data.set(normalizePixels(p, ENCODER_IDENTITY.normalization), i * size * size * 3));
    return { batch: tf.tensor4d(data, [ok.length, size, size, 3]), ok, bad };
  }

  /** Top-k ImageNet classes per image, with the full model's softmax probabilities. */
  async classify(images: tf.Tensor4D, k = 5): Promise<Prediction[][]> {
    const probs = this.full.predict(images) as tf.Tensor2D;
    const { values, indices } = tf.topk(probs, k);
    const [v, ix] = [(await values.array()) as number[][], (await indices.array()) as number[][]];
    tf.dispose([probs, values, indices]);
    const names = imagenetLabels();
    return ix.map((row, b) =>
      row.map((index, j) => ({ index, label: names[index].replace(/_/g, " "), probability: v[b][j] })),
    );
  }

  async classifyFiles(files: string[], k = 5): Promise<Prediction[][]> {
    const batch = await EncoderCNN.loadBatch(files);
    try {
      return await this.classify(batch, k);
    } finally {
      batch.dispose();
    }
  }

  dispose(): void {
    this.full.dispose();
  }
}
