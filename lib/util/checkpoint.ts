/**
 * Training checkpoints, for every model of the project: one folder with the weights (by stable parameter name),
 * the optimiser's state, the vocabulary, the loss history and a versioned `checkpoint.json` (format, epoch,
 * config, data folder, and the sha256 of every other file). Written atomically — a new folder, then a rename over
 * the old one — so an interrupted write never loses the last good checkpoint; every file is verified on load, so a
 * damaged one is named instead of giving garbage.
 *
 * A weights-only checkpoint (no `optimizer/`, weights as float16) is what `exportCheckpoint` writes for the models
 * shipped under `models/`: it loads like any other, and cannot be resumed.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import * as crypto from "node:crypto";
import {
  assertOwnFolder,
  leftovers,
  listFiles,
  loadTensors,
  readJson,
  removeDeadLeftovers,
  saveTensors,
  sha256File,
  writeFileAtomic,
  writeJsonAtomic,
} from "./io";
import { RemovedVariantError, checkFields } from "./schema";

/** The newest checkpoint layout this code reads and writes. */
export const CHECKPOINT_VERSION = 1;

export interface CheckpointMeta<Config> {
  format: string;
  version: number;
  epoch: number;
  config: Config;
  /** The data folder it was trained on. */
  dataDir?: string;
  /** sha256 of every file of the folder but checkpoint.json, by relative path (absent before it was recorded). */
  files?: Record<string, string>;
  /** True for weights without optimizer state: an export (float16) or an epoch kept by --keep-epochs (float32). */
  weightsOnly?: boolean;
  /** sha256 of checkpoint.json as written without this field (absent in checkpoints from before it was recorded). */
  sha256?: string;
}

/** checkpoint.json's bytes for `meta` (its own sum left out): what the sum is taken over. */
function manifestText(meta: object): string {
  return JSON.stringify(meta, null, 1) + "\n";
}

const sha256 = (text: string) => crypto.createHash("sha256").update(text).digest("hex");

/**
 * A checkpoint.json, verified: its own sha256 (when it has one), every field known and of its kind, a version this
 * code reads. A flipped byte anywhere — a config value, the key that lists the files' sums — is refused by name.
 */
export function readCheckpointMeta<Config>(dir: string): CheckpointMeta<Config> {
  const file = path.join(dir, "checkpoint.json");
  if (!fs.existsSync(file)) throw new Error(`no checkpoint in ${dir} (${file} is missing)`);
  const meta = readJson<CheckpointMeta<Config>>(file, "checkpoint");
  const damaged = (why: string) =>
    new Error(`checkpoint file ${file} is damaged (${why}); restore the folder or retrain`);
  try {
    checkFields(
      "checkpoint.json",
      meta,
      { format: "string", version: "count", epoch: "index", config: "object" },
      { dataDir: "string", files: "object", weightsOnly: "boolean", sha256: "string" },
    );
  } catch (e) {
    throw damaged((e as Error).message.replace(/^checkpoint\.json: /, ""));
  }
  if (meta.version > CHECKPOINT_VERSION) {
    throw new Error(
      `${file} is of checkpoint version ${meta.version}, written by a newer attend-tell; this one reads version ${CHECKPOINT_VERSION}: update attend-tell`,
    );
  }
  if (meta.sha256 !== undefined) {
    const { sha256: sum, ...rest } = meta;
    if (sha256(manifestText(rest)) !== sum) throw damaged("its content does not match its sha256");
  }
  return meta;
}

/** A checkpoint folder's files: what its manifest lists, checkpoint.json and a model card (export keeps MODEL.md). */
function ownFiles(dir: string): (rel: string) => boolean {
  let listed: Record<string, string> | undefined;
  try {
    listed = readCheckpointMeta(dir).files;
  } catch {
    return () => false; // not a checkpoint of ours: nothing in it is
  }
  // before the manifest listed them, a checkpoint held exactly these
  const legacy = /^(vocab\.json|history\.json|(model|optimizer)\/(model\.json|weights-[0-9a-f]+\.bin))$/;
  return (rel) => rel === "checkpoint.json" || rel === "MODEL.md" || (listed ? rel in listed : legacy.test(rel));
}

