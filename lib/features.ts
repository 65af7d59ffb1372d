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
import { fork } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as os from "node:os";
import { ENCODER_IDENTITY, EncoderIdentity, FEATURE_DIM, REGIONS } from "./encoder";
import { decodeHalf } from "./float16";
import { readJson, writeJsonAtomic } from "./io";
import { Progress } from "./progress";
import { onnxAvailable } from "./encoder-onnx";
import { parseOverride } from "./backend";

export const FEATURES_FORMAT = "attend-tell/features";
export const FEATURES_VERSION = 1;
export const ROW_VALUES = REGIONS * FEATURE_DIM;
export const ROW_BYTES = ROW_VALUES * 2;

interface IndexJSON {
  format: string;
  version: number;
  encoder: EncoderIdentity;
  rows: number;
  images: string[];
}

const indexFile = (dir: string) => path.join(dir, "index.json");
const dataFile = (dir: string) => path.join(dir, "features.f16");

function sameIdentity(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function readIndex(dir: string, encoder: EncoderIdentity): IndexJSON {
  const file = indexFile(dir);
  const idx = readJson<IndexJSON>(file, "feature cache index");
  if (idx.format !== FEATURES_FORMAT || idx.version !== FEATURES_VERSION) {
    throw new Error(`${file} is not an attend-tell feature cache of version ${FEATURES_VERSION} (format ${idx.format}, version ${idx.version})`);
  }
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

  private constructor(readonly dir: string, readonly index: IndexJSON) {
    this.fd = fs.openSync(dataFile(dir), "r");
    const size = fs.fstatSync(this.fd).size;
    if (size < index.rows * ROW_BYTES) throw new Error(`${dataFile(dir)} holds ${Math.floor(size / ROW_BYTES)} rows; index.json says ${index.rows}`);
    this.rowOf = new Map(index.images.slice(0, index.rows).map((name, r) => [name, r]));
  }

  static open(dir: string, encoder: EncoderIdentity = ENCODER_IDENTITY): FeatureCache {
    if (!fs.existsSync(indexFile(dir))) throw new Error(`no feature cache at ${dir} (index.json missing): run \`attend-tell features\``);
    return new FeatureCache(dir, readIndex(dir, encoder));
  }

  get size(): number {
    return this.index.rows;
  }

  has(image: string): boolean {
    return this.rowOf.has(image);
  }

  /** Features of the named images as one `[B, 49, 2048]` row-major float32 array. */
  read(images: readonly string[], out = new Float32Array(images.length * ROW_VALUES)): Float32Array {
    const buf = Buffer.allocUnsafe(ROW_BYTES);
    const half = new Uint16Array(buf.buffer, buf.byteOffset, ROW_VALUES);
    images.forEach((name, b) => {
      const r = this.rowOf.get(name);
      if (r === undefined) throw new Error(`image ${name} is not in the feature cache ${this.dir}`);
      fs.readSync(this.fd, buf, 0, ROW_BYTES, r * ROW_BYTES);
      decodeHalf(half, out.subarray(b * ROW_VALUES, (b + 1) * ROW_VALUES));
    });
    return out;
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

export interface ExtractOptions {
  /** Image files to featurise, keyed by the name stored in the index (the file's base name). */
  files: string[];
  out: string;
  /**
   * "onnx": ONNX Runtime, one worker using every core (needs the optional onnxruntime-node); "tfjs": the tfjs
   * backend, one worker process per core (wasm runs one thread per process). "auto" (default): onnx when it
   * loads and the tfjs backend is not a GPU one, else tfjs.
   */
  runtime?: "auto" | "onnx" | "tfjs";
  /** Worker processes. Default: 1 for onnx, number of cores for tfjs. */
  workers?: number;
  batchSize?: number;
  /** Images that fail to decode: "error" (default) stops, naming the file; "skip" counts them. */
  onBadImage?: "error" | "skip";
  /** Index rewrite interval, in images. Default 64. */
  commitEvery?: number;
  quiet?: boolean;
}

export interface ExtractResult {
  runtime: "onnx" | "tfjs";
  computed: number;
  alreadyCached: number;
  skipped: { file: string; why: string }[];
  seconds: number;
  imagesPerSecond: number;
}

/** Message protocol with lib/features-worker.ts. */
export type ToWorker = { files: string[] } | { done: true };
export type FromWorker =
  | { ready: true }
  | { names: string[]; data: string /* base64 float16 */ }
  | { bad: { file: string; why: string } }
  | { error: string };

function chooseRuntime(wanted: "auto" | "onnx" | "tfjs"): "onnx" | "tfjs" {
  if (wanted === "tfjs") return "tfjs";
  const gpu = ["webgpu", "node-gpu"].includes(parseOverride(process.env.ATTEND_TELL_BACKEND) ?? "");
  if (wanted === "onnx" || !gpu) {
    if (onnxAvailable()) return "onnx";
    if (wanted === "onnx") throw new Error("runtime onnx needs the optional package onnxruntime-node, which is not installed here");
  }
  return "tfjs";
}

function workerPath(): { file: string; execArgv: string[] } {
  const ts = path.join(__dirname, "features-worker.ts");
  if (fs.existsSync(ts) && __filename.endsWith(".ts")) return { file: ts, execArgv: ["--import", "tsx"] };
  return { file: path.join(__dirname, "features-worker.js"), execArgv: [] };
}

/**
 * Computes and appends the features of every file not yet in the cache at `out`, in `workers` parallel
 * processes. Safe to interrupt at any point and run again.
 */
export async function extractFeatures(opts: ExtractOptions): Promise<ExtractResult> {
  const { out } = opts;
  fs.mkdirSync(out, { recursive: true });
  let index: IndexJSON;
  if (fs.existsSync(indexFile(out))) index = readIndex(out, ENCODER_IDENTITY);
  else {
    index = { format: FEATURES_FORMAT, version: FEATURES_VERSION, encoder: ENCODER_IDENTITY, rows: 0, images: [] };
    writeJsonAtomic(indexFile(out), index);
  }
  // Cut an interrupted append back to the last committed row.
  const fd = fs.openSync(dataFile(out), "a+");
  fs.ftruncateSync(fd, index.rows * ROW_BYTES);
  index.images = index.images.slice(0, index.rows);
  const have = new Set(index.images);
  const names = new Set<string>();
  const todo = opts.files.filter((f) => {
    const name = path.basename(f);
    if (names.has(name)) throw new Error(`two files share the name ${name}; the cache indexes by file name`);
    names.add(name);
    return !have.has(name);
  });
  const runtime = chooseRuntime(opts.runtime ?? "auto");
  const result: ExtractResult = { runtime, computed: 0, alreadyCached: opts.files.length - todo.length, skipped: [], seconds: 0, imagesPerSecond: 0 };
  const t0 = Date.now();
  if (todo.length === 0) {
    fs.closeSync(fd);
    return result;
  }
  const bar = opts.quiet ? undefined : new Progress(todo.length, "features", "img");
  const batchSize = opts.batchSize ?? 8;
  const queue: string[][] = [];
  for (let i = 0; i < todo.length; i += batchSize) queue.push(todo.slice(i, i + batchSize));
  const nWorkers = Math.max(1, Math.min(opts.workers ?? (runtime === "onnx" ? 1 : os.cpus().length), queue.length));
  const threads = Math.max(1, Math.floor(os.cpus().length / nWorkers));
  let pending = 0;
  const commit = () => {
    index.rows = index.images.length;
    fs.fsyncSync(fd);
    writeJsonAtomic(indexFile(out), index);
    pending = 0;
  };
  const { file, execArgv } = workerPath();
  try {
    await Promise.all(
      Array.from({ length: nWorkers }, () =>
        new Promise<void>((resolve, reject) => {
          const env = { ...process.env, ATTEND_TELL_ENCODER_RUNTIME: runtime, ATTEND_TELL_ENCODER_THREADS: String(threads) };
          const child = fork(file, [], { execArgv, env, stdio: ["ignore", "ignore", "pipe", "ipc"] });
          let stderr = "";
          child.stderr!.on("data", (d) => (stderr = (stderr + d).slice(-4000)));
          const next = () => {
            const files = queue.shift();
            child.send((files ? { files } : { done: true }) satisfies ToWorker);
          };
          child.on("message", (m: FromWorker) => {
            if ("ready" in m) next();
            else if ("bad" in m) {
              if (opts.onBadImage === "skip") result.skipped.push(m.bad);
              else {
                child.kill();
                reject(new Error(`${m.bad.why} — pass --skip-bad (onBadImage: "skip") to skip such images`));
              }
            } else if ("error" in m) {
              child.kill();
              reject(new Error(`feature worker failed: ${m.error}`));
            } else {
              const buf = Buffer.from(m.data, "base64");
              if (buf.length !== m.names.length * ROW_BYTES) return reject(new Error(`feature worker sent ${buf.length} bytes for ${m.names.length} rows`));
              fs.writeSync(fd, buf);
              index.images.push(...m.names);
              result.computed += m.names.length;
              pending += m.names.length;
              if (pending >= (opts.commitEvery ?? 64)) commit();
              bar?.tick(m.names.length);
              next();
            }
          });
          child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`feature worker exited with ${code}: ${stderr.trim().slice(-1000)}`))));
        }),
      ),
    );
  } finally {
    commit();
    fs.closeSync(fd);
  }
  result.seconds = (Date.now() - t0) / 1000;
  result.imagesPerSecond = result.computed / result.seconds;
  return result;
}
