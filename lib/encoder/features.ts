/**
 * Computing the feature cache (lib/encoder/feature-cache.ts): ResNet-50 over every image not cached yet, in worker
 * processes (ONNX Runtime or tfjs) or in this process on a GPU backend, appended chunk by chunk under a lock, so
 * an interrupted run resumes where it stopped.
 */
import { fork } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ensureWeights, weightsDir } from "./weights";
import * as os from "node:os";
import { EncoderCNN, FEATURE_MAP, FeatureMap, encoderIdentity } from "./encoder";
import { encodeHalf } from "../util/float16";
import { writeJsonAtomic } from "../util/io";
import { Progress } from "../util/progress";
import * as tf from "@tensorflow/tfjs";
import { onnxAvailable } from "./encoder-onnx";
import {
  FEATURES_FORMAT,
  FEATURES_VERSION,
  FeatureCache,
  IndexJSON,
  dataFile,
  imageHash,
  indexFile,
  readIndex,
  rowValuesOf,
} from "./feature-cache";
export { FEATURES_FORMAT, FEATURES_VERSION, FeatureCache, ROW_BYTES, ROW_VALUES, imageHash } from "./feature-cache";
import { activeBackend, onGpu } from "../engine/backend";
import { withLock } from "../util/lock";
import { FlickrDataset } from "../data/dataset";
import type { Split } from "../data/captions";
import type { Vocabulary } from "../data/vocabulary";

export interface ExtractOptions {
  /** Image files to featurise, keyed by the name stored in the index (the file's base name). */
  files: string[];
  out: string;
  /**
   * "onnx": ONNX Runtime, one worker process using every core (needs the optional onnxruntime-node); "tfjs": the
   * tfjs backend. "auto" (default): tfjs in this process on a GPU backend, else onnx when it loads, else tfjs.
   */
  runtime?: "auto" | "onnx" | "tfjs";
  /**
   * Worker processes for tfjs on a CPU backend (wasm runs one thread per process). Default: 1 for onnx, the
   * number of cores for tfjs on a CPU; 0 runs tfjs in this process, which is what a GPU backend always does.
   */
  workers?: number;
  /** Images per encoder call. Default: 64 on a GPU, 8 on a CPU. */
  batchSize?: number;
  /** The features (default conv5, the seed's). A cache holds one feature map. */
  map?: FeatureMap;
  /** Features of the photos flipped left to right (a cache of its own: its identity says so). */
  mirror?: boolean;
  /** Images that fail to decode: "error" (default) stops, naming the file; "skip" counts them. */
  onBadImage?: "error" | "skip";
  /** Index rewrite interval, in images. Default 64. */
  commitEvery?: number;
  quiet?: boolean;
}

export interface ExtractResult {
  /** Where the features were computed: "onnx" (CPU), "tfjs" (worker processes), or the backend in this process. */
  runtime: "onnx" | "tfjs" | `tfjs-${string}`;
  computed: number;
  alreadyCached: number;
  skipped: { file: string; why: string }[];
  seconds: number;
  imagesPerSecond: number;
}

/** Message protocol with lib/encoder/features-worker.ts. */
export type ToWorker = { files: string[] } | { done: true };
export type FromWorker =
  | { ready: true }
  | { names: string[]; data: string /* base64 float16 */ }
  | { bad: { file: string; why: string } }
  | { error: string };

/**
 * Where the encoder runs. On a GPU backend: tfjs in this process, whatever was asked, since ONNX Runtime here is
 * CPU-only and worker processes would each open the device and hold the 98 MiB of weights.
 */
export function chooseRuntime(
  wanted: "auto" | "onnx" | "tfjs",
  workers?: number,
): "onnx" | "tfjs-workers" | "tfjs-here" {
  if (onGpu()) {
    if (wanted === "onnx")
      throw new Error(
        `runtime onnx runs on the CPU, but the tfjs backend is ${activeBackend()}; use --runtime auto or tfjs`,
      );
    return "tfjs-here";
  }
  if (workers === 0) {
    if (wanted === "onnx")
      throw new Error("runtime onnx runs in a worker process; workers: 0 means tfjs in this process");
    return "tfjs-here";
  }
  if (wanted !== "tfjs" && onnxAvailable()) return "onnx";
  if (wanted === "onnx")
    throw new Error("runtime onnx needs the optional package onnxruntime-node, which is not installed here");
  return "tfjs-workers";
}

