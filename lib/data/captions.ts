/**
 * Reading a Flickr8k-style data folder: the captions (either layout), the official split files and
 * the image folder. Both layouts a user meets are read:
 *   - original Flickr8k_text: `Flickr8k.token.txt`, lines `<image>.jpg#<n><TAB><caption>`,
 *     splits in `Flickr_8k.{train,dev,test}Images.txt`, photos in `Flicker8k_Dataset/` (sic);
 *   - Kaggle: `captions.txt`, CSV `image,caption` with quoted fields, photos in `Images/`.
 * The synthetic scenes (synthetic.ts) are written in the original layout, so everything reads them alike.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Rng } from "../util/rng";
import { projectRoot } from "../util/paths";

export interface CaptionRecord {
  image: string;
  caption: string;
  /** Where it came from, for error messages. */
  file: string;
  line: number;
}

export type Split = "train" | "dev" | "test";
export const SPLITS: readonly Split[] = ["train", "dev", "test"];

export const TOKEN_FILE = "Flickr8k.token.txt";
export const CSV_FILE = "captions.txt";
export const SPLIT_FILES: Record<Split, string> = {
  train: "Flickr_8k.trainImages.txt",
  dev: "Flickr_8k.devImages.txt",
  test: "Flickr_8k.testImages.txt",
};
/**
 * Karpathy's split files (the format most captioning code reads): `{images: [{filename, filepath?, split,
 * sentences: [{raw}]}]}` with split train | restval | val | test. restval counts as train, val as dev.
 */
export const KARPATHY_FILES = ["dataset_flickr8k.json", "dataset_flickr30k.json", "dataset_coco.json"];

/** Image folders looked for, in order. `Images224`: the photos resized to 224 px, read first where a copy has them. */
export const IMAGE_DIRS = ["Images224", "Images", "Flicker8k_Dataset", "Flickr8k_Dataset", "flickr30k-images", "images"];

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The lines of a text file, which must be UTF-8: any other encoding is named with its first bad line. */
export function textLines(file: string, what = "caption file"): string[] {
  if (!fs.existsSync(file)) throw new Error(`${what} ${file} does not exist`);
  const bytes = fs.readFileSync(file);
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    let line = 1;
    for (let start = 0; start < bytes.length; line++) {
      const end = bytes.indexOf(10, start) < 0 ? bytes.length : bytes.indexOf(10, start);
      try {
        utf8.decode(bytes.subarray(start, end));
      } catch {
        break;
      }
      start = end + 1;
    }
    throw new Error(`${file}:${line}: not valid UTF-8 (Latin-1 or another encoding?); save the file as UTF-8`);
  }
  return text.replace(/^\uFEFF/, "").split(/\r?\n/);
}

/**
 * Image names are file names directly inside the image folder: a name with a folder in it could climb out of
 * the data folder ("../../etc/passwd"), and the feature cache is keyed by file name.
 */
function checkImageName(image: string, file: string, line: number): string {
  if (/[\\/]/.test(image) || image === "." || image === ".." || image.includes("\0")) {
    throw new Error(`${file}:${line}: image name ${JSON.stringify(image)} is not a plain file name; images must sit directly in the image folder`);
  }
  return image;
}

/** Original layout: `image#n<TAB>caption`. */
export function parseTokenFile(file: string): CaptionRecord[] {
  const out: CaptionRecord[] = [];
  textLines(file).forEach((text, i) => {
    const line = i + 1;
    if (text.trim() === "") return;
    const tab = text.indexOf("\t");
    if (tab < 0) throw new Error(`${file}:${line}: no tab between image and caption: ${JSON.stringify(text.slice(0, 80))}`);
    const key = text.slice(0, tab).trim();
    const hash = key.lastIndexOf("#");
    const image = hash >= 0 ? key.slice(0, hash) : key;
    if (image === "") throw new Error(`${file}:${line}: no image name before the tab`);
    checkImageName(image, file, line);
    const caption = text.slice(tab + 1).trim();
    if (caption === "") throw new Error(`${file}:${line}: empty caption for ${image}`);
    out.push({ image, caption, file, line });
  });
  return out;
}

