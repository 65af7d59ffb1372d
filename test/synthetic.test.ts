import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import sharp from "sharp";
import { COLORS, SceneObject, describe as describeScene, generateSynthetic, readBoxes, relation } from "../lib/data";
import { FlickrDataset, trainCaptions } from "../lib/data";
import { buildVocabulary } from "../lib/data";
import { Rng } from "../lib/util";
import { setupBackend, tmpDir } from "./helpers";

const obj = (box: [number, number, number, number], color = "red", shape = "circle"): SceneObject =>
  ({ box, color, shape, size: "small" }) as SceneObject;

describe("synthetic scenes", () => {
  let dir: string;
  before(async () => {
    await setupBackend();
    dir = path.join(tmpDir(), "synthetic");
    await generateSynthetic(dir, { n: 30, seed: 4 });
  });

  it("writes the original Flickr8k layout that FlickrDataset reads unchanged, split 80/10/10", () => {
    const vocab = buildVocabulary(trainCaptions(dir), 1);
    const train = new FlickrDataset({ dataDir: dir, split: "train", vocab });
    assert.equal(train.images.length, 24);
    assert.equal(train.length, 120, "five captions per image");
    assert.equal(new FlickrDataset({ dataDir: dir, split: "dev", vocab }).images.length, 3);
    assert.equal(new FlickrDataset({ dataDir: dir, split: "test", vocab }).images.length, 3);
    for (const w of ["red", "circle", "square", "left", "of"]) assert.ok(vocab.has(w), `vocabulary lacks ${w}`);
  });

  it("is deterministic: the same seed gives byte-identical files", async () => {
    const again = path.join(tmpDir(), "again");
    await generateSynthetic(again, { n: 30, seed: 4 });
    for (const f of ["Flickr8k.token.txt", "boxes.json", "Images/scene_00007.png"]) {
      assert.ok(fs.readFileSync(path.join(dir, f)).equals(fs.readFileSync(path.join(again, f))), `${f} differs`);
    }
    const other = path.join(tmpDir(), "other");
    await generateSynthetic(other, { n: 30, seed: 5 });
    assert.notEqual(
      fs.readFileSync(path.join(other, "Flickr8k.token.txt"), "utf8"),
      fs.readFileSync(path.join(dir, "Flickr8k.token.txt"), "utf8"),
    );
  });

  it("draws each object inside its ground-truth box, in its colour, and names it in every caption", async () => {
    const boxes = readBoxes(dir);
    const captions = fs.readFileSync(path.join(dir, "Flickr8k.token.txt"), "utf8");
    for (const [image, objects] of Object.entries(boxes).slice(0, 10)) {
      assert.ok(objects.length >= 1 && objects.length <= 3);
      const { data, info } = await sharp(path.join(dir, "Images", image))
        .removeAlpha()
        .raw()
        .toBuffer({ resolveWithObject: true });
      for (const o of objects) {
        const cx = Math.round((o.box[0] + o.box[2]) / 2),
          cy = Math.round((o.box[1] + o.box[3]) / 2);
        const at = (cy * info.width + cx) * 3;
        const want = COLORS[o.color].match(/[0-9a-f]{2}/g)!.map((h) => parseInt(h, 16));
        assert.deepEqual([data[at], data[at + 1], data[at + 2]], want, `${image}: ${o.color} ${o.shape} centre pixel`);
        const lines = captions.split("\n").filter((l) => l.startsWith(image + "#"));
        assert.equal(lines.length, 5);
        for (const l of lines)
          assert.match(l, new RegExp(`${o.color} ${o.shape}`), `${l} does not name the ${o.color} ${o.shape}`);
      }
    }
  });

  it("describes relations by the larger offset of the centres", () => {
    const left = obj([0, 100, 20, 120]),
      right = obj([150, 90, 170, 110], "blue", "square"),
      low = obj([0, 200, 20, 220]);
    assert.equal(relation(left, right), "to the left of");
    assert.equal(relation(right, left), "to the right of");
    assert.equal(relation(left, low), "above");
    assert.equal(relation(low, left), "below");
    const caps = describeScene([left, right], new Rng(1));
    assert.equal(caps.length, 5);
    assert.ok(
      caps.some((c) =>
        /red circle to the left of a (small )?blue square|blue square to the right of a (small )?red circle/.test(c),
      ),
      caps.join(" | "),
    );
    const orange = Array.from({ length: 4 }, (_, k) =>
      describeScene([obj([0, 0, 30, 30], "orange")], new Rng(k)),
    ).flat();
    assert.equal(orange[1], "a small orange circle");
    assert.ok(
      orange.some((c) => /\ban orange circle/.test(c)),
      "an before a vowel",
    );
    assert.ok(!orange.some((c) => /\ba orange|\ban small/.test(c)), orange.join(" | "));
  });

  it("refuses a count that cannot be split", async () => {
    await assert.rejects(generateSynthetic(path.join(tmpDir(), "x"), { n: 2 }), /n must be an integer ≥ 3, got 2/);
  });
});

describe("ensureSynthetic", () => {
  it("reuses a set made with the same options and regenerates for others", async () => {
    const { ensureSynthetic } = await import("../lib/data/synthetic");
    const dir = path.join(tmpDir(), "s");
    assert.equal(await ensureSynthetic(dir, { n: 6, seed: 2 }), true);
    assert.equal(await ensureSynthetic(dir, { n: 6, seed: 2 }), false);
    assert.equal(await ensureSynthetic(dir, { n: 6, seed: 2, clutter: 0 }), true);
    assert.equal(fs.readFileSync(path.join(dir, "Flickr_8k.trainImages.txt"), "utf8").trim().split("\n").length, 5);
  });
});
