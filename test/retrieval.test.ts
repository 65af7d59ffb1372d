import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import {
  encodeForRetrieval,
  hubOffsets,
  lengthOrderedChunks,
  retrievalRecall,
  scoreAll,
  scoreMatrix,
} from "../lib/matching";
import { loadOrt } from "../lib/engine";
import { ScanModel, crossAttentionScores, l2norm } from "../lib/matching";
import { deterministicWeights as det, setupBackend } from "./helpers";

describe("retrieval protocol (Recall@K, median rank)", () => {
  before(setupBackend);

  it("ranks by hand: best caption of each image, the image of each caption", () => {
    // 2 images, 4 captions (0, 1 → image 0; 2, 3 → image 1)
    const scores = [
      0.1,
      0.9,
      0.8,
      0.2, // image 0: its caption 1 ranks first → rank 0
      0.7,
      0.6,
      0.5,
      0.4, // image 1: best own caption (2: 0.5) has 2 captions above → rank 2
    ];
    const r = retrievalRecall(scores, 2, [0, 0, 1, 1]);
    assert.deepEqual(r.i2t, { r1: 50, r5: 100, r10: 100, medr: 2 }); // median of ranks [0, 2] = 1 → floor(1) + 1
    // captions: 0 → image 1 scores 0.7 > 0.1: rank 1; 1 → rank 0; 2 → 0.5 < 0.8: rank 1; 3 → 0.4 > 0.2: rank 0
    assert.deepEqual(r.t2i, { r1: 50, r5: 100, r10: 100, medr: 1 }); // median of [1, 0, 1, 0] = 0.5 → 1
    assert.equal(r.rsum, 50 + 100 + 100 + 50 + 100 + 100);
    assert.throws(() => retrievalRecall([1, 2], 2, [0, 0]), /2 scores for 2 images × 2 captions/);
    assert.throws(() => retrievalRecall([1, 2, 3, 4], 2, [0, 0]), /image 1 has no caption/);
  });

  it("query-bank normalisation: each gallery item's (1/β)·log Σ exp(β·s) over the bank, and a hub loses its lead", () => {
    // bank [[1, 0], [0, 0]]: per column (gallery = columns) log(e + 1) and log 2; per row the same by symmetry
    const bank = new Float32Array([1, 0, 0, 0]);
    const e1 = Math.log(Math.E + 1);
    for (const axis of [0, 1] as const) {
      const h = hubOffsets(bank, 2, 2, axis, 1);
      assert.ok(Math.abs(h[0] - e1) < 1e-6 && Math.abs(h[1] - Math.LN2) < 1e-6, `${h}`);
    }
    // β = 2 halves the log: (1/2)·log(e² + 1)
    assert.ok(Math.abs(hubOffsets(bank, 2, 2, 1, 2)[0] - Math.log(Math.E ** 2 + 1) / 2) < 1e-6);
    // large scores stay finite (log-sum-exp)
    assert.ok(Math.abs(hubOffsets(new Float32Array([500, 500]), 2, 1, 1, 20)[0] - (500 + Math.LN2 / 20)) < 1e-3);
    assert.throws(() => hubOffsets(bank, 3, 2, 1, 1), /hubOffsets: 4 scores for 3 × 2/);
    // two images, captions [hub, a's, b's]: the hub caption outscores b's own for image b; the bank (queries that
    // all like the hub) discounts it, and b's own caption comes first
    const scores = new Float32Array([0.9, 0.8, 0.1, 0.85, 0.1, 0.7]);
    const captionImage = [0, 0, 1]; // the hub is one of image a's captions
    assert.equal(retrievalRecall(scores, 2, captionImage).i2t.r1, 50);
    const h = hubOffsets(new Float32Array([0.9, 0.2, 0.2, 0.9, 0.3, 0.1]), 2, 3, 1, 20);
    const normalised = scores.map((v, k) => v - h[k % 3]);
    assert.equal(retrievalRecall(normalised, 2, captionImage).i2t.r1, 100);
  });

  it("scores in chunks exactly as in one piece", async () => {
    const images = l2norm(tf.randomNormal([3, 4, 5], 0, 1, "float32", 1)) as tf.Tensor3D;
    const caps = l2norm(tf.randomNormal([7, 3, 5], 0, 1, "float32", 2)) as tf.Tensor3D;
    const lengths = [3, 2, 3, 1, 3, 2, 3];
    const cfg = { direction: "t2i" as const, aggregation: "lse" as const, lambdaSoftmax: 9, lambdaLse: 6 };
    const whole = await crossAttentionScores(images, caps, lengths, cfg).data();
    const chunked = await scoreAll(images, caps, lengths, cfg, { chunk: 3 });
    assert.equal(chunked.length, 21);
    for (let i = 0; i < 21; i++) assert.ok(Math.abs(chunked[i] - whole[i]) < 1e-6, `score ${i}`);
  });

  it("cuts captions into chunks in order of length, each no larger than its longest caption allows", () => {
    const chunks = lengthOrderedChunks([5, 2, 9, 2, 5, 1], (T) => (T <= 2 ? 3 : 2));
    assert.deepEqual(chunks, [[5, 1, 3], [0, 4], [2]]);
  });

  for (const engine of ["onnx", "tfjs"] as const) {
    it(`encodes and scores a split in length-ordered chunks as the model does in one piece (${engine})`, async function () {
      if (engine === "onnx" && !loadOrt()) this.skip();
      const cfg = {
        vocabSize: 12,
        embedSize: 4,
        jointDim: 6,
        encoderDim: 5,
        direction: "t2i" as const,
        aggregation: "lse" as const,
        lambdaSoftmax: 9,
        lambdaLse: 6,
        margin: 0.2,
      };
      const model = new ScanModel(cfg, det);
      const [N, R, T] = [3, 4, 6];
      const feats = Float32Array.from({ length: N * R * 5 }, (_, i) => 0.5 + 0.5 * Math.sin(0.37 * i));
      const lengths = [6, 2, 4, 1, 6, 3, 2];
      const ids = lengths.flatMap((n, c) =>
        Array.from({ length: T }, (_, t) => (t < n ? 1 + ((c * 5 + t * 3) % 11) : 0)),
      );
      const enc = await encodeForRetrieval(
        model,
        (names) => feats.subarray(Number(names[0]) * R * 5, (Number(names[names.length - 1]) + 1) * R * 5),
        R,
        ["0", "1", "2"],
        ids,
        lengths,
        T,
        engine,
      );
      const imgs = model.encodeImages(tf.tensor3d(feats, [N, R, 5]));
      const caps = model.encodeCaptions(tf.tensor2d(ids, [lengths.length, T], "int32"), lengths);
      const close = (a: ArrayLike<number>, b: ArrayLike<number>, what: string) => {
        assert.equal(a.length, b.length, what);
        for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-5, `${what} ${i}: ${a[i]} vs ${b[i]}`);
      };
      close(enc.images, await imgs.data(), "region vectors");
      close(enc.captions, await caps.data(), "word vectors");
      const whole = await crossAttentionScores(imgs, caps, lengths, cfg).data();
      close(await scoreMatrix(cfg, enc.images, N, enc.captions, lengths, T, { chunk: 2, engine }), whole, "scores");
      model.dispose();
    });
  }
});