/** One CSV record (RFC 4180 quoting: "a, b" and "" for a quote inside quotes). */
export function parseCsvLine(text: string): string[] {
  const fields: string[] = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { cur += '"'; i++; }
      else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"' && cur === "") quoted = true;
    else if (ch === ",") { fields.push(cur); cur = ""; }
    else cur += ch;
  }
  if (quoted) throw new Error("unterminated quoted field");
  fields.push(cur);
  return fields;
}

/** Kaggle layout: header `image,caption`, then one caption per row. */
export function parseCsvFile(file: string): CaptionRecord[] {
  const all = textLines(file);
  const header = parseCsvLine(all[0] ?? "").map((h) => h.trim().toLowerCase());
  const ii = header.indexOf("image");
  const ci = header.indexOf("caption");
  if (ii < 0 || ci < 0) throw new Error(`${file}:1: expected a header with columns image,caption; got ${JSON.stringify(all[0])}`);
  const out: CaptionRecord[] = [];
  for (let i = 1; i < all.length; i++) {
    const line = i + 1;
    if (all[i].trim() === "") continue;
    let fields: string[];
    try {
      fields = parseCsvLine(all[i]);
    } catch (e) {
      throw new Error(`${file}:${line}: ${(e as Error).message}`, { cause: e });
    }
    const image = (fields[ii] ?? "").trim();
    if (image === "") throw new Error(`${file}:${line}: no image name`);
    checkImageName(image, file, line);
    const caption = (fields[ci] ?? "").trim();
    if (caption === "") throw new Error(`${file}:${line}: empty caption for ${image}`);
    out.push({ image, caption, file, line });
  }
  return out;
}

interface KarpathyImage {
  filename?: unknown;
  filepath?: unknown;
  split?: unknown;
  sentences?: { raw?: unknown }[];
}
const KARPATHY_SPLIT: Record<string, Split> = { train: "train", restval: "train", val: "dev", test: "test" };

