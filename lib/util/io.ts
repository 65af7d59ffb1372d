/**
 * Files on disk for any backend: tfjs-node's `file://` handler is not available on wasm/webgpu, so model
 * weights, caches and checkpoints go through here. Every write is atomic — written to a temporary file
 * beside the target, flushed, then renamed over it — so an interrupted run never leaves a half-written
 * file where a good one was.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as crypto from "node:crypto";
import * as tf from "@tensorflow/tfjs";
import { encodeHalf } from "./float16";

export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString("hex")}`;
  try {
    const fd = fs.openSync(tmp, "w");
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value, null, 1) + "\n");
}

/** JSON.parse with an error that names the file (and says what it was supposed to be). */
export function readJson<T = unknown>(file: string, what = "JSON file"): T {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new Error(`${what} ${file} cannot be read: ${(e as Error).message}`, { cause: e });
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`${what} ${file} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

/** The sha256 of a file's bytes, hex. */
export function sha256File(file: string): string {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

function weightBuffer(data: tf.io.WeightData | undefined): ArrayBuffer {
  if (data === undefined) return new ArrayBuffer(0);
  return Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : data;
}

/**
 * A tf.io handler for a folder holding `model.json` and its weight file(s), the tfjs layers format.
 * Save writes the weights first under a content-hashed name, then `model.json` atomically, then removes
 * weight files no longer referenced: whatever moment a run dies, `model.json` names complete weights.
 */
export function fileSystemIO(dir: string, opts: { verified?: boolean } = {}): tf.io.IOHandler {
  const modelJson = path.join(dir, "model.json");
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      const weights = new Uint8Array(weightBuffer(artifacts.weightData));
      const hash = crypto.createHash("sha256").update(weights).digest("hex").slice(0, 12);
      const weightsFile = `weights-${hash}.bin`;
      writeFileAtomic(path.join(dir, weightsFile), weights);
      const json: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology as tf.io.ModelJSON["modelTopology"],
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
        trainingConfig: artifacts.trainingConfig,
        userDefinedMetadata: artifacts.userDefinedMetadata,
        weightsManifest: [{ paths: [weightsFile], weights: artifacts.weightSpecs ?? [] }],
      };
      writeJsonAtomic(modelJson, json);
      for (const f of fs.readdirSync(dir)) {
        if (/^weights-[0-9a-f]+\.bin$/.test(f) && f !== weightsFile) fs.rmSync(path.join(dir, f), { force: true });
      }
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },
    async load(): Promise<tf.io.ModelArtifacts> {
      if (!fs.existsSync(modelJson)) throw new Error(`no model at ${dir}: ${modelJson} is missing`);
      const json = readJson<tf.io.ModelJSON>(modelJson, "model file");
      return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const specs: tf.io.WeightsManifestEntry[] = [];
        const buffers: ArrayBuffer[] = [];
        for (const group of manifest) {
          for (const p of group.paths) {
            const file = path.join(dir, p);
            if (!fs.existsSync(file)) throw new Error(`${modelJson} lists weight file ${p}, which is missing`);
            const b = fs.readFileSync(file);
            if (!opts.verified) verifyHashedName(file, b);
            buffers.push(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
          }
          specs.push(...group.weights);
        }
        const bytes = buffers.reduce((n, b) => n + b.byteLength, 0);
        const expected = specs.reduce((n, s) => n + specBytes(s), 0);
        if (bytes !== expected) {
          throw new Error(
            `${dir}: the weight files hold ${bytes} bytes where model.json describes ${expected}: the folder is damaged; restore it or retrain`,
          );
        }
        return [specs, tf.io.concatenateArrayBuffers(buffers)];
      });
    },
  };
}

// `weights-<first 12 hex digits of its sha256>.bin`: the name is the checksum, so old folders verify too.
function verifyHashedName(file: string, bytes: Uint8Array): void {
  const m = /^weights-([0-9a-f]+)\.bin$/.exec(path.basename(file));
  if (!m) return;
  const hash = crypto.createHash("sha256").update(bytes).digest("hex");
  if (!hash.startsWith(m[1])) {
    throw new Error(
      `${file} is damaged: its sha256 starts ${hash.slice(0, 12)}, its name says ${m[1]}; restore the folder or retrain`,
    );
  }
}

function specBytes(s: tf.io.WeightsManifestEntry): number {
  const n = s.shape.reduce((a, b) => a * b, 1);
  const dtype = s.quantization?.dtype ?? s.dtype;
  return n * ({ float16: 2, uint16: 2, uint8: 1 } as Record<string, number>)[dtype] || n * 4;
}

/**
 * Saves named tensors (a model's variables, an optimiser's slots) as a tfjs weights folder. `float16`: float32
 * tensors stored as half floats (tfjs's own float16 quantization, which any tfjs loader reads back as float32).
 */
export async function saveTensors(
  dir: string,
  tensors: Record<string, tf.Tensor>,
  opts: { float16?: boolean } = {},
): Promise<void> {
  const named = Object.entries(tensors).map(([name, tensor]) => ({ name, tensor }));
  if (!opts.float16) {
    const { data, specs } = await tf.io.encodeWeights(named);
    await fileSystemIO(dir).save!({ weightData: data, weightSpecs: specs });
    return;
  }
  const specs: tf.io.WeightsManifestEntry[] = [];
  const parts: ArrayBuffer[] = [];
  for (const { name, tensor } of named) {
    const values = await tensor.data();
    if (tensor.dtype === "float32") {
      parts.push(encodeHalf(values as Float32Array).buffer as ArrayBuffer);
      specs.push({ name, shape: tensor.shape, dtype: "float32", quantization: { dtype: "float16" } });
    } else {
      if (tensor.dtype !== "int32")
        throw new Error(`saveTensors: ${name} is ${tensor.dtype}; float16 folders hold float32 and int32 only`);
      const copy = values.slice() as Int32Array;
      parts.push(copy.buffer as ArrayBuffer);
      specs.push({ name, shape: tensor.shape, dtype: tensor.dtype as tf.io.WeightsManifestEntry["dtype"] });
    }
  }
  await fileSystemIO(dir).save!({ weightData: tf.io.concatenateArrayBuffers(parts), weightSpecs: specs });
}

/**
 * Loads what saveTensors wrote, as new tensors keyed by name (the caller disposes them). `verified`: the caller has
 * already checked every file's sha256 (a checkpoint's list), so the weight files are not hashed a second time.
 */
export async function loadTensors(dir: string, opts: { verified?: boolean } = {}): Promise<Record<string, tf.Tensor>> {
  const a = await fileSystemIO(dir, opts).load!();
  return tf.io.decodeWeights(weightBuffer(a.weightData), a.weightSpecs ?? []) as Record<string, tf.Tensor>;
}

/** Whether process `pid` runs (on this machine). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** What a writer leaves beside `target` while it works: `target.tmp-PID[-hex]` (being written), `target.old-PID`. */
const LEFTOVER = /\.(tmp|old)-(\d+)(?:-[0-9a-f]+)?$/;

export interface Leftover {
  path: string;
  kind: "tmp" | "old";
  pid: number;
}

/** The temporary copies of `target` that a process wrote beside it, by whether that process still runs. */
export function leftovers(target: string): { dead: Leftover[]; live: Leftover[] } {
  const abs = path.resolve(target);
  const base = path.basename(abs);
  let names: string[];
  try {
    names = fs.readdirSync(path.dirname(abs));
  } catch {
    return { dead: [], live: [] };
  }
  const all = names.flatMap((n) => {
    const m = LEFTOVER.exec(n);
    if (!m || n.slice(0, m.index) !== base) return [];
    return [{ path: path.join(path.dirname(abs), n), kind: m[1] as "tmp" | "old", pid: Number(m[2]) }];
  });
  const live = all.filter((l) => l.pid === process.pid || pidAlive(l.pid));
  return { dead: all.filter((l) => !live.includes(l)), live };
}

/** Removes the temporary copies of `target` whose writer died (killed, Ctrl-C, a crash), saying so. */
export function removeDeadLeftovers(target: string, log?: (line: string) => void): void {
  for (const l of leftovers(target).dead) {
    log?.(`removing ${l.path}, left by process ${l.pid} that stopped while writing ${path.basename(target)}`);
    fs.rmSync(l.path, { recursive: true, force: true });
  }
}

/** Every file under `dir`, as paths relative to it with "/" (folders themselves are not listed). */
export function listFiles(dir: string, prefix = ""): string[] {
  return fs
    .readdirSync(path.join(dir, prefix), { withFileTypes: true })
    .flatMap((e) =>
      e.isDirectory() ? listFiles(dir, path.posix.join(prefix, e.name)) : [path.posix.join(prefix, e.name)],
    );
}

/** The rule for output files: an existing `file` is replaced only when `own(file)` proves the command wrote it. */
export function assertOwnFile(file: string, own: (file: string) => boolean, what: string): void {
  if (!fs.existsSync(file)) return;
  if (!fs.statSync(file).isFile() || !own(file))
    throw new Error(`${file} exists and is not ${what}: nothing was replaced; choose another name or move it`);
}

/**
 * The rule for output folders: a command replaces a folder only if it is empty or holds nothing but what that
 * command writes (`own(relativePath)`). Throws naming the first file it did not write, so a user's folder (photos,
 * notes, the run being exported) is never deleted by a mistyped `--out`.
 */
export function assertOwnFolder(dir: string, own: (rel: string) => boolean, what: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    return; // nothing there yet
  }
  if (!st.isDirectory()) throw new Error(`${dir} is a file, not a folder: nothing was replaced; choose another folder`);
  const foreign = listFiles(dir).find((f) => !own(f));
  if (foreign !== undefined) {
    throw new Error(
      `${dir} holds ${foreign}, which is not part of ${what}: nothing was replaced; choose a new folder or move it`,
    );
  }
}

/**
 * The real cause of a failed write, in one line: Node reports a folder that cannot be created on a read-only file
 * system (or in an unwritable folder) as ENOENT, which says nothing of what to do. Other errors pass unchanged.
 */
export function explainWriteError(e: unknown): unknown {
  const err = e as NodeJS.ErrnoException;
  if (!err || !err.path || !["ENOENT", "EROFS", "EACCES", "EPERM"].includes(err.code ?? "")) return e;
  let dir = path.resolve(err.path);
  while (!fs.existsSync(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  if (dir === path.resolve(err.path) && err.code === "ENOENT") return e; // a missing file to read, not a write
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (a) {
    const why = (a as NodeJS.ErrnoException).code === "EROFS" ? "is on a read-only file system" : "is not writable";
    return new Error(`cannot write ${err.path}: ${dir} ${why}; choose another folder`, { cause: e });
  }
  return e;
}
