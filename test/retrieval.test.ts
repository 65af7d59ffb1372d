import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { retrievalRecall, scoreAll } from "../lib/retrieval";
import { crossAttentionScores, l2norm } from "../lib/scan";
import { setupBackend } from "./helpers";

describe("retrieval protocol (Recall@K, median rank)", () => {
  before(setupBackend);

  it("ranks by hand: best caption of each image, the image of each caption", () => {
    // 2 images, 4 captions (0, 1 → image 0; 2, 3 → image 1)
    const scores = [
      0.1, 0.9, 0.8, 0.2, // image 0: its caption 1 ranks first → rank 0
      0.7, 0.6, 0.5, 0.4, // image 1: best own caption (2: 0.5) has 2 captions above → rank 2
    ];
    const r = retrievalRecall(scores, 2, [0, 0, 1, 1]);
    assert.deepEqual(r.i2t, { r1: 50, r5: 100, r10: 100, medr: 2 }); // median of ranks [0, 2] = 1 → floor(1) + 1
    // captions: 0 → image 1 scores 0.7 > 0.1: rank 1; 1 → rank 0; 2 → 0.5 < 0.8: rank 1; 3 → 0.4 > 0.2: rank 0
    assert.deepEqual(r.t2i, { r1: 50, r5: 100, r10: 100, medr: 1 }); // median of [1, 0, 1, 0] = 0.5 → 1
    assert.equal(r.rsum, 50 + 100 + 100 + 50 + 100 + 100);
    assert.throws(() => retrievalRecall([1, 2], 2, [0, 0]), /2 scores for 2 images × 2 captions/);
    assert.throws(() => retrievalRecall([1, 2, 3, 4], 2, [0, 0]), /image 1 has no caption/);
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
});
