/**
 * A feature cache of a 7 × 7 map computed from the pictures upscaled (for the attention study, bench/attention.ts
 * variants `conv5at448`, `conv4at448`): ResNet-50 on SIZE × SIZE input, its conv5 or conv4 map averaged onto 7 × 7,
 * so that each region is narrower in the picture's terms while the decoder reads the same shape as the map's own
 * cache. Written beside that cache (`<its folder>-<SIZE>px`) with the same rows in the same order, the input size in
 * its header. A study tool, not a flag: the library's encoder takes 224-pixel pictures.
 *   npx tsx bench/scaled-features.ts [size=448] [map=conv5|conv4-pooled]
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { initBackend } from "../lib/engine";
import { FeatureMap, defaultFeaturesDir, loadResNetArtifacts, mapShape } from "../lib/encoder";
import { kerasToOnnx } from "../lib/engine/onnx/keras";
import { loadOrt, onnxSession } from "../lib/engine/onnx/session";
import { loadRgb, normalizePixels } from "../lib/data/image";
import { encodeHalf } from "../lib/util/float16";
import { syntheticDir } from "../lib/util";

/** The folder of `map`'s cache of the synthetic scenes at `size` pixels, computed first if it is not there. */
export async function scaledFeatures(map: FeatureMap, size: number): Promise<string> {
  const { layer, grid, featureDim, pool } = mapShape(map);
  const src = defaultFeaturesDir(syntheticDir(), map);
  const out = `${src}-${size}px`;
  if (fs.existsSync(path.join(out, "index.json"))) return out;
  const index = JSON.parse(fs.readFileSync(path.join(src, "index.json"), "utf8"));
  const side = (grid * pool * size) / 224; // the layer's own grid at this size
  if (grid !== 7 || side % 7 !== 0) throw new Error(`scaledFeatures: ${map} at ${size} px is not a 7 × 7 map`);
  const graph = await kerasToOnnx(await loadResNetArtifacts(), [{ layer, name: "features", pool: side / 7 }], {
    inputSize: size,
  });
  const session = await onnxSession(graph, 0, { memArena: true });
  const { Tensor } = loadOrt()!;
  fs.mkdirSync(out, { recursive: true });
  const fd = fs.openSync(path.join(out, "features.f16"), "w");
  const t0 = performance.now();
  for (let i = 0; i < index.rows; i += 8) {
    const names: string[] = index.images.slice(i, Math.min(i + 8, index.rows));
    const pixels = new Float32Array(names.length * size * size * 3);
    for (let k = 0; k < names.length; k++) {
      const rgb = await loadRgb(path.join(syntheticDir(), "Images", names[k]), size);
      pixels.set(normalizePixels(rgb, index.encoder.normalization), k * size * size * 3);
    }
    const r = await session.run({ input: new Tensor("float32", pixels, [names.length, size, size, 3]) });
    const f = r.features.data as Float32Array;
    if (f.length !== names.length * 49 * featureDim) throw new Error(`scaledFeatures: got ${r.features.dims}`);
    fs.writeSync(fd, encodeHalf(f));
  }
  fs.closeSync(fd);
  // the header last: a cache without one is recomputed
  const header = { ...index, encoder: { ...index.encoder, imageSize: size } };
  fs.writeFileSync(path.join(out, "index.json"), JSON.stringify(header));
  console.error(
    `${map} at ${size} px: ${index.rows} images in ${((performance.now() - t0) / 1000).toFixed(0)} s → ${out}`,
  );
  return out;
}

if (require.main === module)
  initBackend({ quiet: true })
    .then(() => scaledFeatures((process.argv[3] ?? "conv5") as FeatureMap, Number(process.argv[2] ?? 448)))
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