function workerPath(): { file: string; execArgv: string[] } {
  const ts = path.join(__dirname, "features-worker.ts");
  if (fs.existsSync(ts) && __filename.endsWith(".ts")) return { file: ts, execArgv: ["--import", "tsx"] };
  return { file: path.join(__dirname, "features-worker.js"), execArgv: [] };
}

/** Where computed rows and undecodable images go; shared by both ways of computing them. */
interface RowSink {
  rows(names: string[], half: Uint8Array): void;
  /** Returns an error to stop with, or undefined to go on (skipping the image). */
  bad(b: { file: string; why: string }): Error | undefined;
}

/**
 * Computes and appends the features of every file not yet in the cache at `out`, in worker processes on a
 * CPU or in this process on a GPU. Safe to interrupt at any point and run again.
 */
export async function extractFeatures(opts: ExtractOptions): Promise<ExtractResult> {
  // Every command that extracts fetches the declared weights itself when they are missing (the workers only verify)
  if (!fs.existsSync(weightsDir())) ensureWeights({ log: opts.quiet ? () => {} : undefined });
  fs.mkdirSync(opts.out, { recursive: true });
  // One writer at a time: a second one (another terminal, a notebook) waits, then finds the rows computed.
  const log = opts.quiet ? undefined : (l: string) => console.error(`[attend-tell] ${l}`);
  return withLock(path.join(opts.out, ".lock"), `extracting features into ${opts.out}`, () => extractLocked(opts), {
    log,
    wait: true,
  });
}

/**
 * The cache's index and its data file open for appending, an interrupted append cut back to the last committed
 * row. A file shorter than the index (cut by a copy or a full disk) loses the rows it lacks from the index, so
 * they are recomputed, never read as zeros.
 */
function openForAppend(
  out: string,
  map: FeatureMap,
  mirror: boolean,
  quiet?: boolean,
): { index: IndexJSON; fd: number } {
  let index: IndexJSON;
  const encoder = encoderIdentity(map, mirror);
  if (fs.existsSync(indexFile(out))) index = readIndex(out, encoder);
  else {
    index = { format: FEATURES_FORMAT, version: FEATURES_VERSION, encoder, rows: 0, images: [] };
    writeJsonAtomic(indexFile(out), index);
  }
  const rowBytes = rowValuesOf(map) * 2;
  const fd = fs.openSync(dataFile(out), "a+");
  const whole = Math.floor(fs.fstatSync(fd).size / rowBytes);
  if (whole < index.rows) {
    if (!quiet) {
      console.error(
        `[attend-tell] ${dataFile(out)} holds ${whole} whole rows where index.json lists ${index.rows}: recomputing the ${index.rows - whole} missing`,
      );
    }
    index.rows = whole;
  }
  fs.ftruncateSync(fd, index.rows * rowBytes);
  index.images = index.images.slice(0, index.rows);
  return { index, fd };
}

/** The files whose features are not cached for their current content, and each file's content hash by name. */
function filesToEncode(opts: ExtractOptions, index: IndexJSON): { todo: string[]; hashOf: Map<string, string> } {
  const hashOf = new Map<string, string>();
  for (const f of opts.files) {
    const name = path.basename(f);
    if (hashOf.has(name)) throw new Error(`two files share the name ${name}; the cache indexes by file name`);
    hashOf.set(name, fs.existsSync(f) && fs.statSync(f).isFile() ? imageHash(f) : ""); // not a photo: the decoder says why
  }
  // A cache from before content hashes: its rows are taken to be of today's files (nothing else is known of them).
  index.hashes = index.hashes ? index.hashes.slice(0, index.rows) : index.images.map((name) => hashOf.get(name) ?? "");
  const have = new Map(index.images.map((name, r) => [name, index.hashes![r]])); // the last row of a name wins
  const todo = opts.files.filter((f) => {
    const name = path.basename(f);
    return have.get(name) !== hashOf.get(name);
  });
  const changed = todo.filter((f) => have.has(path.basename(f))).length;
  if (changed && !opts.quiet)
    console.error(
      `[attend-tell] ${changed} images changed since their features were cached in ${opts.out}: recomputing them`,
    );
  return { todo, hashOf };
}

