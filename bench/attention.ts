/**
 * Where does attention point, and what makes it point at what it names? Trains decoder variants on the synthetic
 * scenes (`npm start`'s 2,000 scenes, lr 1e-3 held constant, batch 64, 12 epochs, from the seed's conv5 features
 * without a region layer — the study's baseline, not today's main job) and
 * measures each on the 200 dev scenes with greedy captions: scenes captioned exactly right (after each epoch and at
 * the end), attention pointing (the peak of α inside the named object's box) and α's mass in that box against a
 * uniform map, at the shape word and at the colour word before it, and pointing by the word's place from the shape
 * word (−3 … +1: does α pick the object before it is named, and stay on it after?).
 *   npx tsx bench/attention.ts [variants=seed,lambda0,lambda1,regionlayer512] [seeds=1] [epochs=12]
 *     [dims=seed|quick] [json=FILE]
 * Variants: see VARIANTS below, each a change to today's default (λ = 0); "a+b" combines two. Results accumulate in the JSON file (default
 * runs/bench-attention.json) so a long study can be run in parts.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describeBackend, initBackend } from "../lib/engine";
import {
  DecoderConfig,
  attentionCorrectness,
  captionImages,
  pipelineConfig,
  scoreScenes,
  train,
} from "../lib/captioning";
import { TrainConfig } from "../lib/captioning/train";
import { CaptionData, FeatureCache, FeatureMap, encoderIdentity, prepareCaptionData } from "../lib/encoder";
import { scaledFeatures } from "./scaled-features";
import { ensureSynthetic, readBoxes } from "../lib/data";
import { projectRoot } from "../lib/util";

/** Each variant changes the main job's configuration in one way. */
interface Variant {
  about: string;
  decoder?: Partial<DecoderConfig>;
  train?: Partial<TrainConfig>;
  /** Each image's features minus their mean over the regions: uniform attention then reads nothing. */
  centred?: boolean;
  /** The features (default conv5, the seed's 7×7×2048). */
  map?: FeatureMap;
  /** The map's features of the pictures upscaled to this many pixels (bench/scaled-features.ts). */
  scale?: number;
  /** Another map's features beside the map's in each region (hypercolumns). */
  beside?: FeatureMap;
}
/** The variants still in the code; those that lost and were removed are in docs/variants.md. */
const VARIANTS: Record<string, Variant> = {
  seed: { about: "the seed's decoder: h₀/c₀ from the mean feature, gate β, λ = 1/49", train: { lambda: 1 / 49 } },
  lambda0: { about: "no doubly stochastic term (λ = 0, the default)", train: { lambda: 0 } },
  lambda1: { about: "λ = 1 on the sum over regions (the paper's weight)", train: { lambda: 1 } },
  lambda02: { about: "λ = 0.2", train: { lambda: 0.2 } },
  centred: { about: "features centred per image (f_r − mean_r f)", centred: true },
  cosine: { about: "the lr falls along half a cosine over the run", train: { lrSchedule: "cosine" } },
  grid14: { about: "the 14×14 grid of conv4 features (1,024 per region)", map: "conv4" },
  conv4pooled: {
    about: "conv4's features averaged over 2×2 cells onto the 7×7 grid (1,024 per region)",
    map: "conv4-pooled",
  },
  conv4pooled_conv5: {
    about: "conv4-pooled and conv5 side by side in each region (49 × 3,072)",
    map: "conv4-pooled",
    beside: "conv5",
  },
  conv5at448: { about: "conv5 of the scenes upscaled to 448 px, averaged onto 7×7", scale: 448 },
  conv4at448: {
    about: "conv4 of the scenes upscaled to 448 px, averaged over 4×4 cells onto 7×7",
    map: "conv4-pooled",
    scale: 448,
  },
  regionlayer: {
    about: "a layer learned over each region, f′ = ReLU(f·W_f + b_f), before the decoder reads it",
    decoder: { regionLayer: true },
  },
  regionlayer512: { about: "the region layer narrowed to 512 outputs", decoder: { regionLayer: true, regionDim: 512 } },
  regionlayer256: { about: "the region layer narrowed to 256 outputs", decoder: { regionLayer: true, regionDim: 256 } },
  lr2x: { about: "lr 2·10⁻³", train: { lr: 2e-3 } },
};

const parts = (name: string): Variant[] =>
  name.split("+").map((part) => {
    const v = VARIANTS[part];
    if (!v) throw new Error(`unknown variant "${part}" (known: ${Object.keys(VARIANTS).join(", ")})`);
    return v;
  });

