import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { fileSystemIO, loadTensors, readJson, saveTensors, writeFileAtomic, writeJsonAtomic } from "../lib/util";
import { setupBackend, tmpDir } from "./helpers";

describe("io", () => {
  before(setupBackend);

  it("writes atomically and leaves no temporary files", () => {
    const dir = tmpDir();
    const f = path.join(dir, "sub", "x.json");
    writeJsonAtomic(f, { a: 1 });
    writeJsonAtomic(f, { a: 2 });
    assert.deepEqual(readJson(f), { a: 2 });
    assert.deepEqual(fs.readdirSync(path.dirname(f)), ["x.json"]);
  });

  it("keeps the old file when a write fails", () => {
    const dir = tmpDir();
    const f = path.join(dir, "x.txt");
    writeFileAtomic(f, "good");
    // A directory where the temp file's parent should be makes the write fail midway.
    assert.throws(() => writeFileAtomic(path.join(f, "child"), "bad"));
    assert.equal(fs.readFileSync(f, "utf8"), "good");
  });

  it("readJson names the file in its errors", () => {
    const dir = tmpDir();
    const f = path.join(dir, "broken.json");
    fs.writeFileSync(f, "{nope");
    assert.throws(() => readJson(f, "vocabulary file"), new RegExp(`vocabulary file ${f} is not valid JSON`));
    assert.throws(() => readJson(path.join(dir, "none.json")), /none\.json cannot be read/);
  });

  it("round-trips named tensors of several dtypes", async () => {
    const dir = tmpDir();
    const a = tf.tensor2d([
      [1.5, -2],
      [3, 4e-8],
    ]);
    const b = tf.tensor1d([7, 8, 9], "int32");
    await saveTensors(dir, { "decoder/embedding": a, step: b });
    const back = await loadTensors(dir);
    assert.deepEqual(Object.keys(back).sort(), ["decoder/embedding", "step"]);
    assert.deepEqual(back["decoder/embedding"].shape, [2, 2]);
    assert.deepEqual(Array.from(await back["decoder/embedding"].data()), Array.from(await a.data()));
    assert.equal(back.step.dtype, "int32");
    assert.deepEqual(Array.from(await back.step.data()), [7, 8, 9]);
    tf.dispose([a, b, ...Object.values(back)]);
  });

  it("saves and loads a LayersModel, replacing old weight files", async () => {
    const dir = tmpDir();
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 3, inputShape: [4], activation: "tanh" })] });
    const x = tf.tensor2d([[1, 2, 3, 4]]);
    // Fixed weights (not the random init, which can saturate tanh near 1 too): zeros first, then ones.
    model.layers[0].setWeights(model.layers[0].getWeights().map((w) => tf.zerosLike(w)));
    const y = model.predict(x) as tf.Tensor;
    await model.save(fileSystemIO(dir));
    model.layers[0].setWeights(model.layers[0].getWeights().map((w) => tf.onesLike(w)));
    await model.save(fileSystemIO(dir));
    const bins = fs.readdirSync(dir).filter((f) => f.endsWith(".bin"));
    assert.equal(bins.length, 1, `stale weight files left: ${bins}`);
    const loaded = await tf.loadLayersModel(fileSystemIO(dir));
    const y2 = loaded.predict(x) as tf.Tensor;
    const expected = Math.tanh(1 + 2 + 3 + 4 + 1);
    for (const v of await y2.data()) assert.ok(Math.abs(v - expected) < 1e-6);
    assert.deepEqual(Array.from(await y.data()), [0, 0, 0], "the first save held other weights");
    tf.dispose([x, y, y2]);
  });

  it("says which weight file is missing", async () => {
    const dir = tmpDir();
    await saveTensors(dir, { w: tf.zeros([2]) });
    for (const f of fs.readdirSync(dir)) if (f.endsWith(".bin")) fs.rmSync(path.join(dir, f));
    await assert.rejects(loadTensors(dir), /model\.json lists weight file weights-[0-9a-f]+\.bin, which is missing/);
    await assert.rejects(loadTensors(path.join(dir, "nowhere")), /model\.json is missing/);
  });
});
