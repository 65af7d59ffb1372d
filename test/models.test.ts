import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { SENTENCE_END, loadCheckpoint, storedCider } from "../lib/captioning";
import { loadMatchingCheckpoint } from "../lib/matching";
import { imagePath, readCaptions, resolveLayout } from "../lib/data";
import { SHIPPED, shippedEnsemble, shippedModel } from "../lib/util";
import { SHARED_FLICKR, setupBackend, tmpDir } from "./helpers";

const root = path.resolve(__dirname, "..");
const models = fs.existsSync(path.join(root, "models"))
  ? fs
      .readdirSync(path.join(root, "models"))
      .filter((d) => fs.existsSync(path.join(root, "models", d, "checkpoint.json")))
  : [];

describe("shipped models (models/)", function () {
  this.timeout(300_000);
  before(setupBackend);

  it("the captioner is shipped: every member of its ensemble, one vocabulary", async () => {
    for (const name of SHIPPED.captioner) assert.ok(shippedModel(name), `models/${name} holds no checkpoint`);
    const vocabs = SHIPPED.captioner.map((name) =>
      fs.readFileSync(path.join(root, "models", name, "vocab.json"), "utf8"),
    );
    assert.ok(vocabs.every((v) => v === vocabs[0]));
  });

  it("the captioner stores the document frequencies consensus decoding reads, the end of the sentence counted", () => {
    const stored = SHIPPED.captioner.map((name) => storedCider(shippedModel(name)!)).filter((c) => c !== undefined);
    assert.equal(stored.length, 1, "one member stores consensus.json");
    assert.ok(stored[0]!.documentFrequency([SENTENCE_END]) > 0);
  });

  for (const name of models) {
    it(`${name}: weights only, float16, every file's sha256 in checkpoint.json and in MODEL.md, and it loads`, async () => {
      const dir = path.join(root, "models", name);
      const meta = JSON.parse(fs.readFileSync(path.join(dir, "checkpoint.json"), "utf8"));
      assert.equal(meta.weightsOnly, true);
      assert.match(meta.sha256 ?? "", /^[0-9a-f]{64}$/, "checkpoint.json carries its own sha256");
      assert.ok(!fs.existsSync(path.join(dir, "optimizer")), "no optimizer state");
      const card = fs.readFileSync(path.join(dir, "MODEL.md"), "utf8");
      const files = Object.entries(meta.files as Record<string, string>);
      assert.ok(files.length >= 4);
      for (const [file, sum] of files) assert.ok(card.includes(`${sum}  ${file}`), `MODEL.md lacks "${sum}  ${file}"`);
      const specs = JSON.parse(fs.readFileSync(path.join(dir, "model", "model.json"), "utf8")).weightsManifest[0]
        .weights;
      assert.ok(
        specs.every(
          (s: { dtype: string; quantization?: { dtype: string } }) =>
            s.dtype !== "float32" || s.quantization?.dtype === "float16",
        ),
      );
      const ck =
        meta.format === "attend-tell/caption-checkpoint"
          ? await loadCheckpoint(dir)
          : await loadMatchingCheckpoint(dir);
      assert.equal(ck.epoch, meta.epoch);
      assert.deepEqual(ck.optimizerWeights, []);
      ("decoder" in ck ? ck.decoder : ck.model).dispose();
    });
  }

  it("caption IMAGE uses the shipped captioner: the caption its card gives for a Flickr8k dev photo", function () {
    const dir = shippedEnsemble(SHIPPED.captioner)?.[0];
    if (!dir || !SHARED_FLICKR) this.skip();
    const card = fs.readFileSync(path.join(dir!, "MODEL.md"), "utf8");
    const m = /`bin\/attend-tell caption data\/flickr8k\/Images\/(\S+\.jpg)` prints `([^`]+)`/.exec(card);
    assert.ok(m, "MODEL.md gives an example caption");
    const r = spawnSync(
      path.join(root, "bin", "attend-tell"),
      ["caption", imagePath(resolveLayout(SHARED_FLICKR!), m![1])],
      {
        encoding: "utf8",
      },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim().split(": ").slice(1).join(": "), m![2]);
  });

  it("retrieve --image --captions uses the shipped SCAN model(s): a Flickr8k dev photo's own captions outrank another's", async function () {
    if (!shippedEnsemble(SHIPPED.scan) || !SHARED_FLICKR) this.skip();
    const byImage = new Map<string, string[]>();
    for (const r of readCaptions(resolveLayout(SHARED_FLICKR!).captionsFile))
      byImage.set(r.image, [...(byImage.get(r.image) ?? []), r.caption]);
    const [mine, other] = ["3695064885_a6922f06b2.jpg", "1000268201_693b08cb0e.jpg"];
    const captions = [...byImage.get(mine)!, ...byImage.get(other)!];
    const file = path.join(tmpDir(), "captions.txt");
    fs.writeFileSync(file, captions.join("\n"));
    const r = spawnSync(
      path.join(root, "bin", "attend-tell"),
      ["retrieve", "--image", path.join(SHARED_FLICKR!, "Images224", mine), "--captions", file, "--k", "10", "--json"],
      { encoding: "utf8" },
    );
    assert.equal(r.status, 0, r.stderr);
    const ranked = JSON.parse(r.stdout.trim().split("\n").pop()!) as { caption: string; score: number }[];
    assert.equal(ranked.length, 10);
    const own = new Set(byImage.get(mine)!.map((c) => c.trim()));
    assert.ok(own.has(ranked[0].caption) && own.has(ranked[1].caption), JSON.stringify(ranked.slice(0, 3)));
  });
});
