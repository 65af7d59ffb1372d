/**
 * Images to tensors. sharp decodes any format and size and resizes to the encoder's input (224×224 by
 * default, aspect ratio not kept — as the seed's `transforms.Resize((224, 224))`); the normalisation is the
 * encoder's choice, passed in by name. sharp works on libuv's thread pool, so several loads in flight
 * (the DataLoader's prefetch) decode in parallel with the main thread.
 */
import * as fs from "node:fs";
import type SharpModule from "sharp";
import * as tf from "@tensorflow/tfjs";
import { Normalization, RgbImage, normalizePixels } from "./pixels";

/**
 * sharp, loaded on first use rather than imported: bundled entry scripts that decode no image (benchmarks for a
 * GPU host, see environment.md) then run without sharp's native library.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const sharp = ((...args: any[]) => (module.require("sharp") as (...a: any[]) => unknown)(...args)) as unknown as typeof SharpModule;

export * from "./pixels";

/**
 * Throws when `file` is not a regular file: a folder named like a photo gives EISDIR deep inside a decoder, and a
 * FIFO would block the read for ever.
 */
export function notAPhoto(file: string): void {
  const st = fs.statSync(file);
  if (st.isDirectory()) throw new Error("it is a folder, not a photo");
  if (!st.isFile()) throw new Error("it is not a regular file (a FIFO, socket or device), not a photo");
}

/** The photo as RGB pixels, `size` × `size`; `mirror`: flipped left to right (training's second view of a photo). */
export async function loadRgb(file: string, size = 224, mirror = false): Promise<RgbImage> {
  if (!fs.existsSync(file)) throw new Error(`image ${file} does not exist`);
  try {
    notAPhoto(file);
    const { data, info } = await sharp(file)
      .rotate() // honour EXIF orientation, as a photo viewer does
      .flop(mirror)
      .removeAlpha()
      .toColourspace("srgb")
      .resize(size, size, { fit: "fill" })
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
  } catch (e) {
    throw new Error(`cannot decode image ${file}: ${(e as Error).message}`, { cause: e });
  }
}

/** An image file as a `[size, size, 3]` float tensor. */
export async function loadImageTensor(file: string, size = 224, normalization: Normalization = "unit"): Promise<tf.Tensor3D> {
  const img = await loadRgb(file, size);
  return tf.tensor3d(normalizePixels(img, normalization), [img.height, img.width, 3]);
}

/** PNG bytes of an image file, resized — for showing it in a notebook or report. */
export async function toPng(file: string, size?: number): Promise<Buffer> {
  const s = sharp(file).rotate();
  return (size ? s.resize(size, size, { fit: "fill" }) : s).png().toBuffer();
}
