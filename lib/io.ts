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
    throw new Error(`${what} ${file} cannot be read: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`${what} ${file} is not valid JSON: ${(e as Error).message}`);
  }
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
export function fileSystemIO(dir: string): tf.io.IOHandler {
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
            buffers.push(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
          }
          specs.push(...group.weights);
        }
        return [specs, tf.io.concatenateArrayBuffers(buffers)];
      });
    },
  };
}

/** Saves named tensors (a model's variables, an optimiser's slots) as a tfjs weights folder. */
export async function saveTensors(dir: string, tensors: Record<string, tf.Tensor>): Promise<void> {
  const named = Object.entries(tensors).map(([name, tensor]) => ({ name, tensor }));
  const { data, specs } = await tf.io.encodeWeights(named);
  await fileSystemIO(dir).save!({ weightData: data, weightSpecs: specs });
}

/** Loads what saveTensors wrote, as new tensors keyed by name (the caller disposes them). */
export async function loadTensors(dir: string): Promise<Record<string, tf.Tensor>> {
  const a = await fileSystemIO(dir).load!();
  return tf.io.decodeWeights(weightBuffer(a.weightData), a.weightSpecs ?? []) as Record<string, tf.Tensor>;
}
