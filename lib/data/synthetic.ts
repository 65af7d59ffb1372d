/**
 * Synthetic scenes: the built-in data set when no Flickr8k is present, and the one place where we know
 * where each object is. Each image has 1–3 coloured shapes (circle, square, triangle, diamond; six colours;
 * small or large) on a light background, optionally with grey clutter; five template captions describe
 * them ("a red circle to the left of a blue square"). Written in the original Flickr8k layout
 * (`Flickr8k.token.txt`, `Flickr_8k.*Images.txt`, `Images/`) so FlickrDataset reads it unchanged, plus
 * `boxes.json`: each object's box in pixels, for checking where attention lands.
 * Deterministic: the same seed and count give byte-identical files.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { sharp } from "./image";
import { Rng } from "../util/rng";
import { SPLIT_FILES, Split, TOKEN_FILE } from "./captions";
import { assertOwnFolder, readJson, removeDeadLeftovers, writeFileAtomic, writeJsonAtomic } from "../util/io";
import { quickMode, syntheticDir } from "../util/paths";

export const SHAPES = ["circle", "square", "triangle", "diamond"] as const;
export const COLORS = { red: "#d62728", green: "#2ca02c", blue: "#1f77b4", yellow: "#e8c100", purple: "#8e44ad", orange: "#ff7f0e" };
export const SIZES = ["small", "large"] as const;
const BACKGROUNDS = ["#ffffff", "#f4f4f4", "#f7f1e3", "#eef4f8"];

export type Shape = (typeof SHAPES)[number];
export type Color = keyof typeof COLORS;
export type Size = (typeof SIZES)[number];

export interface SceneObject {
  shape: Shape;
  color: Color;
  size: Size;
  /** [x0, y0, x1, y1] in pixels of the `imageSize` square, x to the right, y down. */
  box: [number, number, number, number];
}

export interface Scene {
  image: string;
  background: string;
  objects: SceneObject[];
  clutter: { x1: number; y1: number; x2: number; y2: number }[];
  captions: string[];
}

export interface SyntheticOptions {
  /** Number of images. Default: the full size of the built-in set (SCENE_COUNT). */
  n?: number;
  seed?: number;
  imageSize?: number;
  /** Share of images with grey line clutter. Default 0.5. */
  clutter?: number;
  /** Fractions of images in train and dev; the rest is test. Default [0.8, 0.1]. */
  split?: [number, number];
}

export const BOXES_FILE = "boxes.json";
const CONFIG_FILE = "synthetic.json";

const article = (w: string) => (/^[aeiou]/.test(w) ? "an" : "a");

function phrase(o: SceneObject, withSize: boolean): string {
  const words = withSize ? [o.size, o.color, o.shape] : [o.color, o.shape];
  return `${article(words[0])} ${words.join(" ")}`;
}

const center = (o: SceneObject) => [(o.box[0] + o.box[2]) / 2, (o.box[1] + o.box[3]) / 2];

/** Where a sits relative to b, by the larger offset of their centres. */
export function relation(a: SceneObject, b: SceneObject): string {
  const [ax, ay] = center(a);
  const [bx, by] = center(b);
  if (Math.abs(bx - ax) >= Math.abs(by - ay)) return bx > ax ? "to the left of" : "to the right of";
  return by > ay ? "above" : "below";
}

function region(o: SceneObject, size: number): string {
  const [x, y] = center(o);
  const col = ["left", "", "right"][Math.min(2, Math.floor((3 * x) / size))];
  const row = ["top", "", "bottom"][Math.min(2, Math.floor((3 * y) / size))];
  return [row, col].filter(Boolean).join(" ") || "middle";
}

/** Five captions for a scene, varied in template, order and whether sizes are named. */
export function describe(objects: SceneObject[], rng: Rng, imageSize = 224): string[] {
  const p = (o: SceneObject) => phrase(o, rng.next() < 0.4);
  const byX = [...objects].sort((a, b) => center(a)[0] - center(b)[0]);
  if (objects.length === 1) {
    const [o] = objects;
    return [
      p(o),
      phrase(o, true),
      `there is ${p(o)} in the ${region(o, imageSize)}`,
      `${p(o)} on a plain background`,
      `a picture of ${p(o)}`,
    ];
  }
  if (objects.length === 2) {
    const [a, b] = rng.next() < 0.5 ? objects : [objects[1], objects[0]];
    return [
      `${p(a)} ${relation(a, b)} ${p(b)}`,
      `${p(b)} ${relation(b, a)} ${p(a)}`,
      `${p(byX[0])} and ${p(byX[1])}`,
      `two shapes , ${p(a)} and ${p(b)}`,
      `there is ${p(a)} ${relation(a, b)} ${p(b)}`,
    ];
  }
  const [a, b, c] = byX;
  return [
    `${p(a)} , ${p(b)} and ${p(c)}`,
    `three shapes , ${p(a)} , ${p(b)} and ${p(c)}`,
    `${p(a)} ${relation(a, b)} ${p(b)} and ${p(c)}`,
    `${p(c)} ${relation(c, b)} ${p(b)} and ${p(a)}`,
    `${p(b)} between ${p(a)} and ${p(c)}`,
  ];
}