/** The cache's rows with each image's mean region feature subtracted (the `centred` variant). */
function centredRead(cache: FeatureCache, read: FeatureCache["read"]): FeatureCache["read"] {
  return (images, out) => {
    const rows = read(images, out);
    const [R, E] = [cache.regions, cache.featureDim]; // locals: getters in a loop are slow under tsx
    const n = R * E;
    const mean = new Float32Array(E);
    for (let i = 0; i < images.length; i++) {
      mean.fill(0);
      for (let r = 0; r < R; r++) for (let e = 0; e < E; e++) mean[e] += rows[i * n + r * E + e];
      for (let e = 0; e < E; e++) mean[e] /= R;
      for (let r = 0; r < R; r++) for (let e = 0; e < E; e++) rows[i * n + r * E + e] -= mean[e];
    }
    return rows;
  };
}

/** Each image's rows of two caches side by side in each region (the `beside` variants). */
function besideRead(a: FeatureCache["read"], b: FeatureCache, R: number, Ea: number): FeatureCache["read"] {
  const Eb = b.featureDim;
  return (images, out = new Float32Array(images.length * R * (Ea + Eb))) => {
    const [x, y] = [a(images), b.read(images)];
    for (let q = 0; q < images.length * R; q++) {
      out.set(x.subarray(q * Ea, (q + 1) * Ea), q * (Ea + Eb));
      out.set(y.subarray(q * Eb, (q + 1) * Eb), q * (Ea + Eb) + Ea);
    }
    return out;
  };
}

type MapData = { data: CaptionData; rawRead: FeatureCache["read"]; featureDim: number };

/**
 * Points the map's cache object, which its datasets hold, at the variant's rows (upscaled, centred, another map's
 * beside them, or its own); returns the values per region.
 */
async function useVariantRows(
  name: string,
  map: FeatureMap,
  own: MapData,
  dataOf: (map: FeatureMap) => Promise<MapData>,
): Promise<number> {
  const scale = parts(name).find((v) => v.scale)?.scale;
  const beside = parts(name).find((v) => v.beside)?.beside;
  let read = own.rawRead;
  if (scale) {
    const scaled = FeatureCache.open(await scaledFeatures(map, scale), { ...encoderIdentity(map), imageSize: scale });
    read = scaled.read.bind(scaled);
  }
  if (parts(name).some((v) => v.centred)) read = centredRead(own.data.cache, read);
  const cache = own.data.cache as { featureDim: number; read: FeatureCache["read"] };
  cache.featureDim = own.featureDim;
  if (beside) {
    const other = (await dataOf(beside)).data.cache;
    read = besideRead(read, other, own.data.cache.regions, own.featureDim);
    cache.featureDim = own.featureDim + other.featureDim;
  }
  cache.read = read;
  return cache.featureDim;
}

function variantConfig(name: string, base: TrainConfig): TrainConfig {
  let cfg = { ...base, decoder: { ...base.decoder } };
  for (const v of parts(name)) {
    cfg = { ...cfg, ...v.train, decoder: { ...cfg.decoder, ...v.decoder } };
  }
  return cfg;
}

interface Result {
  variant: string;
  seed: number;
  dims: string;
  epochs: number;
  accuracyByEpoch: number[];
  accuracy: number;
  pointing: number;
  massInBox: number;
  uniformMass: number;
  pointingColour: number;
  massInBoxColour: number;
  /** Pointing at the shape word for small and for large objects (absent in results of earlier versions). */
  pointingSmall?: number;
  pointingLarge?: number;
  /** Pointing at the named object by the word's place from its shape word, "-3" … "1" (absent in earlier results). */
  pointingByOffset?: Record<string, number>;
  seconds: number;
}

/** Pointing and mass in box at the shape word, the colour word, by object size and by the word's place. */
function attentionFigures(items: Parameters<typeof attentionCorrectness>[0]) {
  const shape = attentionCorrectness(items);
  const colour = attentionCorrectness(items, 224, undefined, "colour");
  // objects of one size only: words naming the others match no object and are skipped
  const bySize = (size: string) =>
    attentionCorrectness(items.map((it) => ({ ...it, objects: it.objects.filter((o) => o.size === size) }))).pointing;
  return {
    pointing: shape.pointing,
    massInBox: shape.massInBox,
    uniformMass: shape.uniformMass,
    pointingColour: colour.pointing,
    massInBoxColour: colour.massInBox,
    pointingSmall: bySize("small"),
    pointingLarge: bySize("large"),
    pointingByOffset: Object.fromEntries(
      [-3, -2, -1, 0, 1].map((k) => [String(k), attentionCorrectness(items, 224, undefined, k).pointing]),
    ),
  };
}

