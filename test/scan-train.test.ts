import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { kendallTauB, spearman } from "../lib/matching";
import { FlickrDataset } from "../lib/data";
import { Vocabulary } from "../lib/data";
import { FeatureCache } from "../lib/encoder";
import { FeatureCaptionDataset } from "../lib/encoder";
import { defaultScanConfig } from "../lib/matching";
import {
  MatchingConfig,
  captionLengths,
  defaultMatchingConfig,
  evaluateMatching,
  humanAgreement,
  loadMatchingCheckpoint,
  lrAt,
  trainMatching,
} from "../lib/matching";
import { bankCaptions, captionsForPicture, hubOffsets, retrievalRecall } from "../lib/matching";
import { Rng } from "../lib/util";
import { EncoderCNN } from "../lib/encoder";
import { captureLog, setupBackend, syntheticFeatureData, tmpDir } from "./helpers";
import { main } from "../lib/cli";

describe("training SCAN on cached features", function () {
  this.timeout(600_000);
  let dir: string, cacheDir: string;
  let vocab: Vocabulary;
  let trainSet: FeatureCaptionDataset, valSet: FeatureCaptionDataset;
  let cfg: MatchingConfig;
  const quiet = { quiet: true, log: () => {} };

  before(async () => {
    await setupBackend();
    ({ dir, cacheDir, vocab, trainSet, valSet } = await syntheticFeatureData(60, 5));
    cfg = {
      ...defaultMatchingConfig({ ...defaultScanConfig(vocab.size), embedSize: 16, jointDim: 32 }),
      epochs: 2,
      batchSize: 16,
      lr: 2e-3,
    };
  });

  it("reads caption lengths up to the first <PAD>", () => {
    assert.deepEqual(captionLengths([1, 5, 2, 0, 1, 2, 0, 0], 2, 4), [3, 2]);
  });

  it("lowers the loss, resumes to the same numbers, and evaluates retrieval both ways", async () => {
    const a = path.join(tmpDir(), "a");
    const full = await trainMatching({ train: trainSet, val: valSet, vocab, config: cfg, out: a, ...quiet });
    const e = full.history.epoch;
    assert.equal(e.length, 2);
    assert.ok(e[1].trainLoss < e[0].trainLoss, JSON.stringify(e));
    full.model.dispose();

    const b = path.join(tmpDir(), "b");
    (await trainMatching({ train: trainSet, vocab, config: { ...cfg, epochs: 1 }, out: b, ...quiet })).model.dispose();
    const resumed = await trainMatching({ train: trainSet, vocab, config: cfg, out: b, resume: true, ...quiet });
    resumed.model.dispose();
    // The same numbers, bit for bit: the optimiser's state (β^t included) is restored exactly.
    assert.equal(resumed.history.batch.length, full.history.batch.length);
    resumed.history.batch.forEach((r, i) =>
      assert.equal(
        r.loss,
        full.history.batch[i].loss,
        `batch ${i}: resumed ${r.loss} vs ${full.history.batch[i].loss}`,
      ),
    );
    const [wa, wb] = [await loadMatchingCheckpoint(a), await loadMatchingCheckpoint(b)];
    for (const [name, v] of Object.entries(wa.model.namedVariables()))
      assert.deepEqual(await wb.model.namedVariables()[name].data(), await v.data(), `weight ${name}`);
    wa.model.dispose();
    wb.model.dispose();

    const ck = await loadMatchingCheckpoint(a);
    assert.equal(ck.epoch, 2);
    const r = await evaluateMatching({
      model: ck.model,
      vocab: ck.vocab,
      dataDir: dir,
      split: "dev",
      featuresDir: cacheDir,
      quiet: true,
    });
    assert.equal(r.n_images, 6);
    assert.equal(r.n_captions, 30);
    for (const x of [r.i2t, r.t2i]) assert.ok(x.r1 <= x.r5 && x.r5 <= x.r10 && x.medr >= 1, JSON.stringify(x));
    assert.equal(r.t2i.r10, 100, "6 images: every caption's image is within the top 10");
    assert.ok(Math.abs(r.rsum - (r.i2t.r1 + r.i2t.r5 + r.i2t.r10 + r.t2i.r1 + r.t2i.r5 + r.t2i.r10)) < 1e-9);

    // Agreement with human judgements: dev images with their own first caption (judged 4) and another
    // image's (judged 1), one judged image not on disk, one caption id beyond the image's captions.
    const dev = new FlickrDataset({ dataDir: dir, split: "dev", vocab });
    const ims = dev.images.slice(0, 4);
    const lines = ims.flatMap((im, i) => [`${im}\t${im}#0\t4\t4\t3`, `${im}\t${ims[(i + 1) % 4]}#2\t1\t1\t2`]);
    fs.writeFileSync(
      path.join(dir, "ExpertAnnotations.txt"),
      [...lines, `gone.jpg\t${ims[0]}#1\t2\t2\t2`, `${ims[0]}\t${ims[1]}#9\t3\t3\t3`].join("\n") + "\n",
    );
    const h = await humanAgreement({ model: ck.model, vocab: ck.vocab, dataDir: dir, featuresDir: cacheDir });
    assert.equal(h.pairs, 8);
    assert.equal(h.missingImage, 1);
    assert.equal(h.missingCaption, 1);
    // the same correlation from the tfjs model's scores of those pairs, computed here one by one
    const cache = FeatureCache.open(cacheDir);
    const scores: number[] = [];
    for (const [i, line] of lines.entries()) {
      const capImage = line.split("\t")[1].split("#")[0];
      const caption = ck.vocab.encode(dev.captionsOf(capImage)[i % 2 === 0 ? 0 : 2]);
      const s = tf.tidy(() =>
        ck.model.similarity(
          ck.model.encodeImages(tf.tensor3d(cache.read([ims[Math.floor(i / 2)]]), [1, 49, 2048])),
          ck.model.encodeCaptions(tf.tensor2d(caption, [1, caption.length], "int32"), [caption.length]),
          [caption.length],
        ),
      );
      scores.push(s.dataSync()[0]);
      s.dispose();
    }
    cache.close();
    const human = lines.map(
      (l) =>
        l
          .split("\t")
          .slice(2)
          .map(Number)
          .reduce((a, b) => a + b) / 3,
    );
    assert.ok(
      Math.abs(h.kendallTau! - kendallTauB(scores, human)) < 1e-9,
      `${h.kendallTau} vs ${kendallTauB(scores, human)}`,
    );
    assert.ok(Math.abs(h.spearman! - spearman(scores, human)) < 1e-9);

    // An ensemble's recall is that of the two models' mean score matrix (here a and the resumed b).
    const other = await loadMatchingCheckpoint(b);
    const ensembleProtocol = {
      model: ck.model,
      vocab: ck.vocab,
      ensemble: [other],
      dataDir: dir,
      split: "dev" as const,
      featuresDir: cacheDir,
      quiet: true,
    };
    const both = await evaluateMatching(ensembleProtocol);
    // captions as padded ids and their lengths; images' features; the two models' mean scores of them
    const padded = (texts: readonly string[]) => {
      const enc = texts.map((c) => ck.vocab.encode(c));
      const T = Math.max(...enc.map((c) => c.length));
      const ids = tf.tensor2d(
        enc.flatMap((c) => [...c, ...Array(T - c.length).fill(0)]),
        [enc.length, T],
        "int32",
      );
      return { ids, lens: enc.map((c) => c.length) };
    };
    const featuresOf = (names: readonly string[]) => {
      const feats = FeatureCache.open(cacheDir);
      const x = tf.tensor3d(feats.read(names), [names.length, 49, 2048]);
      feats.close();
      return x;
    };
    const meanOf = (x: tf.Tensor3D, capIds: tf.Tensor2D, capLens: number[]) =>
      tf.tidy(() =>
        [ck.model, other.model]
          .map((m) => m.similarity(m.encodeImages(x), m.encodeCaptions(capIds, capLens), capLens))
          .reduce((p, q) => p.add(q))
          .div(2),
      );
    const capTexts = dev.images.flatMap((im) => dev.captionsOf(im));
    const { ids, lens } = padded(capTexts);
    const f = featuresOf(dev.images);
    const mean = meanOf(f, ids, lens);
    const want = retrievalRecall(
      mean.dataSync() as Float32Array,
      dev.images.length,
      dev.images.flatMap((im, i) => dev.captionsOf(im).map(() => i)),
    );
    assert.deepEqual({ i2t: both.i2t, t2i: both.t2i }, { i2t: want.i2t, t2i: want.t2i });

    // With a query bank (QB-Norm): five train images (seed 1's order) and their 25 captions as queries; image → text
    // ranks the mean scores less each caption's offset over the bank's images, text → image less each image's over
    // the bank's captions.
    const banked = await evaluateMatching({ ...ensembleProtocol, querybank: { images: 5, beta: 20 } });
    const train = new FlickrDataset({ dataDir: dir, split: "train", vocab });
    const bankImages = new Rng(1).shuffle([...train.images]).slice(0, 5);
    const bankTexts = bankImages.flatMap((im) => train.captionsOf(im));
    const { ids: bankIds, lens: bankLens } = padded(bankTexts);
    const fBank = featuresOf(bankImages);
    const [bankRows, bankCols] = [meanOf(fBank, ids, lens), meanOf(f, bankIds, bankLens)];
    const [C, S] = [capTexts.length, mean.dataSync() as Float32Array];
    const perCaption = hubOffsets(bankRows.dataSync() as Float32Array, 5, C, 1, 20);
    const perImage = hubOffsets(bankCols.dataSync() as Float32Array, dev.images.length, bankTexts.length, 0, 20);
    const owner = dev.images.flatMap((im, i) => dev.captionsOf(im).map(() => i));
    assert.deepEqual(banked.querybank, { images: 5, captions: 25, beta: 20 });
    assert.notDeepEqual(banked.i2t, both.i2t, "the bank changes the ranking here");
    assert.deepEqual(
      banked.i2t,
      retrievalRecall(
        S.map((v, k) => v - perCaption[k % C]),
        dev.images.length,
        owner,
      ).i2t,
    );
    assert.deepEqual(
      banked.t2i,
      retrievalRecall(
        S.map((v, k) => v - perImage[Math.floor(k / C)]),
        dev.images.length,
        owner,
      ).t2i,
    );
    tf.dispose([bankIds, fBank, bankRows, bankCols]);
    tf.dispose([ids, f, mean]);
    other.model.dispose();
    ck.model.dispose();
  });

  it("divides the learning rate by 10 every lrUpdate epochs, also when the schedule is set on resume", async () => {
    assert.deepEqual(
      [0, 14, 15, 29, 30].map((e) => lrAt({ ...cfg, lr: 2e-4, lrUpdate: 15 }, e)),
      [2e-4, 2e-4, 2e-4 * 0.1, 2e-4 * 0.1, 2e-4 * 0.1 ** 2],
    );
    assert.equal(lrAt({ ...cfg, lrUpdate: undefined }, 40), cfg.lr);
    const constant = await trainMatching({
      train: trainSet,
      vocab,
      config: cfg,
      out: path.join(tmpDir(), "c"),
      ...quiet,
    });
    const decayed = await trainMatching({
      train: trainSet,
      vocab,
      config: { ...cfg, lrUpdate: 1 },
      out: path.join(tmpDir(), "d"),
      ...quiet,
    });
    const e = path.join(tmpDir(), "e");
    (await trainMatching({ train: trainSet, vocab, config: { ...cfg, epochs: 1 }, out: e, ...quiet })).model.dispose();
    const resumed = await trainMatching({
      train: trainSet,
      vocab,
      config: { ...cfg, lrUpdate: 1 },
      out: e,
      resume: true,
      ...quiet,
    });
    const second = (h: typeof constant.history) => h.batch.filter((r) => r.epoch === 1).map((r) => r.loss);
    // epoch 2 at lr/10: unlike the constant run's, and the same whether the schedule was there from the start or
    // set on resume (tolerance: the Adam-restore rounding of the resume test above)
    assert.ok(
      second(decayed.history).some((l, i) => Math.abs(l - second(constant.history)[i]) > 1e-2),
      "the lower lr changes epoch 2",
    );
    second(resumed.history).forEach((l, i) =>
      assert.ok(Math.abs(l - second(decayed.history)[i]) <= 1e-3, `batch ${i}: ${l} vs ${second(decayed.history)[i]}`),
    );
    for (const r of [constant, decayed, resumed]) r.model.dispose();
  });

  it("retrieve ranks any folder of photos (--images DIR) for a query, caching their features beside the data", async () => {
    const out = path.join(tmpDir(), "scan");
    const r = await trainMatching({
      train: trainSet,
      val: valSet,
      vocab,
      config: { ...cfg, epochs: 1 },
      out,
      ...quiet,
    });
    r.model.dispose();
    const photos = path.join(tmpDir(), "my-photos");
    fs.mkdirSync(photos);
    const devImages = new FlickrDataset({ dataDir: dir, split: "dev", vocab }).images.slice(0, 4);
    for (const im of devImages) fs.copyFileSync(path.join(dir, "Images", im), path.join(photos, im));
    fs.writeFileSync(path.join(photos, "notes.txt"), "not a photo");
    const lines = await captureLog(async () => {
      await main([
        "retrieve",
        "--checkpoint",
        out,
        "--images",
        photos,
        "--features",
        path.join(photos, "..", "features"),
        "--k",
        "3",
        "--json",
        "a red circle",
      ]);
    });
    const ranked = JSON.parse(lines.pop()!) as { image: string; score: number }[];
    assert.equal(ranked.length, 3);
    assert.ok(
      ranked.every((x) => devImages.map((im) => path.join(photos, im)).includes(x.image)),
      JSON.stringify(ranked),
    );
    assert.ok(ranked[0].score >= ranked[1].score && ranked[1].score >= ranked[2].score);
    await assert.rejects(
      main([
        "retrieve",
        "--checkpoint",
        out,
        "--images",
        photos,
        "zebra xylophone",
        "--features",
        path.join(photos, "..", "f"),
      ]),
      /no word of the query/,
    );
    await assert.rejects(
      main(["retrieve", "--checkpoint", out, "--images", path.join(photos, "none"), "a circle"]),
      /is not a folder/,
    );
    await assert.rejects(main(["retrieve", "--checkpoint", out, "a circle"]), /needs --data-dir DIR or --images DIR/);
    // A photo that cannot be decoded: named, with the flag that skips it
    fs.writeFileSync(path.join(photos, "broken.jpg"), "not a jpeg");
    const features = path.join(photos, "..", "features");
    const args = [
      "retrieve",
      "--checkpoint",
      out,
      "--images",
      photos,
      "--features",
      features,
      "--json",
      "a red circle",
    ];
    await assert.rejects(main(args), /cannot decode image .*broken\.jpg.*pass --skip-bad/);
    lines.push(...(await captureLog(() => main([...args, "--skip-bad"]))));
    assert.equal((JSON.parse(lines.pop()!) as unknown[]).length, 4);
  });

  it("retrieve averages several checkpoints' scores, and ranks your own captions for a picture (--image --captions)", async () => {
    const outs = [path.join(tmpDir(), "s1"), path.join(tmpDir(), "s2")];
    for (const [i, out] of outs.entries()) {
      const config = { ...cfg, epochs: 1, seed: i + 1 };
      (await trainMatching({ train: trainSet, vocab, config, out, ...quiet })).model.dispose();
    }
    const photos = path.join(tmpDir(), "photos");
    fs.mkdirSync(photos);
    const devImages = new FlickrDataset({ dataDir: dir, split: "dev", vocab }).images.slice(0, 4);
    for (const im of devImages) fs.copyFileSync(path.join(dir, "Images", im), path.join(photos, im));
    const features = path.join(photos, "..", "features");
    const rank = async (checkpoints: string[]) => {
      const args = ["retrieve", ...checkpoints.flatMap((c) => ["--checkpoint", c]), "--images", photos];
      const lines = await captureLog(() =>
        main([...args, "--features", features, "--k", "4", "--json", "a red circle"]),
      );
      const ranked = JSON.parse(lines.pop()!) as { image: string; score: number }[];
      return new Map(ranked.map((r) => [r.image, r.score]));
    };
    const [one, two, both] = [await rank([outs[0]]), await rank([outs[1]]), await rank(outs)];
    assert.equal(both.size, 4);
    for (const [image, score] of both) {
      const mean = (one.get(image)! + two.get(image)!) / 2;
      assert.ok(Math.abs(score - mean) < 1e-5, `${image}: ensemble ${score}, mean of the two ${mean}`);
    }
    assert.ok(
      Math.abs(one.get(path.join(photos, devImages[0]))! - two.get(path.join(photos, devImages[0]))!) > 1e-4,
      "two seeds, two different scores",
    );

    // A picture against captions of one's own: every caption ranked, best first, as retrieveCaptions ranks them
    const captionsFile = path.join(photos, "..", "captions.txt");
    const mine = ["a red circle", "", "  a blue square and a green triangle  ", "two yellow diamonds"];
    fs.writeFileSync(captionsFile, mine.join("\n") + "\n");
    const picture = path.join(photos, devImages[0]);
    const args = ["retrieve", "--checkpoint", outs[0], "--image", picture, "--captions", captionsFile, "--k", "9"];
    const lines = await captureLog(() => main([...args, "--json"]));
    const ranked = JSON.parse(lines.pop()!) as { caption: string; score: number }[];
    assert.deepEqual(ranked.map((r) => r.caption).sort(), [mine[0], mine[2].trim(), mine[3]].sort());
    assert.ok(ranked[0].score >= ranked[1].score && ranked[1].score >= ranked[2].score);
    const ck = await loadMatchingCheckpoint(outs[0]);
    const encoder = await EncoderCNN.load();
    const byLib = await captionsForPicture({
      model: ck.model,
      vocab: ck.vocab,
      file: picture,
      captions: ranked.map((r) => r.caption),
      k: 9,
      encoder,
    });
    encoder.dispose();
    ck.model.dispose();
    byLib.forEach((r, i) => assert.ok(Math.abs(r.score - ranked[i].score) < 1e-5 && r.caption === ranked[i].caption));

    fs.writeFileSync(captionsFile, "\n \n");
    await assert.rejects(main(args), /--captions .*captions\.txt holds no captions/);
    await assert.rejects(
      main(["retrieve", "--checkpoint", outs[0], "--image", picture]),
      /--image ranks captions: give --data-dir DIR .* or --captions FILE/,
    );
    await assert.rejects(
      main(["retrieve", "--checkpoint", outs[0], "--images", photos, "--captions", captionsFile, "a circle"]),
      /--captions FILE ranks captions for a picture: give --image FILE too/,
    );
  });

  it("retrieve --querybank N: each photo's score less its offset over N train images' captions (QB-Norm)", async () => {
    const out = path.join(tmpDir(), "qb");
    (await trainMatching({ train: trainSet, vocab, config: { ...cfg, epochs: 1 }, out, ...quiet })).model.dispose();
    const photos = path.join(tmpDir(), "qb-photos");
    fs.mkdirSync(photos);
    const devImages = new FlickrDataset({ dataDir: dir, split: "dev", vocab }).images.slice(0, 4);
    for (const im of devImages) fs.copyFileSync(path.join(dir, "Images", im), path.join(photos, im));
    const base = ["retrieve", "--checkpoint", out, "--images", photos, "--features", path.join(tmpDir(), "qb-f")];
    const rank = async (extra: string[]) => {
      const lines = await captureLog(() => main([...base, ...extra, "--k", "4", "--json", "a red circle"]));
      return JSON.parse(lines.pop()!) as { image: string; score: number }[];
    };
    const raw = new Map((await rank([])).map((r) => [r.image, r.score]));
    const beta = 5;
    const banked = await rank(["--querybank", "3", "--querybank-beta", String(beta), "--data-dir", dir]);
    // the bank: the captions of 3 train images, as bankCaptions chooses them
    const bank = bankCaptions(dir, 3);
    const train = new FlickrDataset({ dataDir: dir, split: "train", vocab });
    assert.equal(bank.length, 15);
    assert.ok(bank.every((c) => train.images.some((im) => train.captionsOf(im).includes(c))));
    // each photo's offset from the bank captions' own scores for it (image → text, another path), then s − offset
    const ck = await loadMatchingCheckpoint(out);
    const encoder = await EncoderCNN.load();
    assert.equal(banked.length, 4);
    for (const r of banked) {
      const s = await captionsForPicture({
        model: ck.model,
        vocab: ck.vocab,
        file: r.image,
        captions: bank,
        k: 99,
        encoder,
      });
      const max = Math.max(...s.map((x) => x.score));
      const offset = max + Math.log(s.reduce((a, x) => a + Math.exp(beta * (x.score - max)), 0)) / beta;
      assert.ok(
        Math.abs(r.score - (raw.get(r.image)! - offset)) < 1e-4,
        `${r.image}: ${r.score} vs ${raw.get(r.image)! - offset}`,
      );
    }
    encoder.dispose();
    ck.model.dispose();
    assert.ok(
      banked.every((r, i) => i === 0 || banked[i - 1].score >= r.score),
      "best first after normalising",
    );
    await assert.rejects(
      main([...base, "--querybank", "3", "a circle"]),
      /--querybank N takes its bank of train captions from --data-dir DIR/,
    );
    await assert.rejects(
      main([...base, "--querybank", "999", "--data-dir", dir, "a circle"]),
      /a query bank of 999 train images, but .* has \d+ \(--querybank\)/,
    );
  });
});
