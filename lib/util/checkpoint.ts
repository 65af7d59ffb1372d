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
import { loadTensors, readJson, saveTensors, sha256File, writeJsonAtomic } from "./io";
import { Vocabulary } from "../data/vocabulary";

export interface CheckpointMeta<Config> {
  format: string;
  version: number;
  epoch: number;
  config: Config;
  /** The data folder it was trained on. */
  dataDir?: string;
  /** sha256 of every file of the folder but checkpoint.json, by relative path (absent before it was recorded). */
  files?: Record<string, string>;
  /** True for a weights-only export (float16, no optimizer state). */
  weightsOnly?: boolean;
}

function listFiles(dir: string, prefix = ""): string[] {
  return fs
    .readdirSync(path.join(dir, prefix), { withFileTypes: true })
    .flatMap((e) =>
      e.isDirectory() ? listFiles(dir, path.posix.join(prefix, e.name)) : [path.posix.join(prefix, e.name)],
    );
}

export async function writeCheckpoint<Config>(
  dir: string,
  parts: {
    weights: Record<string, tf.Tensor>;
    /** Its state as `getWeights()` gives it (tfjs optimisers, TypedAdam). */
    optimizer?: { getWeights(): Promise<{ name: string; tensor: tf.Tensor }[]> };
    vocab: Vocabulary;
    history: unknown;
    meta: CheckpointMeta<Config>;
    float16?: boolean;
    /** More JSON files to store, by name (e.g. a captioner's consensus.json), checksummed as the rest. */
    extra?: Record<string, unknown>;
  },
): Promise<void> {
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
    parts.vocab.save(path.join(tmp, "vocab.json"));
    writeJsonAtomic(path.join(tmp, "history.json"), parts.history);
    for (const [name, json] of Object.entries(parts.extra ?? {})) writeJsonAtomic(path.join(tmp, name), json);
    const files = Object.fromEntries(
      listFiles(tmp)
        .sort()
        .map((f) => [f, sha256File(path.join(tmp, f))]),
    );
    writeJsonAtomic(path.join(tmp, "checkpoint.json"), { ...parts.meta, files });
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true }); // a failed write (disk full) leaves nothing behind
    throw e;
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

/** The parts of a checkpoint of `format`; the caller builds its model from `weights` and disposes them. */
export async function readCheckpoint<Config, History>(
  dir: string,
  format: string,
  what: string,
): Promise<{
  meta: CheckpointMeta<Config>;
  weights: Record<string, tf.Tensor>;
  optimizerWeights: { name: string; tensor: tf.Tensor }[];
  vocab: Vocabulary;
  history: History;
}> {
  const metaFile = path.join(dir, "checkpoint.json");
  if (!fs.existsSync(metaFile)) throw new Error(`no checkpoint in ${dir} (${metaFile} is missing)`);
  const meta = readJson<CheckpointMeta<Config>>(metaFile, "checkpoint");
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
    vocab: Vocabulary.load(path.join(dir, "vocab.json")),
    history: readJson<History>(path.join(dir, "history.json"), "training history"),
  };
}

/**
 * A weights-only copy of a checkpoint of any model (no optimizer state; float32 weights stored as float16, half
 * the size and a quarter of a full checkpoint): what `models/` ships. Every file of the source is verified first.
 */
export async function exportCheckpoint(
  src: string,
  out: string,
  opts: { float16?: boolean; extra?: Record<string, unknown> } = {},
): Promise<CheckpointMeta<unknown>> {
  const meta = readJson<CheckpointMeta<unknown>>(path.join(src, "checkpoint.json"), "checkpoint");
  if (meta.files) verifyCheckpointFiles(src, meta.files);
  const weights = await loadTensors(path.join(src, "model"), { verified: !!meta.files });
  try {
    const { files: _, ...rest } = meta;
    // The data folder's name only (not this machine's path); the per-epoch history only (not every batch's loss).
    const exported = { ...rest, dataDir: meta.dataDir && path.basename(meta.dataDir), weightsOnly: true };
    const history = readJson<{ epoch?: unknown[] }>(path.join(src, "history.json"), "training history");
    await writeCheckpoint(out, {
      weights,
      vocab: Vocabulary.load(path.join(src, "vocab.json")),
      float16: opts.float16 ?? true,
      meta: exported,
      history: { batch: [], epoch: history.epoch ?? [] },
      extra: opts.extra,
    });
    return readJson<CheckpointMeta<unknown>>(path.join(out, "checkpoint.json"), "checkpoint");
  } finally {
    tf.dispose(Object.values(weights));
  }
}

/** A model rebuilt from its checkpoint, with what training needs to resume it. */
export interface LoadedCheckpoint<Model, Config, History> {
  model: Model;
  vocab: Vocabulary;
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
    const model = build(c.meta.config, fromWeights(dir, c.weights));
    const { config, epoch, dataDir } = c.meta;
    const { history, optimizerWeights } = c;
    return {
      model,
      vocab: c.vocab,
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

/** An initializer that takes each parameter from `weights` by name, with an error naming a missing one. */
export function fromWeights(dir: string, weights: Record<string, tf.Tensor>): (name: string) => tf.Tensor {
  return (name) => {
    const w = weights[name];
    if (!w) throw new Error(`checkpoint ${dir} has no weight ${name}`);
    return w;
  };
}
