/**
 * Training checkpoints, for every model of the project: one folder with the weights (by stable parameter name),
 * the optimiser's state, the vocabulary, the loss history and a versioned `checkpoint.json` (format, epoch,
 * config, data folder). Written atomically — a new folder, then a rename over the old one — so an interrupted
 * write never loses the last good checkpoint.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { loadTensors, readJson, saveTensors, writeJsonAtomic } from "./io";
import { Vocabulary } from "./vocabulary";

export interface CheckpointMeta<Config> {
  format: string;
  version: number;
  epoch: number;
  config: Config;
  /** The data folder it was trained on. */
  dataDir?: string;
}

export async function writeCheckpoint<Config>(
  dir: string,
  parts: { weights: Record<string, tf.Tensor>; optimizer: tf.Optimizer; vocab: Vocabulary; history: unknown; meta: CheckpointMeta<Config> },
): Promise<void> {
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  await saveTensors(path.join(tmp, "model"), parts.weights);
  const optWeights = await parts.optimizer.getWeights();
  await saveTensors(path.join(tmp, "optimizer"), Object.fromEntries(optWeights.map((w) => [w.name, w.tensor])));
  parts.vocab.save(path.join(tmp, "vocab.json"));
  writeJsonAtomic(path.join(tmp, "history.json"), parts.history);
  writeJsonAtomic(path.join(tmp, "checkpoint.json"), parts.meta);
  const old = `${dir}.old-${process.pid}`;
  if (fs.existsSync(dir)) fs.renameSync(dir, old);
  fs.renameSync(tmp, dir);
  fs.rmSync(old, { recursive: true, force: true });
}

/** The parts of a checkpoint of `format`; the caller builds its model from `weights` and disposes them. */
export async function readCheckpoint<Config, History>(dir: string, format: string, what: string): Promise<{
  meta: CheckpointMeta<Config>;
  weights: Record<string, tf.Tensor>;
  optimizerWeights: { name: string; tensor: tf.Tensor }[];
  vocab: Vocabulary;
  history: History;
}> {
  const meta = readJson<CheckpointMeta<Config>>(path.join(dir, "checkpoint.json"), "checkpoint");
  if (meta.format !== format) throw new Error(`${dir} is not an attend-tell ${what} checkpoint (format ${meta.format})`);
  const weights = await loadTensors(path.join(dir, "model"));
  const opt = await loadTensors(path.join(dir, "optimizer"));
  return {
    meta, weights,
    optimizerWeights: Object.entries(opt).map(([name, tensor]) => ({ name, tensor })),
    vocab: Vocabulary.load(path.join(dir, "vocab.json")),
    history: readJson<History>(path.join(dir, "history.json"), "training history"),
  };
}

/** An initializer that takes each parameter from `weights` by name, with an error naming a missing one. */
export function fromWeights(dir: string, weights: Record<string, tf.Tensor>): (name: string) => tf.Tensor {
  return (name) => {
    const w = weights[name];
    if (!w) throw new Error(`checkpoint ${dir} has no weight ${name}`);
    return w;
  };
}
