/**
 * The feature cache. The encoder is frozen, so each image's 49×2048 features are computed once and training
 * reads them instead of running ResNet-50 every epoch.
 *
 * On disk, a folder:
 *   features.f16   rows of 49×2048 float16 (200,704 bytes each), appended in the order computed
 *   index.json     { format, version, encoder (identity), rows, images: [name of row 0, 1, …] }
 * The index is rewritten atomically after each appended chunk and is the truth: bytes past `rows` rows are an
 * interrupted append and are cut off when extraction resumes, so no image is computed twice and nothing
 * half-written is ever read. A cache made by another encoder (model, layer, preprocessing) is refused.
 * float16 adds a relative error ≤ 2⁻¹¹ (≈ 0.05 %) per value; features after ReLU are ≥ 0 and well inside its range.
 */

import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import {
  EncoderIdentity,
  FEATURE_DIM,
  FEATURE_MAP,
  FeatureMap,
  Grid,
  REGIONS,
  encoderIdentity,
  mapFlags,
  mapOfIdentity,
  mapShape,
} from "./feature-maps";
import { decodeHalf } from "../util/float16";
import { readJson } from "../util/io";

export const FEATURES_FORMAT = "attend-tell/features";
export const FEATURES_VERSION = 1;
/** Values and float16 bytes of one image's row of the seed's features (FeatureCache.rowValues: on its own). */
export const ROW_VALUES = REGIONS * FEATURE_DIM;
export const ROW_BYTES = ROW_VALUES * 2;
/** Values of one image's row of a feature map: regions × featureDim. */
export function rowValuesOf(map: FeatureMap): number {
  const { regions, featureDim } = mapShape(map);
  return regions * featureDim;
}

/** A cache's index.json. */
export interface IndexJSON {
  format: string;
  version: number;
  encoder: EncoderIdentity;
  rows: number;
  images: string[];
  /**
   * Per row, the first 16 hex digits of the sha256 of the image file it was computed from: a row is reused only for
   * the same content (another data set with the same file names, an edited photo). Absent in caches written before.
   */
  hashes?: string[];
}

/** The content key of an image file (see IndexJSON.hashes). */
export function imageHash(file: string): string {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex").slice(0, 16);
}

export const indexFile = (dir: string) => path.join(dir, "index.json");
export const dataFile = (dir: string) => path.join(dir, "features.f16");

function sameIdentity(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The cache's index, checked against `encoder` (absent: any feature map of this encoder and preprocessing). */
export function readIndex(dir: string, encoder?: EncoderIdentity): IndexJSON {
  const file = indexFile(dir);
  const idx = readJson<IndexJSON>(file, "feature cache index");
  if (idx.format !== FEATURES_FORMAT || idx.version !== FEATURES_VERSION) {
    throw new Error(
      `${file} is not an attend-tell feature cache of version ${FEATURES_VERSION} (format ${idx.format}, version ${idx.version})`,
    );
  }
  encoder ??= encoderIdentity(mapOfIdentity(idx.encoder) ?? FEATURE_MAP);
  if (!sameIdentity(idx.encoder, encoder)) {
    throw new Error(
      `feature cache ${dir} was written by another encoder or preprocessing: ${JSON.stringify(idx.encoder)}; ` +
        `this run uses ${JSON.stringify(encoder)} — delete the cache (or pass another --out) to recompute`,
    );
  }
  return idx;
}

/** Reads rows of a cache; the whole cache never needs to be in memory (positional reads). */
export class FeatureCache {
  private readonly fd: number;
  private readonly rowOf: Map<string, number>;
  /** The features it holds (FEATURE_MAPS). */
  readonly map: FeatureMap;
  /** The side of the region grid its features are on (7 or 14). */
  readonly grid: Grid;
  /** Regions per image (49 or 196). */
  readonly regions: number;
  /** Values per region (2048 or 1024). */
  readonly featureDim: number;
  /** Values of one image's row: regions × featureDim. */
  readonly rowValues: number;

  private constructor(
    readonly dir: string,
    readonly index: IndexJSON,
  ) {
    const map = mapOfIdentity(index.encoder);
    if (map === undefined) throw new Error(`${dir}: features of layer ${index.encoder.layer} are not of a known map`);
    this.map = map;
    ({ grid: this.grid, regions: this.regions, featureDim: this.featureDim } = mapShape(map));
    this.rowValues = rowValuesOf(map);
    const rowBytes = this.rowValues * 2;
    this.fd = fs.openSync(dataFile(dir), "r");
    const size = fs.fstatSync(this.fd).size;
    if (size < index.rows * rowBytes) {
      throw new Error(
        `${dataFile(dir)} holds ${Math.floor(size / rowBytes)} whole rows where index.json lists ${index.rows}: the cache was cut short; ` +
          "run `attend-tell features` on it again to recompute the missing rows",
      );
    }
    this.rowOf = new Map(index.images.slice(0, index.rows).map((name, r) => [name, r]));
  }

  /** The cache at `dir`, refused if another encoder wrote it (`encoder` absent: any feature map of this one). */
  static open(dir: string, encoder?: EncoderIdentity): FeatureCache {
    if (!fs.existsSync(indexFile(dir)))
      throw new Error(`no feature cache at ${dir} (index.json missing): run \`attend-tell features\``);
    return new FeatureCache(dir, readIndex(dir, encoder));
  }

  get size(): number {
    return this.index.rows;
  }

  has(image: string): boolean {
    return this.rowOf.has(image);
  }

  /** Features of the named images as one `[B, regions, featureDim]` row-major float32 array. */
  read(images: readonly string[], out = new Float32Array(images.length * this.rowValues)): Float32Array {
    const n = this.rowValues;
    const buf = Buffer.allocUnsafe(n * 2);
    const half = new Uint16Array(buf.buffer, buf.byteOffset, n);
    images.forEach((name, b) => {
      const r = this.rowOf.get(name);
      if (r === undefined) throw new Error(`image ${name} is not in the feature cache ${this.dir}`);
      fs.readSync(this.fd, buf, 0, n * 2, r * n * 2);
      decodeHalf(half, out.subarray(b * n, (b + 1) * n));
    });
    return out;
  }

  /** An error, naming both, unless these are the features (`map`) that a model (`model`) reads. */
  checkFeatureMap(map: FeatureMap, model: string): void {
    if (map === this.map) return;
    const [want, have] = [mapShape(map), mapShape(this.map)];
    throw new Error(
      `${model} reads ${map} features (${want.grid}×${want.grid} × ${want.featureDim}), but the features in ` +
        `${this.dir} are ${this.map} (${have.grid}×${have.grid} × ${have.featureDim}): use a cache of its features (${mapFlags(map)})`,
    );
  }

  /** Features of the named images as a `[B, regions, featureDim]` tensor. */
  tensor(images: readonly string[]): tf.Tensor3D {
    return tf.tensor3d(this.read(images), [images.length, this.regions, this.featureDim]);
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}