/**
 * Finishes what a writer killed mid-save left beside `dir`: killed between moving the old checkpoint aside and the
 * new one in, `dir` is missing and the new one (complete) or the old one is put in its place; then the temporary
 * folders of dead writers are removed. A live writer's folders are left alone.
 */
export function settleCheckpoint(dir: string, log?: (line: string) => void): void {
  if (!fs.existsSync(dir)) {
    const { dead } = leftovers(dir);
    const complete = (p: string) => {
      try {
        verifyCheckpointFiles(p, readCheckpointMeta(p).files ?? {});
        return true;
      } catch {
        return false;
      }
    };
    const found =
      dead.find((l) => l.kind === "tmp" && complete(l.path)) ?? dead.find((l) => l.kind === "old" && complete(l.path));
    if (found) {
      log?.(`${dir}: restoring the checkpoint that process ${found.pid} was saving when it stopped`);
      fs.renameSync(found.path, dir);
    }
  }
  removeDeadLeftovers(dir, log);
}

export async function writeCheckpoint<Config>(
  dir: string,
  parts: {
    weights: Record<string, tf.Tensor>;
    /** Its state as `getWeights()` gives it (tfjs optimisers, TypedAdam). */
    optimizer?: { getWeights(): Promise<{ name: string; tensor: tf.Tensor }[]> };
    /** The vocabulary, which writes itself as one JSON file (data's `Vocabulary`; util does not import data). */
    vocab: { toJSON(): unknown };
    history: unknown;
    meta: CheckpointMeta<Config>;
    float16?: boolean;
    /** More JSON files to store, by name (e.g. a captioner's consensus.json), checksummed as the rest. */
    extra?: Record<string, unknown>;
    /** `dir` must not exist yet (an export): if another process creates it meanwhile, nothing is replaced. */
    create?: boolean;
    log?: (line: string) => void;
  },
): Promise<void> {
  dir = path.resolve(dir); // "runs/x/" and "." name the folder itself, and its temporary copy goes beside it
  settleCheckpoint(dir, parts.log);
  assertOwnFolder(dir, ownFiles(dir), "a checkpoint");
  if (parts.create && fs.existsSync(dir) && fs.readdirSync(dir).length > 0)
    throw new Error(`${dir} already exists: nothing was replaced; choose a new folder`);
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  try {
    await saveTensors(path.join(tmp, "model"), parts.weights, { float16: parts.float16 });
    if (parts.optimizer) {
      const optWeights = await parts.optimizer.getWeights();
      await saveTensors(path.join(tmp, "optimizer"), Object.fromEntries(optWeights.map((w) => [w.name, w.tensor])));
      // copies made for saving (TypedAdam's moments, tfjs's iteration count), not the optimiser's own variables
      tf.dispose(optWeights.map((w) => w.tensor).filter((t) => !(t instanceof tf.Variable)));
    }
    writeJsonAtomic(path.join(tmp, "vocab.json"), parts.vocab.toJSON());
    writeJsonAtomic(path.join(tmp, "history.json"), parts.history);
    for (const [name, json] of Object.entries(parts.extra ?? {})) writeJsonAtomic(path.join(tmp, name), json);
    const files = Object.fromEntries(
      listFiles(tmp)
        .sort()
        .map((f) => [f, sha256File(path.join(tmp, f))]),
    );
    const { sha256: _, ...meta } = { ...parts.meta, files }; // a meta read back carries the old sum
    writeFileAtomic(path.join(tmp, "checkpoint.json"), manifestText({ ...meta, sha256: sha256(manifestText(meta)) }));
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true }); // a failed write (disk full) leaves nothing behind
    throw e;
  }
  if (parts.create) {
    try {
      if (fs.existsSync(dir)) fs.rmdirSync(dir); // empty (checked above); fails if another process filled it
      fs.renameSync(tmp, dir);
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw new Error(`${dir} was created by another process meanwhile: nothing was replaced; choose a new folder`, {
        cause: e,
      });
    }
    return;
  }
  const old = `${dir}.old-${process.pid}`;
  if (fs.existsSync(dir)) fs.renameSync(dir, old);
  fs.renameSync(tmp, dir);
  fs.rmSync(old, { recursive: true, force: true });
}