async function extractLocked(opts: ExtractOptions): Promise<ExtractResult> {
  const { out } = opts;
  const map = opts.map ?? FEATURE_MAP;
  const rowBytes = rowValuesOf(map) * 2;
  const mirror = opts.mirror ?? false;
  const { index, fd } = openForAppend(out, map, mirror, opts.quiet);
  const { todo, hashOf } = filesToEncode(opts, index);
  const where = chooseRuntime(opts.runtime ?? "auto", opts.workers);
  const runtime = where === "onnx" ? "onnx" : where === "tfjs-workers" ? "tfjs" : (`tfjs-${activeBackend()}` as const);
  const result: ExtractResult = {
    runtime,
    computed: 0,
    alreadyCached: opts.files.length - todo.length,
    skipped: [],
    seconds: 0,
    imagesPerSecond: 0,
  };
  const t0 = Date.now();
  if (todo.length === 0) {
    fs.closeSync(fd);
    return result;
  }
  const bar = opts.quiet ? undefined : new Progress(todo.length, "features", "img");
  const batchSize = opts.batchSize ?? (onGpu() ? 64 : 8);
  const queue: string[][] = [];
  for (let i = 0; i < todo.length; i += batchSize) queue.push(todo.slice(i, i + batchSize));
  let pending = 0;
  const commit = () => {
    index.rows = index.images.length;
    fs.fsyncSync(fd);
    writeJsonAtomic(indexFile(out), index);
    pending = 0;
  };
  const sink: RowSink = {
    rows(rowNames, half) {
      if (half.length !== rowNames.length * rowBytes)
        throw new Error(`the encoder gave ${half.length} bytes for ${rowNames.length} rows`);
      fs.writeSync(fd, half);
      index.images.push(...rowNames);
      index.hashes!.push(...rowNames.map((n) => hashOf.get(n) ?? ""));
      result.computed += rowNames.length;
      pending += rowNames.length;
      if (pending >= (opts.commitEvery ?? 64)) commit();
      bar?.tick(rowNames.length);
    },
    bad(b) {
      if (opts.onBadImage === "skip") return void result.skipped.push(b);
      return new Error(`${b.why} — pass --skip-bad (onBadImage: "skip") to skip such images`);
    },
  };
  try {
    if (where === "tfjs-here") await encodeHere(queue, sink, map, mirror);
    else await encodeInWorkers(queue, sink, where === "onnx" ? "onnx" : "tfjs", map, mirror, opts.workers);
  } finally {
    commit();
    fs.closeSync(fd);
  }
  result.seconds = (Date.now() - t0) / 1000;
  result.imagesPerSecond = result.computed / result.seconds;
  return result;
}

/**
 * The tfjs encoder in this process, on the active backend: each batch is decoded (sharp, off the main thread)
 * while the one before it runs on the device.
 */
async function encodeHere(queue: string[][], sink: RowSink, map: FeatureMap, mirror: boolean): Promise<void> {
  const encoder = await EncoderCNN.load({ map });
  try {
    const load = () => (queue.length ? EncoderCNN.loadBatchSkipping(queue.shift()!, mirror) : undefined);
    let next = load();
    while (next) {
      const { batch: x, ok, bad } = await next;
      next = load();
      for (const b of bad) {
        const stop = sink.bad(b);
        if (stop) {
          x?.dispose();
          await next?.then(
            (n) => n.batch?.dispose(),
            () => {},
          );
          throw stop;
        }
      }
      if (!x) continue;
      const y = encoder.encode(x);
      const features = (await y.data()) as Float32Array; // asynchronous: WebGPU in Node cannot read synchronously
      tf.dispose([x, y]);
      const half = encodeHalf(features);
      sink.rows(
        ok.map((f) => path.basename(f)),
        new Uint8Array(half.buffer, half.byteOffset, half.byteLength),
      );
    }
  } finally {
    encoder.dispose();
  }
}

