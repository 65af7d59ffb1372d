import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import sharp from "sharp";
import { loadRgb } from "../lib/data";
import { FeatureCache, encoderIdentity, extractFeatures, mirroredDir, prepareCaptionData } from "../lib/encoder";
import { main } from "../lib/cli";
import { setupBackend, tmpDir } from "./helpers";

/** A photo whose left and right differ: a left part of one colour, the rest of another, a square in between. */
async function asymmetric(file: string, seed: number): Promise<void> {
  const [w, h] = [224, 224]; // the encoder's size: no resampling, so a flip commutes with loading exactly
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const left = x < w / 3 + 4 * seed;
      const square = x > w / 2 + 8 * seed && x < w / 2 + 8 * seed + 40 && y > 60 && y < 110;
      px.set(square ? [250, 250, 30] : left ? [200, 30 * seed, 20] : [20, 60, 220 - 20 * seed], 3 * (y * w + x));
    }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp(px, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toFile(file);
}

const train = ["a.png", "b.png", "c.png", "d.png", "e.png", "f.png"];
const captions = [
  "a dog to the left of a cat .",
  "a cat on the right .",
  "a dog on the left and a cat on the right .",
  "a red dog .",
  "a cat to the right of a dog .",
  "a dog on the left .",
];

/** Six train photos and two dev photos, each caption of a train photo its only one. */
async function mirrorData(): Promise<string> {
  await setupBackend();
  const dir = tmpDir();
  const all = [...train, "g.png", "h.png"];
  await Promise.all(all.map((im, i) => asymmetric(path.join(dir, "Images", im), i)));
  const lines = all.map((im, i) => `${im}#0\t${captions[i] ?? "a dog on the left ."}`);
  fs.writeFileSync(path.join(dir, "Flickr8k.token.txt"), lines.join("\n") + "\n");
  fs.writeFileSync(path.join(dir, "Flickr_8k.trainImages.txt"), train.join("\n") + "\n");
  fs.writeFileSync(path.join(dir, "Flickr_8k.devImages.txt"), "g.png\nh.png\n");
  fs.writeFileSync(path.join(dir, "Flickr_8k.testImages.txt"), "");
  return dir;
}

describe("mirror images: the photos flipped, their features cached apart", function () {
  this.timeout(300_000);
  let dir: string;
  before(async () => (dir = await mirrorData()));

  it("loadRgb flips a photo left to right", async () => {
    const file = path.join(dir, "Images", "b.png");
    const [plain, mirrored] = await Promise.all([loadRgb(file, 32), loadRgb(file, 32, true)]);
    for (let y = 0; y < 32; y++)
      for (let x = 0; x < 32; x++)
        for (let c = 0; c < 3; c++)
          assert.equal(mirrored.data[3 * (32 * y + x) + c], plain.data[3 * (32 * y + 31 - x) + c], `pixel ${x}, ${y}`);
  });

  it("caches the mirror images' features apart (never read as the photo's own), equal to a flipped copy's", async () => {
    const files = train.slice(0, 2).map((im) => path.join(dir, "Images", im));
    const out = path.join(dir, "mirrored-cache");
    await extractFeatures({ files, out, mirror: true, quiet: true });
    assert.throws(() => FeatureCache.open(out), /another encoder or preprocessing.*mirrored left to right/);
    await assert.rejects(extractFeatures({ files, out, quiet: true }), /another encoder or preprocessing/);
    // the same features as the photos flipped by another program and encoded as they are
    const flippedDir = path.join(dir, "flipped");
    fs.mkdirSync(flippedDir);
    const flipped = await Promise.all(
      files.map(async (f) => {
        const to = path.join(flippedDir, path.basename(f));
        await sharp(f).flop().png().toFile(to);
        return to;
      }),
    );
    await extractFeatures({ files: flipped, out: path.join(dir, "flipped-cache"), quiet: true });
    const names = train.slice(0, 2);
    const mirrored = FeatureCache.open(out, encoderIdentity(undefined, true)).read(names);
    const copy = FeatureCache.open(path.join(dir, "flipped-cache")).read(names);
    await extractFeatures({ files, out: path.join(dir, "plain-cache"), quiet: true });
    const plain = FeatureCache.open(path.join(dir, "plain-cache")).read(names);
    const scale = copy.reduce((m, v) => Math.max(m, v), 0);
    let apart = 0;
    for (let i = 0; i < copy.length; i++) {
      assert.ok(Math.abs(mirrored[i] - copy[i]) <= 2 ** -10 * Math.abs(copy[i]) + 1e-5 * scale, `value ${i}`);
      apart = Math.max(apart, Math.abs(mirrored[i] - plain[i]));
    }
    assert.ok(apart > 0.1 * scale, `the mirror image's features differ from the photo's (at most ${apart})`);
  });
});