/** Checks every file that checkpoint.json lists against its sha256; the error names the first damaged one. */
export function verifyCheckpointFiles(dir: string, files: Record<string, string>): void {
  for (const [rel, sum] of Object.entries(files)) {
    const file = path.join(dir, rel);
    if (!fs.existsSync(file))
      throw new Error(`checkpoint ${dir} is incomplete: ${rel} is missing; restore the folder or retrain`);
    const got = sha256File(file);
    if (got !== sum) {
      throw new Error(
        `checkpoint file ${file} is damaged (sha256 ${got.slice(0, 12)}…, checkpoint.json says ${sum.slice(0, 12)}…); restore the folder or retrain`,
      );
    }
  }
}

/**
 * Runs `read` on the checkpoint `dir`; if it fails while a training process is replacing that checkpoint (the folder
 * renamed under the reader, or missing between the writer's two renames), reads the new one instead of reporting a
 * good checkpoint as damaged.
 */
async function whileReplaced<T>(dir: string, read: () => Promise<T>, discard: (t: T) => void): Promise<T> {
  const stamp = () => {
    try {
      return `${fs.statSync(dir).ino}:${fs.statSync(path.join(dir, "checkpoint.json")).mtimeMs}`;
    } catch {
      return "missing";
    }
  };
  for (let attempt = 0; ; attempt++) {
    const before = stamp();
    let got: T;
    try {
      got = await read();
    } catch (e) {
      await new Promise((r) => setTimeout(r, 250));
      const writing = leftovers(dir).live.some((l) => l.pid !== process.pid);
      if (attempt >= 20 || (stamp() === before && !writing)) throw e;
      continue;
    }
    if (stamp() === before) return got;
    discard(got); // replaced while it was read: parts of two saves
    if (attempt >= 20) throw new Error(`${dir} kept changing while it was read; try again`);
  }
}

/** The parts of a checkpoint of `format`; the caller builds its model from `weights` and disposes them. */
export async function readCheckpoint<Config, History>(
  dir: string,
  format: string,
  what: string,
): Promise<{
  meta: CheckpointMeta<Config>;
  weights: Record<string, tf.Tensor>;
  optimizerWeights: { name: string; tensor: tf.Tensor }[];
  /** vocab.json, verified: the caller reads it with its `Vocabulary.load`. */
  vocabFile: string;
  history: History;
}> {
  settleCheckpoint(dir);
  return whileReplaced(
    dir,
    async () => {
      const meta = readCheckpointMeta<Config>(dir);
      if (meta.format !== format)
        throw new Error(`${dir} is not an attend-tell ${what} checkpoint (format ${meta.format})`);
      // Older checkpoints have no list; their weight files still carry a content hash in their names (lib/util/io.ts).
      if (meta.files) verifyCheckpointFiles(dir, meta.files);
      const verified = !!meta.files;
      const weights = await loadTensors(path.join(dir, "model"), { verified });
      const opt = meta.weightsOnly ? {} : await loadTensors(path.join(dir, "optimizer"), { verified });
      return {
        meta,
        weights,
        optimizerWeights: Object.entries(opt).map(([name, tensor]) => ({ name, tensor })),
        vocabFile: path.join(dir, "vocab.json"),
        history: readJson<History>(path.join(dir, "history.json"), "training history"),
      };
    },
    (c) => tf.dispose([...Object.values(c.weights), ...c.optimizerWeights.map((o) => o.tensor)]),
  );
}

/**
 * A weights-only copy of a checkpoint of any model (no optimizer state; float32 weights stored as float16, half
 * the size and a quarter of a full checkpoint): what `models/` ships. Every file of the source is verified first.
 * `out` must be new (or empty) unless `overwrite`, and then hold an earlier export only: nothing else is replaced.
 */
