import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { capsCollate, disposeBatch, padCaptions } from "../lib/data";
import { setupBackend } from "./helpers";

describe("capsCollate", () => {
  before(setupBackend);

  it("pads captions to the longest, batch-first, with lengths and mask (hand-computed)", async () => {
    const caps = [
      [1, 5, 2],
      [1, 5, 6, 7, 2],
      [1, 2],
    ];
    const batch = capsCollate(
      caps.map((caption, i) => ({ image: tf.fill([2, 2, 3], i), caption, imageName: `im${i}` })),
    );
    assert.deepEqual(batch.captions.shape, [3, 5]);
    assert.equal(batch.captions.dtype, "int32");
    assert.deepEqual(await batch.captions.array(), [
      [1, 5, 2, 0, 0],
      [1, 5, 6, 7, 2],
      [1, 2, 0, 0, 0],
    ]);
    assert.deepEqual(batch.lengths, [3, 5, 2]);
    assert.deepEqual(await batch.mask.array(), [
      [1, 1, 1, 0, 0],
      [1, 1, 1, 1, 1],
      [1, 1, 0, 0, 0],
    ]);
    assert.deepEqual(batch.images.shape, [3, 2, 2, 3]);
    assert.deepEqual(Array.from(await batch.images.max([1, 2, 3]).data()), [0, 1, 2], "images stacked in order");
    assert.deepEqual(batch.imageNames, ["im0", "im1", "im2"]);
    disposeBatch(batch);
  });

  it("pads with the index it is given", () => {
    const { ids, lengths, maxLen } = padCaptions([[4], [4, 4, 4]], 9);
    assert.deepEqual(Array.from(ids), [4, 9, 9, 4, 4, 4]);
    assert.deepEqual(lengths, [1, 3]);
    assert.equal(maxLen, 3);
  });

  it("refuses an empty batch", () => {
    assert.throws(() => capsCollate([]), /empty batch/);
  });
});
