/**
 * Pixels as the encoder reads them, and their normalisation: plain arrays, no decoder, so that a web page (which
 * decodes a photo with a canvas) normalises exactly as lib/data/image.ts does after sharp.
 */

/** Pixels in HWC order, RGB, 0..255. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/**
 * How pixel values are mapped before the CNN:
 * - `none`: 0..255 as is;  `unit`: /255 → 0..1;
 * - `caffe`: RGB→BGR and subtract the ImageNet BGR mean [103.939, 116.779, 123.68] (Keras ResNet50);
 * - `torch`: /255, subtract [0.485, 0.456, 0.406], divide by [0.229, 0.224, 0.225] (torchvision).
 */
export type Normalization = "none" | "unit" | "caffe" | "torch";
export const NORMALIZATIONS: readonly Normalization[] = ["none", "unit", "caffe", "torch"];

/** HWC float values after `normalization`. */
export function normalizePixels(img: RgbImage, normalization: Normalization): Float32Array {
  const src = img.data;
  const out = new Float32Array(src.length);
  switch (normalization) {
    case "none":
      out.set(src);
      break;
    case "unit":
      for (let i = 0; i < src.length; i++) out[i] = src[i] / 255;
      break;
    case "caffe":
      for (let i = 0; i < src.length; i += 3) {
        out[i] = src[i + 2] - 103.939;
        out[i + 1] = src[i + 1] - 116.779;
        out[i + 2] = src[i] - 123.68;
      }
      break;
    case "torch": {
      const mean = [0.485, 0.456, 0.406];
      const std = [0.229, 0.224, 0.225];
      for (let i = 0; i < src.length; i++) out[i] = (src[i] / 255 - mean[i % 3]) / std[i % 3];
      break;
    }
    default:
      throw new Error(`unknown normalization ${JSON.stringify(normalization)}; use one of ${NORMALIZATIONS.join(", ")}`);
  }
  return out;
}
