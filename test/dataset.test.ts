import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { FlickrDataset, trainCaptions } from "../lib/data";
import { loadRgb, normalizePixels } from "../lib/data";
import { EOS, SOS, UNK, buildVocabulary } from "../lib/data";
import { SHARED_FLICKR, setupBackend, tinyFlickr, writeImage, tmpDir } from "./helpers";

describe("FlickrDataset", () => {
  let dir: string;
  before(async () => {
    await setupBackend();
    dir = await tinyFlickr();
  });

  it("has one item per caption of the split; getItem gives a 224×224×3 image and <SOS> ids <EOS>", async () => {
    const vocab = buildVocabulary(trainCaptions(dir), 1);
    const train = new FlickrDataset({ dataDir: dir, split: "train", vocab });
    assert.equal(train.length, 4);
    assert.deepEqual(train.images, ["a.jpg", "b.jpg"]);
    const item = await train.getItem(0);
    assert.deepEqual(item.image.shape, [224, 224, 3], "a 320×200 photo is resized to 224×224");
    assert.equal(item.imageName, "a.jpg");
    assert.deepEqual(item.caption, [SOS, ...vocab.numericalize("A dog runs on the grass ."), EOS]);
    const px = await item.image.slice([100, 100, 0], [1, 1, 3]).data();
    assert.ok(
      Math.abs(px[0] - 200 / 255) < 0.02 && Math.abs(px[1] - 30 / 255) < 0.02,
      `unit-normalised red, got ${px}`,
    );
    item.image.dispose();
    const dev = new FlickrDataset({ dataDir: dir, split: "dev", vocab });
    assert.ok(dev.caption(0).includes(UNK), "bicycle is not in the train vocabulary");
    assert.throws(() => train.caption(4), /index 4 is outside 0\.\.3/);
    assert.deepEqual(train.captionsOf("b.jpg"), ["Two dogs play in the snow .", "A dog jumps ."]);
    assert.deepEqual(train.captionsOf("c.png"), [], "c.png is a dev image");
  });

  it("normalises as the encoder asks (caffe: BGR minus the ImageNet mean)", async () => {
    const img = await loadRgb(path.join(dir, "Images", "b.jpg"), 4);
    const caffe = normalizePixels(img, "caffe");
    // b.jpg is pure blue (0, 0, 255): B − 103.939, G − 116.779, R − 123.68 (JPEG may shift values by a few)
    assert.ok(
      Math.abs(caffe[0] - (255 - 103.939)) < 4 && Math.abs(caffe[1] + 116.779) < 4 && Math.abs(caffe[2] + 123.68) < 4,
      `${caffe.slice(0, 3)}`,
    );
    const torch = normalizePixels({ data: new Uint8Array([255, 0, 128]), width: 1, height: 1 }, "torch");
    assert.ok(Math.abs(torch[0] - (1 - 0.485) / 0.229) < 1e-5 && Math.abs(torch[1] - -0.456 / 0.224) < 1e-5);
    assert.throws(() => normalizePixels(img, "imagenet" as never), /unknown normalization "imagenet"/);
  });

  it("names a listed image that is missing, or skips and counts it when asked", async () => {
    const d = await tinyFlickr();
    fs.rmSync(path.join(d, "Images", "b.jpg"));
    const vocab = buildVocabulary(trainCaptions(d), 1);
    assert.throws(
      () => new FlickrDataset({ dataDir: d, split: "train", vocab }),
      /image b\.jpg \(listed in .*Flickr_8k\.trainImages\.txt\) is missing from .*Images; pass onMissing: "skip"/,
    );
    const ds = new FlickrDataset({ dataDir: d, split: "train", vocab, onMissing: "skip" });
    assert.equal(ds.length, 2);
    assert.deepEqual(
      ds.skipped.map((s) => s.image),
      ["b.jpg"],
    );
  });

  it("names a file that is not an image", async () => {
    const d = await tinyFlickr();
    fs.writeFileSync(path.join(d, "Images", "a.jpg"), "this is not a JPEG");
    const ds = new FlickrDataset({ dataDir: d, split: "train", vocab: buildVocabulary(trainCaptions(d), 1) });
    await assert.rejects(ds.getItem(0), /cannot decode image .*a\.jpg/);
  });

  it("reads the Kaggle layout and images of any size and format", async () => {
    const d = tmpDir();
    fs.writeFileSync(path.join(d, "captions.txt"), 'image,caption\nbig.webp,"A wide , tall picture"\n');
    fs.writeFileSync(path.join(d, "Flickr_8k.trainImages.txt"), "big.webp\n");
    await writeImage(path.join(d, "Images", "big.webp"), 1000, 37);
    const ds = new FlickrDataset({
      dataDir: d,
      split: "train",
      vocab: buildVocabulary(["a wide tall picture"], 1),
      imageSize: 32,
    });
    const item = await ds.getItem(0);
    assert.deepEqual(item.image.shape, [32, 32, 3]);
    item.image.dispose();
  });

  describe("on the shared Flickr8k", function () {
    before(function () {
      if (!SHARED_FLICKR) this.skip();
    });

    it("gives 30,000 train and 5,000 dev items; the withheld test photos are named, or skipped and counted", async () => {
      const vocab = buildVocabulary(trainCaptions(SHARED_FLICKR!), 5);
      assert.ok(vocab.size > 2500 && vocab.size < 3200, `Flickr8k train vocabulary at threshold 5: ${vocab.size}`);
      const train = new FlickrDataset({ dataDir: SHARED_FLICKR!, split: "train", vocab });
      assert.equal(train.length, 30000);
      const dev = new FlickrDataset({ dataDir: SHARED_FLICKR!, split: "dev", vocab });
      assert.equal(dev.length, 5000);
      const item = await dev.getItem(0);
      assert.deepEqual(item.image.shape, [224, 224, 3]);
      tf.dispose(item.image);
      assert.throws(
        () => new FlickrDataset({ dataDir: SHARED_FLICKR!, split: "test", vocab }),
        /Flickr_8k\.testImages\.txt\) is missing from/,
      );
      const test = new FlickrDataset({ dataDir: SHARED_FLICKR!, split: "test", vocab, onMissing: "skip" });
      assert.equal(test.skipped.length, 1000);
      assert.equal(test.length, 0);
    });
  });
});