const overlaps = (a: number[], b: number[], gap: number) =>
  a[0] < b[2] + gap && b[0] < a[2] + gap && a[1] < b[3] + gap && b[1] < a[3] + gap;

/** One scene, drawn from rng. */
export function makeScene(image: string, rng: Rng, imageSize = 224, clutterRate = 0.5): Scene {
  const count = 1 + rng.int(3);
  const objects: SceneObject[] = [];
  const scale = imageSize / 224;
  for (let tries = 0; objects.length < count && tries < 500; tries++) {
    const size = rng.pick(SIZES);
    const side = Math.round((size === "small" ? rng.uniform(36, 52) : rng.uniform(70, 92)) * scale);
    const x0 = Math.round(rng.uniform(6 * scale, imageSize - side - 6 * scale));
    const y0 = Math.round(rng.uniform(6 * scale, imageSize - side - 6 * scale));
    const box: [number, number, number, number] = [x0, y0, x0 + side, y0 + side];
    if (objects.some((o) => overlaps(o.box, box, 8 * scale))) continue;
    // Distinct (colour, shape) pairs, so every caption names each object unambiguously.
    const color = rng.pick(Object.keys(COLORS) as Color[]);
    const shape = rng.pick(SHAPES);
    if (objects.some((o) => o.color === color && o.shape === shape)) continue;
    objects.push({ shape, color, size, box });
  }
  const clutter = [];
  if (rng.next() < clutterRate) {
    for (let k = 2 + rng.int(5); k > 0; k--) {
      const x1 = rng.uniform(0, imageSize), y1 = rng.uniform(0, imageSize);
      const a = rng.uniform(0, 2 * Math.PI), len = rng.uniform(10, 40) * scale;
      clutter.push({ x1, y1, x2: x1 + len * Math.cos(a), y2: y1 + len * Math.sin(a) });
    }
  }
  const background = rng.pick(BACKGROUNDS);
  return { image, background, objects, clutter, captions: describe(objects, rng, imageSize) };
}

export function sceneSvg(scene: Scene, imageSize = 224): string {
  const f = (x: number) => x.toFixed(1);
  const parts = [`<rect width="${imageSize}" height="${imageSize}" fill="${scene.background}"/>`];
  for (const l of scene.clutter) {
    parts.push(`<line x1="${f(l.x1)}" y1="${f(l.y1)}" x2="${f(l.x2)}" y2="${f(l.y2)}" stroke="#9a9a9a" stroke-width="2"/>`);
  }
  for (const o of scene.objects) {
    const [x0, y0, x1, y1] = o.box;
    const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    const fill = `fill="${COLORS[o.color]}"`;
    if (o.shape === "circle") parts.push(`<circle cx="${f(cx)}" cy="${f(cy)}" r="${f((x1 - x0) / 2)}" ${fill}/>`);
    else if (o.shape === "square") parts.push(`<rect x="${x0}" y="${y0}" width="${x1 - x0}" height="${y1 - y0}" ${fill}/>`);
    else if (o.shape === "triangle") parts.push(`<polygon points="${f(cx)},${y0} ${x1},${y1} ${x0},${y1}" ${fill}/>`);
    else parts.push(`<polygon points="${f(cx)},${y0} ${x1},${f(cy)} ${f(cx)},${y1} ${x0},${f(cy)}" ${fill}/>`);
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${imageSize}" height="${imageSize}">${parts.join("")}</svg>`;
}

/** Renders an SVG string to PNG bytes. */
export function renderSvg(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg)).png({ compressionLevel: 6 }).toBuffer();
}

async function pool<T>(items: T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const run = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, run));
}

/**
 * Writes a synthetic data set to `outDir` (replacing what is there). It is built in a temporary folder
 * beside it and renamed into place, so `outDir` is either the old set or the complete new one.
 */