/** A Karpathy split file, parsed once per process: captions, each image's split and sub-folder (COCO's). */
export function readKarpathy(file: string): { records: CaptionRecord[]; split: Map<string, Split>; subdir: Map<string, string> } {
  const cached = karpathyCache.get(file);
  if (cached) return cached;
  let json: { images?: KarpathyImage[] };
  try {
    json = JSON.parse(textLines(file).join("\n"));
  } catch (e) {
    throw new Error(`${file} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (!Array.isArray(json.images)) throw new Error(`${file}: no "images" list (Karpathy's split format)`);
  const out = { records: [] as CaptionRecord[], split: new Map<string, Split>(), subdir: new Map<string, string>() };
  json.images.forEach((im, i) => {
    const where = `${file}: images[${i}]`;
    if (typeof im.filename !== "string" || im.filename === "") throw new Error(`${where} has no filename`);
    const image = checkImageName(im.filename, file, i + 1);
    const split = KARPATHY_SPLIT[String(im.split)];
    if (!split) throw new Error(`${where} (${image}) has split ${JSON.stringify(im.split)}; expected train, restval, val or test`);
    if (typeof im.filepath === "string" && im.filepath !== "") {
      if (path.isAbsolute(im.filepath) || im.filepath.split(/[\\/]/).includes("..")) {
        throw new Error(`${where} (${image}) has filepath ${JSON.stringify(im.filepath)}, outside the image folder`);
      }
      out.subdir.set(image, im.filepath);
    }
    out.split.set(image, split);
    for (const sentence of im.sentences ?? []) {
      const caption = typeof sentence.raw === "string" ? sentence.raw.trim() : "";
      if (caption === "") throw new Error(`${where} (${image}) has a sentence without "raw" text`);
      out.records.push({ image, caption, file, line: i + 1 });
    }
  });
  karpathyCache.set(file, out);
  return out;
}
const karpathyCache = new Map<string, ReturnType<typeof readKarpathy>>();

/** Reads a caption file of any layout: Karpathy's JSON by name, else by content (a tab before any comma: original). */
export function readCaptions(file: string): CaptionRecord[] {
  if (file.endsWith(".json")) return readKarpathy(file).records;
  const first = textLines(file).find((l) => l.trim() !== "") ?? "";
  return first.includes("\t") ? parseTokenFile(file) : parseCsvFile(file);
}

export function readSplitFile(file: string): string[] {
  const first = new Map<string, number>();
  return textLines(file, "split file")
    .map((l, i) => [l.trim(), i + 1] as const)
    .filter(([l]) => l !== "")
    .map(([l, line]) => {
      const name = checkImageName(l, file, line);
      // listed twice, an image would count twice in every metric and be trained on twice as often
      if (first.has(name)) throw new Error(`${file}:${line}: image ${name} is listed twice (first on line ${first.get(name)})`);
      first.set(name, line);
      return name;
    });
}

/** Flickr8k's official split lists, shipped for downloads that lack them (Kaggle's). */
export const OFFICIAL_SPLIT_DIR = path.join(projectRoot(), "data", "flickr8k-split");

/** Where the parts of a data folder are. */
export interface DataLayout {
  dataDir: string;
  captionsFile: string;
  imagesDir: string;
  /** Split file per split, or undefined when the folder has none (Kaggle, Karpathy's JSON). */
  splitFiles: Partial<Record<Split, string>>;
}

/** Where an image of the data folder is (COCO's sit in a sub-folder that Karpathy's file names). */
export function imagePath(layout: DataLayout, image: string): string {
  const sub = layout.captionsFile.endsWith(".json") ? readKarpathy(layout.captionsFile).subdir.get(image) : undefined;
  return sub ? path.join(layout.imagesDir, sub, image) : path.join(layout.imagesDir, image);
}

/** The data folder's image folder: the first of IMAGE_DIRS that exists, else `Images`. */
export function imagesDirOf(dataDir: string): string {
  return IMAGE_DIRS.map((d) => path.join(dataDir, d)).find((d) => fs.existsSync(d)) ?? path.join(dataDir, "Images");
}

export function resolveLayout(dataDir: string): DataLayout {
  if (!fs.existsSync(dataDir)) throw new Error(`data folder ${dataDir} does not exist`);
  const captionsFile = [TOKEN_FILE, CSV_FILE, ...KARPATHY_FILES]
    .map((f) => path.join(dataDir, f))
    .find((f) => fs.existsSync(f));
  if (!captionsFile) {
    throw new Error(
      `no caption file in ${dataDir}: expected ${TOKEN_FILE} (original Flickr8k), ${CSV_FILE} (Kaggle) ` +
        `or one of Karpathy's ${KARPATHY_FILES.join(", ")}`,
    );
  }
  // COCO's images sit in train2014/ and val2014/ under the data folder itself (Karpathy's filepath)
  const karpathy = captionsFile.endsWith(".json");
  const imagesDir =
    karpathy && !IMAGE_DIRS.some((d) => fs.existsSync(path.join(dataDir, d))) ? dataDir : imagesDirOf(dataDir);
  const splitFiles: Partial<Record<Split, string>> = {};
  for (const s of SPLITS) {
    const f = path.join(dataDir, SPLIT_FILES[s]);
    if (fs.existsSync(f)) splitFiles[s] = f;
  }
  return { dataDir, captionsFile, imagesDir, splitFiles };
}

/**
 * The images of a split. With the official split files, exactly their lists. Without them (the Kaggle
 * download has none) a seeded 6:1:1 split of the sorted image names, the official proportions — said once
 * on stderr, since results are then not comparable with published ones.
 */
export function splitImages(layout: DataLayout, split: Split | "all", records: CaptionRecord[]): string[] {
  const captioned = [...new Set(records.map((r) => r.image))].sort();
  if (split === "all") return captioned;
  const file = layout.splitFiles[split];
  if (file) return readSplitFile(file);
  if (layout.captionsFile.endsWith(".json")) {
    const of = readKarpathy(layout.captionsFile).split;
    return captioned.filter((im) => of.get(im) === split);
  }
  // Flickr8k without its split files (Kaggle's download): the official lists, so results compare with published ones.
  const official = path.join(OFFICIAL_SPLIT_DIR, SPLIT_FILES[split]);
  const known = new Set(captioned);
  if (fs.existsSync(official)) {
    const all = SPLITS.flatMap((s) => readSplitFile(path.join(OFFICIAL_SPLIT_DIR, SPLIT_FILES[s])));
    if (all.filter((im) => known.has(im)).length >= 0.9 * all.length) {
      if (!warnedNoSplit.has(layout.dataDir)) {
        warnedNoSplit.add(layout.dataDir);
        console.error(`[attend-tell] ${layout.dataDir} has no split files: it is Flickr8k, so the official 6000/1000/1000 lists shipped in ${OFFICIAL_SPLIT_DIR} are used`);
      }
      return readSplitFile(official).filter((im) => known.has(im));
    }
  }
  if (!warnedNoSplit.has(layout.dataDir)) {
    warnedNoSplit.add(layout.dataDir);
    console.error(`[attend-tell] ${layout.dataDir} has no split files (${SPLIT_FILES.train}, …): using a seeded 6:1:1 split`);
  }
  const order = new Rng(8000).shuffle([...captioned]);
  const nTrain = Math.round((order.length * 6) / 8);
  const nDev = Math.round(order.length / 8);
  const parts = { train: order.slice(0, nTrain), dev: order.slice(nTrain, nTrain + nDev), test: order.slice(nTrain + nDev) };
  return parts[split].sort();
}
const warnedNoSplit = new Set<string>();

/**
 * The split's images that can be used: captioned (when `captioned` is given) and on disk. Any other image is
 * an error naming it and where it is listed — or, with `skipMissing`, left out and returned in `skipped`.
 */
export function availableImages(
  layout: DataLayout,
  split: Split | "all",
  records: CaptionRecord[],
  opts: { skipMissing?: boolean; captioned?: (image: string) => boolean } = {},
): { images: string[]; skipped: { image: string; why: string }[] } {
  const where = split === "all" ? layout.captionsFile : layout.splitFiles[split] ?? layout.captionsFile;
  const images: string[] = [];
  const skipped: { image: string; why: string }[] = [];
  for (const image of splitImages(layout, split, records)) {
    let why: string | undefined;
    if (opts.captioned && !opts.captioned(image)) why = `has no caption in ${layout.captionsFile}`;
    else if (!fs.existsSync(imagePath(layout, image))) why = `is missing from ${path.dirname(imagePath(layout, image))}`;
    if (why === undefined) images.push(image);
    else if (opts.skipMissing) skipped.push({ image, why });
    else throw new Error(`image ${image} (listed in ${where}) ${why}; pass onMissing: "skip" (--skip-missing) to skip such images`);
  }
  return { images, skipped };
}

/** The image files of a split, for the encoder (see availableImages for missing ones). */
export function imageFiles(dataDir: string, split: Split | "all", skipMissing = false): { files: string[]; skipped: { image: string; why: string }[] } {
  const layout = resolveLayout(dataDir);
  const { images, skipped } = availableImages(layout, split, readCaptions(layout.captionsFile), { skipMissing });
  return { files: images.map((im) => imagePath(layout, im)), skipped };
}

/** The train-split caption texts of a data folder: what `buildVocabulary` is given. */
export function trainCaptions(dataDir: string): string[] {
  const layout = resolveLayout(dataDir);
  const all = readCaptions(layout.captionsFile);
  const train = new Set(splitImages(layout, "train", all));
  return all.filter((r) => train.has(r.image)).map((r) => r.caption);
}