/** Worker processes (lib/encoder/features-worker.ts): ONNX Runtime in one, or one tfjs per core. */
async function encodeInWorkers(
  queue: string[][],
  sink: RowSink,
  runtime: "onnx" | "tfjs",
  map: FeatureMap,
  mirror: boolean,
  workers?: number,
): Promise<void> {
  const nWorkers = Math.max(1, Math.min(workers ?? (runtime === "onnx" ? 1 : os.cpus().length), queue.length));
  const threads = Math.max(1, Math.floor(os.cpus().length / nWorkers));
  const { file, execArgv } = workerPath();
  await Promise.all(
    Array.from(
      { length: nWorkers },
      () =>
        new Promise<void>((resolve, reject) => {
          const env = {
            ...process.env,
            ATTEND_TELL_ENCODER_RUNTIME: runtime,
            ATTEND_TELL_ENCODER_THREADS: String(threads),
            ATTEND_TELL_ENCODER_MAP: map,
            ATTEND_TELL_ENCODER_MIRROR: mirror ? "1" : "",
          };
          const child = fork(file, [], { execArgv, env, stdio: ["ignore", "ignore", "pipe", "ipc"] });
          let stderr = "";
          child.stderr!.on("data", (d) => (stderr = (stderr + d).slice(-4000)));
          // After a failure (a bad photo without --skip-bad, say) the worker is killed: messages it sent before
          // that are ignored, so nothing is sent to it again.
          let failed = false;
          const fail = (e: Error) => {
            if (failed) return;
            failed = true;
            child.kill();
            reject(e);
          };
          const next = () => {
            const files = queue.shift();
            child.send((files ? { files } : { done: true }) satisfies ToWorker);
          };
          child.on("message", (m: FromWorker) => {
            if (failed) return;
            if ("ready" in m) next();
            else if ("bad" in m) {
              const stop = sink.bad(m.bad);
              if (stop) fail(stop);
            } else if ("error" in m) fail(new Error(`feature worker failed: ${m.error}`));
            else {
              try {
                sink.rows(m.names, Buffer.from(m.data, "base64"));
              } catch (e) {
                return fail(e as Error);
              }
              next();
            }
          });
          // a worker that died on its own makes the next send fail (EPIPE): a rejection, not an uncaught error
          child.on("error", (e) => fail(new Error(`feature worker: ${e.message}: ${stderr.trim().slice(-1000)}`)));
          child.on("exit", (code) =>
            code === 0
              ? resolve()
              : reject(new Error(`feature worker exited with ${code}: ${stderr.trim().slice(-1000)}`)),
          );
        }),
    ),
  );
}

export interface CachedSplitOptions {
  dataDir: string;
  split: Split | "all";
  vocab: Vocabulary;
  featuresDir: string;
  /** Leave out listed images that have no photo (else an error names the first). */
  skipMissing?: boolean;
  /** Leave out photos that cannot be decoded (else an error names the first). */
  skipBad?: boolean;
  /** Only the split's first `limit` images. */
  limit?: number;
  /** The features (default conv5); the cache at featuresDir must hold these. */
  map?: FeatureMap;
  /** Features of the photos flipped left to right (ExtractOptions.mirror). */
  mirror?: boolean;
  quiet?: boolean;
}

/**
 * A split whose every image has its features in the cache (computed now for any it lacks), and the images left
 * out with the reason for each — what every command that reads a split's features starts from.
 */
export async function cachedSplit(o: CachedSplitOptions): Promise<{
  dataset: FlickrDataset;
  /** The split's images with features (the first `limit`, when given). */
  images: string[];
  cache: FeatureCache;
  skipped: { image: string; why: string }[];
}> {
  const base = {
    dataDir: o.dataDir,
    split: o.split,
    vocab: o.vocab,
    onMissing: o.skipMissing ? ("skip" as const) : ("error" as const),
  };
  let dataset = new FlickrDataset(base);
  let images = dataset.images.slice(0, o.limit ?? dataset.images.length);
  const r = await extractFeatures({
    files: images.map((im) => dataset.imagePath(im)),
    out: o.featuresDir,
    quiet: o.quiet,
    onBadImage: o.skipBad ? "skip" : "error",
    map: o.map,
    mirror: o.mirror,
  });
  if (r.skipped.length) {
    const exclude = new Map(r.skipped.map((b) => [path.basename(b.file), b.why]));
    dataset = new FlickrDataset({ ...base, exclude });
    images = images.filter((im) => !exclude.has(im));
  }
  return {
    dataset,
    images,
    cache: FeatureCache.open(o.featuresDir, encoderIdentity(o.map, o.mirror)),
    skipped: dataset.skipped,
  };
}

/** "3 images skipped: a.jpg (why), b.jpg (why), … and 1 more" — the first few named, for the terminal. */
export function describeSkipped(skipped: readonly { image: string; why: string }[], show = 3): string {
  const named = skipped
    .slice(0, show)
    .map((s) => `${s.image} (${s.why})`)
    .join(", ");
  return (
    `${skipped.length} image${skipped.length === 1 ? "" : "s"} skipped: ${named}` +
    (skipped.length > show ? `, … and ${skipped.length - show} more` : "")
  );
}
