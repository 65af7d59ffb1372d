import { strict as assert } from "node:assert";
import "@tensorflow/tfjs-backend-webgpu"; // registers its kernels (no device needed)
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { generateSynthetic } from "../lib/data";
import { FlickrDataset, trainCaptions } from "../lib/data";
import { buildVocabulary } from "../lib/data";
import { imageFiles } from "../lib/data";
import { extractFeatures, FeatureCache } from "../lib/encoder";
import { defaultTrainConfig, train } from "../lib/captioning";
import { FeatureCaptionDataset } from "../lib/encoder";
import { captionImages } from "../lib/captioning";
import { defaultScanConfig } from "../lib/matching";
import { defaultMatchingConfig, trainMatching } from "../lib/matching";
import { encodeForRetrieval, retrievalRecall, scoreMatrix } from "../lib/matching";
import { REGIONS } from "../lib/encoder";
import { padCaptions } from "../lib/data";
import { setupBackend, tmpDir } from "./helpers";

/**
 * What a GPU runs — tfjs in this process, the tfjs training engines — run here on the CPU backend under two
 * checks that would otherwise only fail on a GPU host:
 * - tfjs's WebGPU backend cannot read a tensor synchronously in Node (no OffscreenCanvas): `dataSync`, `arraySync`
 *   and `bufferSync` are made to throw, so a synchronous read anywhere on the way (ours or inside a tfjs op we
 *   call) fails here;
 * - tfjs does not fall back to another backend for a kernel the active one lacks: every kernel these paths run
 *   (collected with tf.profile) must be registered for WebGPU (importing its backend registers them, no device
 *   needed).
 */
const SYNC_READS = ["dataSync", "arraySync", "bufferSync"] as const;
const used = new Set<string>();

/** Runs f with synchronous reads made to throw, adding the kernels it ran to `used`. */
async function asOnGpu<T>(f: () => Promise<T>): Promise<T> {
  const proto = tf.Tensor.prototype as unknown as Record<string, unknown>;
  const saved = SYNC_READS.map((m) => proto[m]);
  for (const m of SYNC_READS) {
    proto[m] = function () {
      throw new Error(`synchronous read (${m}) on a GPU code path`);
    };
  }
  try {
    let result: T | undefined;
    const info = await tf.profile(async () => {
      result = await f();
      return [];
    });
    info.kernelNames.forEach((k) => used.add(k));
    return result as T;
  } finally {
    SYNC_READS.forEach((m, i) => (proto[m] = saved[i]));
  }
}

