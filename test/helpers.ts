import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import sharp from "sharp";
import { initBackend } from "../lib/engine";
import { generateSynthetic } from "../lib/data";
import { buildVocabulary } from "../lib/data";
import { trainCaptions, FlickrDataset } from "../lib/data";
import { imageFiles } from "../lib/data";
import { extractFeatures, FeatureCache } from "../lib/encoder";
import { FeatureCaptionDataset } from "../lib/encoder";

/** Flickr8k where `FLICKR8K_DIR` points to it (CI sets it), or undefined: the tests that need it are then pending. */
export const SHARED_FLICKR = [process.env.FLICKR8K_DIR].find(
  (d): d is string => !!d && fs.existsSync(path.join(d, "Flickr8k.token.txt")),
);

/** Folders made by tmpDir, removed when the test process exits (a run leaves nothing behind in /tmp). */
const made: string[] = [];
process.on("exit", () => {
  if (process.env.ATTEND_TELL_KEEP_TMP) return; // to inspect what a failing test wrote
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});

export function tmpDir(prefix = "attend-tell-test-"): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

/** A solid-colour image of any size, in any format sharp writes. */
export async function writeImage(
  file: string,
  width: number,
  height: number,
  rgb = { r: 200, g: 30, b: 30 },
): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp({ create: { width, height, channels: 3, background: rgb } }).toFile(file);
}

/**
 * A tiny data folder in the original Flickr8k layout: images a.jpg, b.jpg (train), c.png (dev), 2 captions each.
 */
export async function tinyFlickr(dir = tmpDir()): Promise<string> {
  const caps: [string, string[]][] = [
    ["a.jpg", ["A dog runs on the grass .", "A brown dog running ."]],
    ["b.jpg", ["Two dogs play in the snow .", "A dog jumps ."]],
    ["c.png", ["A man rides a bicycle .", "Someone on a bike ."]],
  ];
  fs.writeFileSync(
    path.join(dir, "Flickr8k.token.txt"),
    caps.flatMap(([im, cs]) => cs.map((c, k) => `${im}#${k}\t${c}`)).join("\n") + "\n",
  );
  fs.writeFileSync(path.join(dir, "Flickr_8k.trainImages.txt"), "a.jpg\nb.jpg\n");
  fs.writeFileSync(path.join(dir, "Flickr_8k.devImages.txt"), "c.png\n");
  fs.writeFileSync(path.join(dir, "Flickr_8k.testImages.txt"), "");
  await writeImage(path.join(dir, "Images", "a.jpg"), 320, 200);
  await writeImage(path.join(dir, "Images", "b.jpg"), 100, 150, { r: 0, g: 0, b: 255 });
  await writeImage(path.join(dir, "Images", "c.png"), 224, 224, { r: 0, g: 255, b: 0 });
  return dir;
}

/** Every test file that touches tensors starts the same backend the CLI would (wasm here). */
export async function setupBackend(): Promise<string> {
  return (await initBackend({ quiet: true })).tfName;
}

/**
 * Weights shared with the Python reference scripts (test/reference/*.py, their `det`): a formula of the
 * parameter's name and flat index, so both sides build identical models without exchanging files.
 */
export function deterministicWeights(name: string, shape: number[]): tf.Tensor {
  const k = [...name].reduce((a, c) => a + c.charCodeAt(0), 0) % 101;
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Array.from({ length: n }, (_, i) => 0.3 * Math.sin(0.61 * i + 0.17 * k)),
    shape,
  );
}

/** Element-wise |actual − expected| ≤ tol, naming the first element that is off. */
export function closeTo(actual: ArrayLike<number>, expected: number[], tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++)
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs reference ${expected[i]}`);
}

/** A reference file written by one of the Python scripts in test/reference (the script named in the test). */
export function readReference(
  file: string,
): Record<string, any> /* eslint-disable-line @typescript-eslint/no-explicit-any -- JSON of any shape */ {
  return JSON.parse(fs.readFileSync(path.join(__dirname, "reference", file), "utf8"));
}

/**
 * Synthetic scenes with their features cached and (image, caption) datasets of train and dev: what the training
 * tests start from. Threshold 1: every template word is in the vocabulary.
 */
export async function syntheticFeatureData(n: number, seed: number) {
  const dir = path.join(tmpDir(), "synthetic");
  await generateSynthetic(dir, { n, seed });
  const vocab = buildVocabulary(trainCaptions(dir), 1);
  const cacheDir = path.join(dir, "..", "features");
  await extractFeatures({ files: imageFiles(dir, "all").files, out: cacheDir, quiet: true });
  const cache = FeatureCache.open(cacheDir);
  const split = (s: "train" | "dev") =>
    new FeatureCaptionDataset(new FlickrDataset({ dataDir: dir, split: s, vocab }), cache);
  return { dir, cacheDir, vocab, cache, trainSet: split("train"), valSet: split("dev") };
}

/** What `fn` prints with console.log, line by line. */
export async function captureLog(fn: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => void lines.push(a.join(" "));
  try {
    await fn();
  } finally {
    console.log = log;
  }
  return lines;
}
