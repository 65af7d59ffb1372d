import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import {
  exportCheckpoint,
  loadModelCheckpoint,
  readCheckpoint,
  resumableOptimizerWeights,
  writeCheckpoint,
} from "../lib/util";
import { buildVocabulary } from "../lib/data";
import { decodeHalf, encodeHalf } from "../lib/util";
import { setupBackend, tmpDir } from "./helpers";

const FORMAT = "attend-tell/test-checkpoint";

/** A small checkpoint with a real Adam state (one step taken), as the trainers write it. */
async function smallCheckpoint(dir: string): Promise<Record<string, tf.Variable>> {
  const w = {
    "fc.weight": tf.variable(
      tf.tensor2d([
        [0.5, -1.25],
        [2, 3.0001],
      ]),
    ),
    "fc.bias": tf.variable(tf.tensor1d([0.1, -0.2])),
  };
  const optimizer = tf.train.adam(0.01);
  optimizer.minimize(
    () => tf.add(w["fc.weight"].square().sum(), w["fc.bias"].sum()) as tf.Scalar,
    false,
    Object.values(w),
  );
  await writeCheckpoint(dir, {
    weights: w,
    optimizer,
    vocab: buildVocabulary(["a dog runs", "a dog"], 1),
    history: { epoch: [] },
    meta: { format: FORMAT, version: 1, epoch: 1, config: { dim: 2 } },
  });
  return w;
}

function flipByte(file: string, at = 3): void {
  const b = fs.readFileSync(file);
  b[at] ^= 0x10;
  fs.writeFileSync(file, b);
}

describe("checkpoint: every file verified on load", () => {
  before(setupBackend);

  it("lists the sha256 of every file and loads back what was written", async () => {
    const dir = path.join(tmpDir(), "checkpoint");
    const w = await smallCheckpoint(dir);
    const meta = JSON.parse(fs.readFileSync(path.join(dir, "checkpoint.json"), "utf8"));
    const listed = Object.keys(meta.files);
    assert.ok(
      listed.includes("vocab.json") && listed.includes("history.json") && listed.includes("model/model.json"),
      listed.join(),
    );
    assert.equal(listed.filter((f) => /^optimizer\/weights-/.test(f)).length, 1);
    const c = await readCheckpoint(dir, FORMAT, "test");
    assert.deepEqual(Array.from(await c.weights["fc.weight"].data()), Array.from(await w["fc.weight"].data()));
    assert.ok(c.optimizerWeights.length > 0);
    tf.dispose([...Object.values(c.weights), ...c.optimizerWeights.map((o) => o.tensor), ...Object.values(w)]);
  });

  it("names a weight file with one flipped byte, a truncated one and a damaged vocabulary", async () => {
    for (const damage of ["weights", "truncate", "vocab", "optimizer"] as const) {
      const dir = path.join(tmpDir(), "checkpoint");
      tf.dispose(Object.values(await smallCheckpoint(dir)));
      const sub = damage === "optimizer" ? "optimizer" : "model";
      const weights = path.join(
        dir,
        sub,
        fs.readdirSync(path.join(dir, sub)).find((f) => f.endsWith(".bin"))!,
      );
      if (damage === "truncate") fs.truncateSync(weights, 5);
      else flipByte(damage === "vocab" ? path.join(dir, "vocab.json") : weights, damage === "vocab" ? 20 : 3);
      const file = damage === "vocab" ? path.join(dir, "vocab.json") : weights;
      await assert.rejects(readCheckpoint(dir, FORMAT, "test"), (e: Error) => {
        assert.ok(
          e.message.includes(file) && /damaged/.test(e.message) && /restore the folder or retrain/.test(e.message),
          e.message,
        );
        return true;
      });
    }
  });

  it("verifies checkpoints written before the list by the content hash in their weight files' names", async () => {
    const dir = path.join(tmpDir(), "checkpoint");
    tf.dispose(Object.values(await smallCheckpoint(dir)));
    const metaFile = path.join(dir, "checkpoint.json");
    const { files: _, sha256: __, ...old } = JSON.parse(fs.readFileSync(metaFile, "utf8")); // neither was recorded then
    fs.writeFileSync(metaFile, JSON.stringify(old));
    const c = await readCheckpoint(dir, FORMAT, "test"); // still loads
    tf.dispose([...Object.values(c.weights), ...c.optimizerWeights.map((o) => o.tensor)]);
    const weights = path.join(
      dir,
      "model",
      fs.readdirSync(path.join(dir, "model")).find((f) => f.endsWith(".bin"))!,
    );
    flipByte(weights);
    await assert.rejects(
      readCheckpoint(dir, FORMAT, "test"),
      new RegExp(`${weights.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} is damaged: its sha256 starts`),
    );
    fs.truncateSync(weights, 4);
    await assert.rejects(readCheckpoint(dir, FORMAT, "test"), /damaged/);
  });

  it("exports weights only as float16: half the bytes, values to float16 rounding, and refuses to resume", async () => {
    const root = tmpDir();
    const src = path.join(root, "checkpoint");
    const w = await smallCheckpoint(src);
    const out = path.join(root, "export");
    const meta = await exportCheckpoint(src, out);
    assert.equal(meta.weightsOnly, true);
    const loaded = async (d: string) => (await loadModelCheckpoint(d, FORMAT, "test", () => ({}))).weightsOnly;
    assert.deepEqual([await loaded(out), await loaded(src)], [true, false], "what `evaluate` keeps models/ clean by");
    assert.ok(!fs.existsSync(path.join(out, "optimizer")));
    const bin = (d: string) =>
      fs.statSync(
        path.join(
          d,
          "model",
          fs.readdirSync(path.join(d, "model")).find((f) => f.endsWith(".bin"))!,
        ),
      ).size;
    assert.equal(bin(out) * 2, bin(src));
    const c = await readCheckpoint(out, FORMAT, "test");
    const full = Array.from(await w["fc.weight"].data());
    const half = Array.from(await c.weights["fc.weight"].data());
    assert.deepEqual(half, Array.from(decodeHalf(encodeHalf(full))));
    half.forEach((v, i) =>
      assert.ok(v !== full[i] && Math.abs(v - full[i]) <= Math.abs(full[i]) * 2 ** -11, `${v} vs ${full[i]}`),
    );
    assert.deepEqual(c.optimizerWeights, []);
    assert.throws(
      () => resumableOptimizerWeights(out, c.optimizerWeights),
      /holds weights only .* cannot be resumed; train into a new --out/,
    );
    tf.dispose([...Object.values(c.weights), ...Object.values(w)]);
  });

  it("leaves no temporary folder behind when a write fails, and keeps the last good checkpoint", async () => {
    const root = tmpDir();
    const dir = path.join(root, "checkpoint");
    tf.dispose(Object.values(await smallCheckpoint(dir)));
    const before = fs.readFileSync(path.join(dir, "checkpoint.json"), "utf8");
    const bad = tf.tensor1d([true, false], "bool");
    await assert.rejects(
      writeCheckpoint(dir, {
        weights: { b: bad },
        vocab: buildVocabulary(["a"], 1),
        history: {},
        float16: true,
        meta: { format: FORMAT, version: 1, epoch: 2, config: {} },
      }),
      /float16 folders hold float32 and int32 only/,
    );
    bad.dispose();
    assert.deepEqual(fs.readdirSync(root), ["checkpoint"]);
    assert.equal(fs.readFileSync(path.join(dir, "checkpoint.json"), "utf8"), before);
  });
});