describe("GPU code paths: asynchronous reads only, WebGPU kernels only", function () {
  this.timeout(600_000);
  let dir: string, cacheDir: string;
  let trainSet: FeatureCaptionDataset, valSet: FeatureCaptionDataset;
  let vocab: ReturnType<typeof buildVocabulary>;

  before(async () => {
    await setupBackend();
    dir = path.join(tmpDir(), "synthetic");
    await generateSynthetic(dir, { n: 40, seed: 11 });
    vocab = buildVocabulary(trainCaptions(dir), 1);
    cacheDir = path.join(dir, "..", "features");
  });

  it("the guard catches a synchronous read", async () => {
    await assert.rejects(
      asOnGpu(async () => tf.scalar(1).dataSync()),
      /synchronous read \(dataSync\)/,
    );
    assert.equal(tf.scalar(2).dataSync()[0], 2, "and is lifted afterwards");
  });

  it("featurises images in this process (the encoder on the active backend)", async () => {
    const r = await asOnGpu(() =>
      extractFeatures({ files: imageFiles(dir, "all").files, out: cacheDir, workers: 0, batchSize: 16, quiet: true }),
    );
    assert.equal(r.computed, 40);
    const cache = FeatureCache.open(cacheDir);
    trainSet = new FeatureCaptionDataset(new FlickrDataset({ dataDir: dir, split: "train", vocab }), cache);
    valSet = new FeatureCaptionDataset(new FlickrDataset({ dataDir: dir, split: "dev", vocab }), cache);
  });

  it("trains the captioning decoder on the tfjs step engine (as on a GPU), checkpoints it and captions greedy and by beam", async () => {
    const config = {
      ...defaultTrainConfig({
        vocabSize: vocab.size,
        embedSize: 16,
        attentionDim: 16,
        encoderDim: 2048,
        decoderDim: 32,
        dropout: 0.3,
      }),
      epochs: 1,
      batchSize: 16,
      printEvery: 1000,
    };
    const out = path.join(tmpDir(), "caption");
    const { decoder, history } = await asOnGpu(() =>
      train({
        train: trainSet,
        val: valSet,
        vocab,
        config,
        out,
        engine: "tfjs",
        quiet: true,
        log: () => {},
      }),
    );
    assert.ok(Number.isFinite(history.epoch[0].valLoss));
    const images = valSet.dataset.images;
    const cache = FeatureCache.open(cacheDir);
    const [greedy, beam] = await asOnGpu(async () => [
      await captionImages(decoder, cache, images, 1, { maxLen: 6 }),
      await captionImages(decoder, cache, images, 3, { maxLen: 6 }),
    ]);
    assert.deepEqual([greedy.length, beam.length], [images.length, images.length]);
    assert.ok(beam.every((g) => g.alphas.length === g.ids.length));
    cache.close();
    decoder.dispose();
  });

  it("trains SCAN on tfjs through the warm-up's k hardest negatives and scores retrieval on tfjs", async () => {
    const config = {
      ...defaultMatchingConfig({ ...defaultScanConfig(vocab.size), embedSize: 16, jointDim: 16 }),
      epochs: 2,
      batchSize: 16,
      warmupEpochs: 1,
      warmupNegatives: 4,
    };
    const out = path.join(tmpDir(), "scan");
    const { model, history } = await asOnGpu(() =>
      trainMatching({ train: trainSet, val: valSet, vocab, config, out, engine: "tfjs", quiet: true, log: () => {} }),
    );
    assert.equal(history.epoch.length, 2);
    assert.ok(history.epoch.every((e) => Number.isFinite(e.trainLoss)));
    const ds = valSet.dataset;
    const texts = ds.images.flatMap((im) => ds.captionsOf(im));
    const captionImage = ds.images.flatMap((im, i) => ds.captionsOf(im).map(() => i));
    const caps = texts.map((c) => vocab.encode(c));
    const { ids, maxLen } = padCaptions(caps);
    const lengths = caps.map((c) => c.length);
    const cache = FeatureCache.open(cacheDir);
    const scores = await asOnGpu(async () => {
      const enc = await encodeForRetrieval(
        model,
        (names) => cache.read(names),
        REGIONS,
        ds.images,
        ids,
        lengths,
        maxLen,
        "tfjs",
      );
      return scoreMatrix(model.config, enc.images, ds.images.length, enc.captions, lengths, maxLen, { engine: "tfjs" });
    });
    assert.equal(scores.length, ds.images.length * texts.length);
    const r = retrievalRecall(scores, ds.images.length, captionImage);
    assert.ok(Number.isFinite(r.rsum));
    cache.close();
    model.dispose();
  });

  it("ran only kernels that WebGPU has", () => {
    // names that are no kernel on this backend either are custom-gradient ops (lib/captioning/bptt.ts' fused recurrence)
    const kernels = [...used].filter((k) => tf.getKernel(k, tf.getBackend()));
    for (const k of ["FusedConv2D", "BatchMatMul", "TopK", "UnsortedSegmentSum", "GatherV2", "Softmax"])
      assert.ok(kernels.includes(k), `${k} ran: ${kernels.join(" ")}`);
    assert.deepEqual(
      kernels.filter((k) => !tf.getKernel(k, "webgpu")),
      [],
      "kernels without a WebGPU implementation",
    );
  });
});