describe("mirror images: a second view of every train photo in training", function () {
  this.timeout(300_000);
  let dir: string;
  before(async () => (dir = await mirrorData()));

  it("serves half the train items mirrored each epoch, left and right swapped, the same again for a seed and epoch", async () => {
    const data = await prepareCaptionData(dir, {
      featuresDir: path.join(dir, "features"),
      mirror: true,
      threshold: 1,
      quiet: true,
    });
    const { vocab } = data;
    const mirror = data.train.mirror!;
    const swapped = (ids: number[]) =>
      ids.map((w) => (w === vocab.id("left") ? vocab.id("right") : w === vocab.id("right") ? vocab.id("left") : w));
    const views = async (epoch: number): Promise<string> => {
      const seen: string[] = [];
      for await (const b of data.train.loader({ batchSize: 4, shuffle: true, seed: 3 }).epoch(epoch)) {
        const [features, ids] = [(await b.features.data()) as Float32Array, (await b.captions.array()) as number[][]];
        const row = data.cache.rowValues;
        b.imageNames.forEach((name, k) => {
          const own = vocab.encode(captions[train.indexOf(name)]);
          const caption = ids[k].slice(0, own.length);
          const f = features.subarray(k * row, (k + 1) * row);
          const isMirrored = mirror.cache.read([name]).every((v, i) => v === f[i]);
          assert.ok(
            isMirrored || data.cache.read([name]).every((v, i) => v === f[i]),
            `${name}: features of neither view`,
          );
          assert.deepEqual(caption, isMirrored ? swapped(own) : own, `${name}: caption of its view`);
          seen.push(`${name}:${isMirrored ? "mirrored" : "photo"}`);
        });
        b.features.dispose();
        b.captions.dispose();
      }
      return seen.sort().join(" ");
    };
    const epochs = [await views(0), await views(1), await views(2), await views(3)];
    assert.equal(await views(1), epochs[1], "epoch 1 again: the same views (a resumed run sees the same data)");
    const share = epochs.join(" ").split(":mirrored").length - 1;
    assert.ok(share >= 6 && share <= 18, `${share} of 24 items mirrored over four epochs`);
    assert.ok(new Set(epochs).size > 1, "the views are drawn anew each epoch");
    assert.notEqual(vocab.id("left"), vocab.id("right"));
    assert.equal(mirror.cache.dir, path.join(dir, "features-mirrored"));
    assert.equal(mirroredDir(path.join(dir, "features") + path.sep), path.join(dir, "features-mirrored"));
  });

  it("train-matching --mirror trains on both views; --resume asks for the same data", async () => {
    const out = path.join(dir, "runs", "scan");
    const features = ["--features", path.join(dir, "features")];
    const args = [
      "train-matching",
      "--data-dir",
      dir,
      "--out",
      out,
      ...features,
      "--batch-size",
      "4",
      "--joint-dim",
      "8",
    ];
    const log = console.log;
    console.log = () => {};
    try {
      await main([...args, "--epochs", "1", "--mirror"]);
      await assert.rejects(main([...args, "--epochs", "2", "--resume"]), /trained with mirror images: add --mirror/);
      await main([...args, "--epochs", "2", "--resume", "--mirror"]);
    } finally {
      console.log = log;
    }
    const meta = JSON.parse(fs.readFileSync(path.join(out, "checkpoint", "checkpoint.json"), "utf8"));
    assert.deepEqual([meta.epoch, meta.config.mirror], [2, true]);
  });
});