export async function generateSynthetic(
  outDir: string,
  opts: SyntheticOptions = {},
  onProgress?: (done: number, total: number) => void,
): Promise<Scene[]> {
  const cfg = resolvedOptions(opts);
  const { n, seed, imageSize } = cfg;
  const [fTrain, fDev] = cfg.split;
  if (!(Number.isInteger(n) && n >= 3)) throw new Error(`generateSynthetic: n must be an integer ≥ 3, got ${n}`);
  const rng = new Rng(seed);
  const width = String(n).length;
  const scenes = Array.from({ length: n }, (_, i) =>
    makeScene(`scene_${String(i + 1).padStart(Math.max(5, width), "0")}.png`, rng, imageSize, cfg.clutter),
  );
  outDir = path.resolve(outDir);
  removeDeadLeftovers(outDir);
  assertOwnSynthetic(outDir); // before the work: a user's folder is refused at once
  const tmp = `${outDir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(path.join(tmp, "Images"), { recursive: true });
  let done = 0;
  await pool(scenes, 8, async (s) => {
    fs.writeFileSync(path.join(tmp, "Images", s.image), await renderSvg(sceneSvg(s, imageSize)));
    onProgress?.(++done, n);
  });
  const tokens = scenes.flatMap((s) => s.captions.map((c, k) => `${s.image}#${k}\t${c}`));
  fs.writeFileSync(path.join(tmp, TOKEN_FILE), tokens.join("\n") + "\n");
  const nTrain = Math.round(n * fTrain);
  const nDev = Math.round(n * fDev);
  const parts: Record<Split, Scene[]> = {
    train: scenes.slice(0, nTrain),
    dev: scenes.slice(nTrain, nTrain + nDev),
    test: scenes.slice(nTrain + nDev),
  };
  for (const [split, list] of Object.entries(parts) as [Split, Scene[]][]) {
    fs.writeFileSync(path.join(tmp, SPLIT_FILES[split]), list.map((s) => s.image).join("\n") + "\n");
  }
  const boxes = Object.fromEntries(scenes.map((s) => [s.image, s.objects]));
  writeJsonAtomic(path.join(tmp, BOXES_FILE), { format: "attend-tell/synthetic-boxes", version: 1, imageSize, boxes });
  writeJsonAtomic(path.join(tmp, CONFIG_FILE), cfg);
  writeFileAtomic(
    path.join(tmp, "README.md"),
    `# Synthetic scenes\n\nGenerated by attend-tell (lib/data/synthetic.ts): ${n} images, seed ${seed}. ` +
      "Layout as the original Flickr8k; boxes.json gives each object's [x0, y0, x1, y1] in pixels.\n",
  );
  assertOwnSynthetic(outDir);
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(outDir), { recursive: true });
  fs.renameSync(tmp, outDir);
  return scenes;
}

/** Refuses to replace `outDir` unless it is empty or holds only a synthetic set (what generateSynthetic writes). */
function assertOwnSynthetic(outDir: string): void {
  const own = new Set<string>([TOKEN_FILE, BOXES_FILE, CONFIG_FILE, "README.md", ...Object.values(SPLIT_FILES)]);
  const ours = fs.existsSync(path.join(outDir, CONFIG_FILE));
  assertOwnFolder(outDir, (rel) => ours && (own.has(rel) || /^Images\/scene_\d+\.png$/.test(rel)), "a synthetic set");
}

/** The options as written to synthetic.json, defaults filled in. */
function resolvedOptions(opts: SyntheticOptions) {
  return { n: opts.n ?? SCENE_COUNT.full, seed: opts.seed ?? 1, imageSize: opts.imageSize ?? 224, clutter: opts.clutter ?? 0.5, split: opts.split ?? [0.8, 0.1] };
}

/** Generates the set unless `outDir` already holds one made with the same options. Returns whether it generated. */
export async function ensureSynthetic(outDir: string, opts: SyntheticOptions = {}, onProgress?: (d: number, t: number) => void): Promise<boolean> {
  const cfgFile = path.join(outDir, CONFIG_FILE);
  if (fs.existsSync(cfgFile) && fs.existsSync(path.join(outDir, BOXES_FILE))) {
    const cfg = readJson(cfgFile, "synthetic config");
    if (JSON.stringify(cfg) === JSON.stringify(resolvedOptions(opts))) return false;
  }
  await generateSynthetic(outDir, opts, onProgress);
  return true;
}

/** How many scenes the built-in set has: the quick (CI) size's, and the full size's (`npm start`, the chapters). */
export const SCENE_COUNT = { quick: 400, full: 3000 } as const;

/**
 * The built-in scenes at the quick or the full size, in their default folder (util/paths `syntheticDir`), generated
 * there on first use. Returns the folder and whether it was generated now.
 */
export async function ensureScenes(
  quick = quickMode(),
  onProgress?: (done: number, total: number) => void,
): Promise<{ dataDir: string; generated: boolean }> {
  const dataDir = syntheticDir(quick);
  const generated = await ensureSynthetic(dataDir, { n: SCENE_COUNT[quick ? "quick" : "full"] }, onProgress);
  return { dataDir, generated };
}

/** The object boxes of a synthetic data folder, by image name. */
export function readBoxes(dataDir: string): Record<string, SceneObject[]> {
  const file = path.join(dataDir, BOXES_FILE);
  const j = readJson<{ format: string; boxes: Record<string, SceneObject[]> }>(file, "synthetic boxes file");
  if (j.format !== "attend-tell/synthetic-boxes") throw new Error(`${file} is not a synthetic boxes file`);
  return j.boxes;
}
