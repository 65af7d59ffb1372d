import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { main } from "../lib/cli";
import { loadCheckpoint } from "../lib/captioning";
import { FeatureCache } from "../lib/encoder";
import { captureLog, setupBackend, tinyFlickr, tmpDir } from "./helpers";

describe("conv4's features end to end: train --grid 14 / --layer conv4, evaluate, caption", function () {
  this.timeout(600_000);

  for (const { flags, map, grid } of [
    { flags: ["--grid", "14"], map: "conv4", grid: 14 },
    { flags: ["--grid", "7", "--layer", "conv4"], map: "conv4-pooled", grid: 7 },
  ])
    it(`${flags.join(" ")}: trains on ${grid * grid} regions of 1,024 (${map}), evaluates on them, and captions a photo with ${grid * grid}-region attention`, async () => {
      await setupBackend();
      const data = await tinyFlickr();
      const dir = tmpDir();
      const [out, features] = [path.join(dir, "run"), path.join(dir, `features-${map}`)];
      const small = [
        "--embed",
        "16",
        "--attention",
        "16",
        "--decoder",
        "32",
        "--batch-size",
        "2",
        "--epochs",
        "4",
        "--lr",
        "0.01",
      ];
      await captureLog(() =>
        main(["train", "--data-dir", data, "--out", out, "--features", features, ...flags, ...small]),
      );
      const cache = FeatureCache.open(features);
      assert.deepEqual([cache.map, cache.grid, cache.size], [map, grid, 3]);
      cache.close();
      const checkpoint = path.join(out, "checkpoint");
      const ck = await loadCheckpoint(checkpoint);
      assert.deepEqual([ck.decoder.config.encoderDim, ck.decoder.config.featureMap], [1024, map]);
      ck.decoder.dispose();

      const args = ["evaluate", "--checkpoint", checkpoint, "--data-dir", data, "--split", "dev", "--beam", "1"];
      const [report] = await captureLog(() => main([...args, "--features", features, "--json"]));
      assert.equal(JSON.parse(report).n_images, 1);
      // an ensemble of the checkpoint with itself scores as the checkpoint; its captions need a folder of their own
      const twice = [...args, "--checkpoint", checkpoint, "--features", features, "--json"];
      await assert.rejects(main(twice), /evaluate of an ensemble needs --out DIR/);
      const [ensemble] = await captureLog(() => main([...twice, "--out", path.join(dir, "ensemble")]));
      assert.deepEqual(JSON.parse(ensemble).beam, {
        1: { ...JSON.parse(report).beam[1], seconds: JSON.parse(ensemble).beam[1].seconds },
      });
      // consensus decoding: beam 3's captions chosen by CIDEr-D agreement, in files of their own
      const consensus = path.join(dir, "consensus");
      const [mbr] = await captureLog(() =>
        main([...args.slice(0, -1), "3", "--consensus", "--features", features, "--out", consensus, "--json"]),
      );
      assert.equal(JSON.parse(mbr).consensus, true);
      for (const f of ["captions-dev-beam3-consensus.json", "metrics-dev-consensus.json"])
        assert.ok(fs.existsSync(path.join(consensus, f)), f);
      // the seed's conv5 cache is refused by name, not read as the wrong features
      const seven = path.join(dir, "features-7");
      await captureLog(() => main(["features", "--data-dir", data, "--split", "dev", "--out", seven]));
      await assert.rejects(main([...args, "--features", seven]), /another encoder or preprocessing.*activation_48/);

      const photo = path.join(data, "Images", "c.png");
      const [json] = await captureLog(() => main(["caption", "--checkpoint", checkpoint, "--json", photo]));
      const r = JSON.parse(json);
      assert.ok(r.attention.length > 0, `a caption of words: "${r.caption}"`);
      for (const a of r.attention) assert.equal(a.length, grid * grid);
      const [both] = await captureLog(() =>
        main(["caption", "--checkpoint", checkpoint, "--checkpoint", checkpoint, "--json", photo]),
      );
      assert.equal(JSON.parse(both).caption, r.caption);
      await assert.rejects(
        main(["caption", "--checkpoint", checkpoint, "--consensus", photo]),
        /^Error: caption --consensus needs --data-dir DIR: .* \(no checkpoint given stores them in consensus\.json\)$/,
      );
      const [agreed] = await captureLog(() =>
        main([
          "caption",
          "--checkpoint",
          checkpoint,
          "--consensus",
          "--data-dir",
          data,
          "--beam",
          "4",
          "--json",
          photo,
        ]),
      );
      assert.equal(JSON.parse(agreed).attention.length, JSON.parse(agreed).words.length);
      // the document frequencies stored with an export stand in for --data-dir, verified like its weights
      const exported = path.join(dir, "exported");
      await captureLog(() => main(["export", "--checkpoint", checkpoint, "--out", exported]));
      fs.writeFileSync(path.join(exported, "MODEL.md"), "# a card written by hand\n");
      const again = ["export", "--checkpoint", checkpoint, "--out", exported, "--consensus-data", data];
      await assert.rejects(main(again), /already holds a checkpoint: add --overwrite/);
      await captureLog(() => main([...again, "--overwrite"]));
      assert.equal(fs.readFileSync(path.join(exported, "MODEL.md"), "utf8"), "# a card written by hand\n");
      const meta = JSON.parse(fs.readFileSync(path.join(exported, "checkpoint.json"), "utf8"));
      assert.ok(meta.files["consensus.json"]);
      const [alone] = await captureLog(() =>
        main(["caption", "--checkpoint", exported, "--consensus", "--beam", "4", "--json", photo]),
      );
      const [withData] = await captureLog(() =>
        main(["caption", "--checkpoint", exported, "--consensus", "--data-dir", data, "--beam", "4", "--json", photo]),
      );
      assert.equal(JSON.parse(alone).caption, JSON.parse(withData).caption);
      fs.appendFileSync(path.join(exported, "consensus.json"), " ");
      await assert.rejects(
        main(["caption", "--checkpoint", exported, "--consensus", photo]),
        /checkpoint file .*consensus\.json is damaged/,
      );
    });
});
