import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  OFFICIAL_SPLIT_DIR,
  imageFiles,
  imagePath,
  parseCsvLine,
  readCaptions,
  resolveLayout,
  splitImages,
} from "../lib/data";
import { FlickrDataset, trainCaptions } from "../lib/data";
import { buildVocabulary } from "../lib/data";
import { SHARED_FLICKR, setupBackend, tmpDir, writeImage } from "./helpers";

function write(name: string, text: string): string {
  const f = path.join(tmpDir(), name);
  fs.writeFileSync(f, text);
  return f;
}

describe("caption files", () => {
  before(setupBackend);
  it("reads the original layout (image#n<TAB>caption)", () => {
    const f = write("Flickr8k.token.txt", "x.jpg#0\tA dog .\r\nx.jpg#1\tA black dog\n\ny.jpg#0\tA cat\n");
    const r = readCaptions(f);
    assert.deepEqual(
      r.map((c) => [c.image, c.caption, c.line]),
      [
        ["x.jpg", "A dog .", 1],
        ["x.jpg", "A black dog", 2],
        ["y.jpg", "A cat", 4],
      ],
    );
  });

  it("reads the Kaggle CSV layout with quoted commas and doubled quotes", () => {
    const f = write(
      "captions.txt",
      'image,caption\nx.jpg,A dog .\nx.jpg,"A dog , wet , shakes"\ny.jpg,"He said ""hi"""\n',
    );
    assert.deepEqual(
      readCaptions(f).map((c) => [c.image, c.caption]),
      [
        ["x.jpg", "A dog ."],
        ["x.jpg", "A dog , wet , shakes"],
        ["y.jpg", 'He said "hi"'],
      ],
    );
    assert.deepEqual(parseCsvLine('a,"b,c",,d'), ["a", "b,c", "", "d"]);
  });

  it("names the file and line of a bad caption line", () => {
    const noTab = write("Flickr8k.token.txt", "x.jpg#0\tfine\nx.jpg#1\tfine too\ny.jpg#0 no tab here\n");
    assert.throws(() => readCaptions(noTab), new RegExp(`${noTab}:3: no tab between image and caption`));
    const noImage = write("Flickr8k.token.txt", "x.jpg#0\tfine\n#1\tno image\n");
    assert.throws(() => readCaptions(noImage), new RegExp(`${noImage}:2: no image name before the tab`));
    const empty = write("Flickr8k.token.txt", "x.jpg#0\tfine\nx.jpg#1\t  \n");
    assert.throws(() => readCaptions(empty), new RegExp(`${empty}:2: empty caption for x.jpg`));
    const csvEmpty = write("captions.txt", "image,caption\nx.jpg,\n");
    assert.throws(() => readCaptions(csvEmpty), new RegExp(`${csvEmpty}:2: empty caption for x.jpg`));
    const csvQuote = write("captions.txt", 'image,caption\nx.jpg,"open\n');
    assert.throws(() => readCaptions(csvQuote), /:2: unterminated quoted field/);
    const badHeader = write("captions.txt", "file,text\nx.jpg,a\n");
    assert.throws(() => readCaptions(badHeader), /:1: expected a header with columns image,caption/);
  });

  it("says which caption file is missing", () => {
    const dir = tmpDir();
    assert.throws(
      () => readCaptions(path.join(dir, "Flickr8k.token.txt")),
      /caption file .*Flickr8k\.token\.txt does not exist/,
    );
    assert.throws(
      () => resolveLayout(dir),
      /no caption file in .*: expected Flickr8k\.token\.txt \(original Flickr8k\), captions\.txt \(Kaggle\) or one of Karpathy's dataset_flickr8k\.json/,
    );
    assert.throws(() => resolveLayout(path.join(dir, "nope")), /data folder .*nope does not exist/);
  });

  it("splits a folder without split files 6:1:1, the same way every time", () => {
    const dir = tmpDir();
    const rows = Array.from({ length: 80 }, (_, i) => `im${i}.jpg,caption ${i}`);
    fs.writeFileSync(path.join(dir, "captions.txt"), "image,caption\n" + rows.join("\n"));
    const layout = resolveLayout(dir);
    const recs = readCaptions(layout.captionsFile);
    const parts = (["train", "dev", "test"] as const).map((s) => splitImages(layout, s, recs));
    assert.deepEqual(
      parts.map((p) => p.length),
      [60, 10, 10],
    );
    assert.equal(new Set(parts.flat()).size, 80);
    assert.deepEqual(splitImages(layout, "dev", recs), parts[1]);
  });

  it("names the line of a caption file that is not UTF-8 instead of reading mojibake", () => {
    const f = path.join(tmpDir(), "captions.txt");
    fs.writeFileSync(
      f,
      Buffer.concat([Buffer.from("image,caption\nx.jpg,a caf"), Buffer.from([0xe9]), Buffer.from(" terrace\n")]),
    );
    assert.throws(
      () => readCaptions(f),
      new RegExp(`^Error: ${f}:2: not valid UTF-8 \\(Latin-1 or another encoding\\?\\); save the file as UTF-8$`),
    );
    fs.writeFileSync(f, "image,caption\nx.jpg,a café terrace\n");
    assert.equal(readCaptions(f)[0].caption, "a café terrace");
  });

  it("refuses image names that are not plain file names in the image folder (../../etc/passwd, sub/x.jpg)", () => {
    const token = write("Flickr8k.token.txt", "x.jpg#0\tfine\n../../etc/passwd#0\tclimbs out\n");
    assert.throws(
      () => readCaptions(token),
      new RegExp(`${token}:2: image name "\\.\\./\\.\\./etc/passwd" is not a plain file name`),
    );
    const csv = write("captions.txt", "image,caption\nsub\\x.jpg,in a folder\n");
    assert.throws(
      () => readCaptions(csv),
      /:2: image name "sub\\\\x\.jpg" is not a plain file name; images must sit directly in the image folder/,
    );
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, "Flickr8k.token.txt"), "x.jpg#0\ta\n");
    fs.writeFileSync(path.join(dir, "Flickr_8k.devImages.txt"), "x.jpg\n\nsub/y.jpg\n");
    const layout = resolveLayout(dir);
    assert.throws(
      () => splitImages(layout, "dev", readCaptions(layout.captionsFile)),
      /Flickr_8k\.devImages\.txt:3: image name "sub\/y\.jpg"/,
    );
  });

  it("uses Flickr8k's official split lists for a Flickr8k folder without split files (Kaggle's layout)", () => {
    const dir = tmpDir();
    const official = (s: string) =>
      fs
        .readFileSync(path.join(OFFICIAL_SPLIT_DIR, `Flickr_8k.${s}Images.txt`), "utf8")
        .split("\n")
        .filter(Boolean);
    const [train, dev, test] = ["train", "dev", "test"].map(official);
    assert.deepEqual([train.length, dev.length, test.length], [6000, 1000, 1000]);
    const rows = [...train, ...dev, ...test].sort().map((im) => `${im},a caption`);
    fs.writeFileSync(path.join(dir, "captions.txt"), "image,caption\n" + rows.join("\n"));
    const layout = resolveLayout(dir);
    const recs = readCaptions(layout.captionsFile);
    assert.deepEqual(splitImages(layout, "dev", recs), dev);
    assert.deepEqual(splitImages(layout, "train", recs), train);
  });

  it("reads Karpathy's split files (Flickr30k and COCO, with COCO's sub-folders) with the same classes", async () => {
    const dir = tmpDir();
    const sentences = (...raw: string[]) => raw.map((r) => ({ raw: r, tokens: r.toLowerCase().split(" ") }));
    const images = [
      {
        filepath: "train2014",
        filename: "COCO_train2014_1.jpg",
        split: "train",
        sentences: sentences("A dog runs.", "A brown dog"),
      },
      { filepath: "val2014", filename: "COCO_val2014_2.jpg", split: "restval", sentences: sentences("Two cats sleep") },
      { filepath: "val2014", filename: "COCO_val2014_3.jpg", split: "val", sentences: sentences("A man rides a bike") },
      { filepath: "val2014", filename: "COCO_val2014_4.jpg", split: "test", sentences: sentences("A red bus") },
    ];
    fs.writeFileSync(path.join(dir, "dataset_coco.json"), JSON.stringify({ images, dataset: "coco" }));
    for (const im of images) await writeImage(path.join(dir, im.filepath, im.filename), 40, 30);
    const layout = resolveLayout(dir);
    assert.equal(path.basename(layout.captionsFile), "dataset_coco.json");
    const recs = readCaptions(layout.captionsFile);
    assert.deepEqual(
      recs.map((r) => r.caption),
      ["A dog runs.", "A brown dog", "Two cats sleep", "A man rides a bike", "A red bus"],
    );
    assert.deepEqual(
      splitImages(layout, "train", recs),
      ["COCO_train2014_1.jpg", "COCO_val2014_2.jpg"],
      "restval trains",
    );
    assert.deepEqual(splitImages(layout, "dev", recs), ["COCO_val2014_3.jpg"]);
    assert.equal(imagePath(layout, "COCO_val2014_3.jpg"), path.join(dir, "val2014", "COCO_val2014_3.jpg"));
    const vocab = buildVocabulary(trainCaptions(dir), 1);
    const ds = new FlickrDataset({ dataDir: dir, split: "dev", vocab });
    assert.deepEqual(ds.images, ["COCO_val2014_3.jpg"]);
    assert.deepEqual((await ds.getItem(0)).image.shape, [224, 224, 3]);
    assert.deepEqual(imageFiles(dir, "test").files, [path.join(dir, "val2014", "COCO_val2014_4.jpg")]);
    // Flickr30k's file: flat names, photos in flickr30k-images/
    const f30 = tmpDir();
    fs.writeFileSync(
      path.join(f30, "dataset_flickr30k.json"),
      JSON.stringify({ images: [{ filename: "1.jpg", split: "val", sentences: sentences("a b") }] }),
    );
    await writeImage(path.join(f30, "flickr30k-images", "1.jpg"), 20, 20);
    assert.deepEqual(imageFiles(f30, "dev").files, [path.join(f30, "flickr30k-images", "1.jpg")]);
    // Bad entries are named
    const bad = tmpDir();
    const write = (images: unknown[]) =>
      fs.writeFileSync(path.join(bad, "dataset_flickr8k.json"), JSON.stringify({ images }));
    write([{ filename: "x.jpg", split: "dev", sentences: sentences("a") }]);
    assert.throws(
      () => readCaptions(path.join(bad, "dataset_flickr8k.json")),
      /images\[0\] \(x\.jpg\) has split "dev"; expected train, restval, val or test/,
    );
    write([{ filename: "x.jpg", filepath: "../..", split: "val", sentences: sentences("a") }]);
    assert.throws(
      () => readCaptions(path.join(bad, "dataset_flickr8k.json")),
      /has filepath "\.\.\/\.\.", outside the image folder/,
    );
  });

  describe("on the shared Flickr8k", function () {
    before(function () {
      if (!SHARED_FLICKR) this.skip();
    });

    it("reads both layouts to the same captions and the official 6000/1000/1000 split", () => {
      const layout = resolveLayout(SHARED_FLICKR!);
      assert.equal(path.basename(layout.captionsFile), "Flickr8k.token.txt");
      assert.equal(path.basename(layout.imagesDir), "Images224");
      const token = readCaptions(layout.captionsFile);
      const csv = readCaptions(path.join(SHARED_FLICKR!, "captions.txt"));
      assert.equal(token.length, 40460);
      assert.equal(csv.length, 40455);
      const key = (r: { image: string; caption: string }) => `${r.image}\t${r.caption}`;
      const csvKeys = new Set(csv.map(key));
      const notInCsv = token.filter((r) => !csvKeys.has(key(r)));
      // The one image with captions but no photo; its first line even reads "….jpg.1#0" in the original.
      assert.deepEqual(
        [...new Set(notInCsv.map((r) => r.image))],
        ["2258277193_586949ec62.jpg.1", "2258277193_586949ec62.jpg"],
      );
      assert.deepEqual(
        (["train", "dev", "test"] as const).map((s) => splitImages(layout, s, token).length),
        [6000, 1000, 1000],
      );
    });
  });
});