export async function exportCheckpoint(
  src: string,
  out: string,
  opts: { float16?: boolean; extra?: Record<string, unknown>; overwrite?: boolean } = {},
): Promise<CheckpointMeta<unknown>> {
  const [from, to] = [path.resolve(src), path.resolve(out)];
  if (to === from || to.startsWith(from + path.sep) || from.startsWith(to + path.sep))
    throw new Error(
      `export --out ${out} would write over or inside the checkpoint ${src} it exports: choose another folder`,
    );
  settleCheckpoint(from);
  const meta = readCheckpointMeta<unknown>(from);
  if (meta.files) verifyCheckpointFiles(src, meta.files);
  const weights = await loadTensors(path.join(src, "model"), { verified: !!meta.files });
  try {
    const { files: _, sha256: __, ...rest } = meta;
    // The data folder's name only (not this machine's path); the per-epoch history only (not every batch's loss).
    const exported = { ...rest, dataDir: meta.dataDir && path.basename(meta.dataDir), weightsOnly: true };
    const history = readJson<{ epoch?: unknown[] }>(path.join(src, "history.json"), "training history");
    await writeCheckpoint(to, {
      weights,
      vocab: { toJSON: () => readJson(path.join(src, "vocab.json"), "vocabulary") }, // verified above
      float16: opts.float16 ?? true,
      meta: exported,
      history: { batch: [], epoch: history.epoch ?? [] },
      extra: opts.extra,
      create: !opts.overwrite,
    });
    return readCheckpointMeta<unknown>(to);
  } finally {
    tf.dispose(Object.values(weights));
  }
}

/** A model rebuilt from its checkpoint, with what training needs to resume it. */
export interface LoadedCheckpoint<Model, Config, History> {
  model: Model;
  /** vocab.json, verified: read it with `Vocabulary.load`. */
  vocabFile: string;
  config: Config;
  epoch: number;
  /** The data folder it was trained on (absent in checkpoints from before it was recorded). */
  dataDir?: string;
  history: History;
  /** Empty for a weights-only export. */
  optimizerWeights: { name: string; tensor: tf.Tensor }[];
  /** A weights-only export (a shipped model): nothing to resume. */
  weightsOnly: boolean;
}

/** Reads a checkpoint of `format` (every file verified) and builds its model with `build(config, weight by name)`. */
export async function loadModelCheckpoint<Model, Config, History>(
  dir: string,
  format: string,
  what: string,
  build: (config: Config, init: (name: string) => tf.Tensor) => Model,
): Promise<LoadedCheckpoint<Model, Config, History>> {
  const c = await readCheckpoint<Config, History>(dir, format, what);
  try {
    let model: Model;
    try {
      model = build(c.meta.config, fromWeights(dir, c.weights));
    } catch (e) {
      const m = (e as Error).message;
      if (m.includes(dir)) throw e;
      const todo = e instanceof RemovedVariantError ? "" : "; restore the folder or retrain";
      throw new Error(`checkpoint ${dir}: ${m}${todo}`, { cause: e });
    }
    const { config, epoch, dataDir } = c.meta;
    const { history, optimizerWeights } = c;
    return {
      model,
      vocabFile: c.vocabFile,
      config,
      epoch,
      dataDir,
      history,
      optimizerWeights,
      weightsOnly: !!c.meta.weightsOnly,
    };
  } finally {
    tf.dispose(Object.values(c.weights));
  }
}

/** Adam's state to resume from, or an error that says why a weights-only checkpoint cannot be resumed. */
export function resumableOptimizerWeights<T>(dir: string, optimizerWeights: T[]): T[] {
  if (optimizerWeights.length === 0) {
    throw new Error(
      `${dir} holds weights only (no optimizer state, e.g. a shipped model): it cannot be resumed; train into a new --out`,
    );
  }
  return optimizerWeights;
}

/**
 * Refuses to resume a checkpoint with data whose vocabulary numbers the words differently (another data folder, or
 * its captions edited): the model's ids would mean other words, and its vocab.json would be replaced.
 */
export function resumableVocabulary<V extends { difference(other: V): string | undefined }>(
  dir: string,
  stored: V,
  data: V,
  dataDir?: string,
): void {
  const differs = stored.difference(data);
  if (differs) {
    throw new Error(
      `--resume: the data's vocabulary numbers the words differently from ${dir}'s (${differs}); resume with the ` +
        `data folder it was trained on${dataDir ? ` (${dataDir})` : ""} or train into a new --out`,
    );
  }
}

/** An initializer that takes each parameter from `weights` by name, with an error naming a missing one. */
export function fromWeights(dir: string, weights: Record<string, tf.Tensor>): (name: string) => tf.Tensor {
  return (name) => {
    const w = weights[name];
    if (!w) throw new Error(`checkpoint ${dir} has no weight ${name}`);
    return w;
  };
}