async function main() {
  const backend = await initBackend({ quiet: true });
  const names = (process.argv[2] ?? "seed,lambda0,lambda1,regionlayer512").split(",");
  const seeds = (process.argv[3] ?? "1").split(",").map(Number);
  const epochs = Number(process.argv[4] ?? 12);
  const dims = process.argv[5] ?? "seed";
  const jsonFile = process.argv[6] ?? path.join(projectRoot(), "runs", "bench-attention.json");
  console.log(`backend: ${describeBackend(backend)}; ${os.cpus().length} cores; decoder ${dims} dimensions`);
  // The 2,000 scenes the study measured (docs/attention-study.md), in their own folder beside the built-in set.
  const dataDir = path.join(projectRoot(), "data", "synthetic-2000");
  await ensureSynthetic(dataDir, { n: 2000 });
  const boxes = readBoxes(dataDir);
  const byMap = new Map<FeatureMap, MapData>();
  const dataOf = async (map: FeatureMap) => {
    if (!byMap.has(map)) {
      const data = await prepareCaptionData(dataDir, { map, quiet: true });
      byMap.set(map, { data, rawRead: data.cache.read.bind(data.cache), featureDim: data.cache.featureDim });
    }
    return byMap.get(map)!;
  };
  const results: Result[] = fs.existsSync(jsonFile) ? JSON.parse(fs.readFileSync(jsonFile, "utf8")) : [];
  for (const name of names)
    for (const seed of seeds) {
      const map = parts(name).find((v) => v.map)?.map ?? "conv5";
      const { data, rawRead, featureDim } = await dataOf(map);
      const dev = [...data.val.dataset.images];
      // the study's baseline: the seed's inputs (conv5, no region layer) at a constant lr; variants change those by name
      const base = {
        ...pipelineConfig(
          { data: "synthetic", quick: dims === "quick", epochs, batchSize: 64, map, regionLayer: false },
          data.vocab.size,
        ),
        lrSchedule: "constant" as const,
      };
      const config = { ...variantConfig(name, base), seed };
      const width = await useVariantRows(name, map, { data, rawRead, featureDim }, dataOf);
      if (width !== featureDim) config.decoder = { ...config.decoder, encoderDim: width };
      const out = fs.mkdtempSync(path.join(os.tmpdir(), "attend-tell-bench-attention-"));
      const t0 = performance.now();
      const accuracyByEpoch: number[] = [];
      const { decoder } = await train({
        train: data.train,
        val: data.val,
        vocab: data.vocab,
        config,
        out: path.join(out, "checkpoint"),
        quiet: true,
        log: () => {},
        onEpoch: async ({ epoch, decoder: d }) => {
          accuracyByEpoch.push((await scoreScenes(d, data.vocab, data.cache, dev, boxes)).accuracy);
          console.error(`${name} seed ${seed} epoch ${epoch + 1}: ${pc(accuracyByEpoch[epoch])} % of dev scenes right`);
        },
      });
      const seconds = (performance.now() - t0) / 1000;
      const gen = await captionImages(decoder, data.cache, dev, 1, { maxLen: 24 });
      const items = gen.map((g, i) => ({ words: data.vocab.decode(g.ids), alphas: g.alphas, objects: boxes[dev[i]] }));
      decoder.dispose();
      fs.rmSync(out, { recursive: true, force: true });
      const r: Result = {
        variant: name,
        seed,
        dims,
        epochs,
        accuracyByEpoch,
        accuracy: accuracyByEpoch[accuracyByEpoch.length - 1],
        ...attentionFigures(items),
        seconds,
      };
      console.log(JSON.stringify(r));
      results.push(r);
      fs.mkdirSync(path.dirname(jsonFile), { recursive: true });
      fs.writeFileSync(jsonFile, JSON.stringify(results, null, 1));
    }
  console.log(table(results));
}

const pc = (x: number) => (100 * x).toFixed(1);

/** The results as a markdown table, one row per run. */
function table(rs: Result[]): string {
  return [
    "| variant | dims | seed | scenes right (last epoch; min–max of the last 5) | pointing (shape / colour word) | mass in box (uniform) | s |",
    "|---|---|---|---|---|---|---|",
    ...rs.map((r) => {
      const last5 = r.accuracyByEpoch.slice(-5);
      return (
        `| ${r.variant} | ${r.dims} | ${r.seed} | ${pc(r.accuracy)} % (${pc(Math.min(...last5))}–${pc(Math.max(...last5))}) ` +
        `| ${pc(r.pointing)} / ${pc(r.pointingColour)} % | ${r.massInBox.toFixed(3)} / ${r.massInBoxColour.toFixed(3)} (${r.uniformMass.toFixed(3)}) | ${r.seconds.toFixed(0)} |`
      );
    }),
  ].join("\n");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
