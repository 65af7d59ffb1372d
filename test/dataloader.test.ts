import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { DataLoader } from "../lib/data";
import { CaptionBatch } from "../lib/data";
import { setupBackend } from "./helpers";

/** A dataset of n items whose caption length is 3 + (i mod 7), counting how many loads run at once. */
class Counting {
  inFlight = 0;
  maxInFlight = 0;
  constructor(readonly length: number) {}
  captionLength(i: number) {
    return 3 + (i % 7);
  }
  async getItem(i: number) {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await new Promise((r) => setTimeout(r, 2));
    this.inFlight--;
    return {
      image: tf.fill([1, 1, 3], i),
      caption: Array.from({ length: this.captionLength(i) }, () => 1),
      imageName: String(i),
      text: "",
    };
  }
}

describe("DataLoader", () => {
  before(setupBackend);

  it("counts batches with and without dropLast", () => {
    assert.equal(new DataLoader(new Counting(10), { batchSize: 4 }).length, 3);
    assert.equal(new DataLoader(new Counting(10), { batchSize: 4, dropLast: true }).length, 2);
    assert.deepEqual(new DataLoader(new Counting(10), { batchSize: 4 }).batchIndices(), [
      [0, 1, 2, 3],
      [4, 5, 6, 7],
      [8, 9],
    ]);
    assert.deepEqual(
      new DataLoader(new Counting(10), { batchSize: 4, dropLast: true }).batchIndices().flat().length,
      8,
    );
    assert.throws(
      () => new DataLoader(new Counting(3), { batchSize: 0 }),
      /batchSize must be a positive integer, got 0/,
    );
  });

  it("shuffles by seed and epoch: reproducible, different each epoch, every item once", () => {
    const a = new DataLoader(new Counting(100), { batchSize: 8, shuffle: true, seed: 3 });
    const b = new DataLoader(new Counting(100), { batchSize: 8, shuffle: true, seed: 3 });
    assert.deepEqual(a.batchIndices(2), b.batchIndices(2));
    assert.notDeepEqual(a.batchIndices(0), a.batchIndices(1));
    assert.deepEqual(
      a
        .batchIndices(1)
        .flat()
        .sort((x, y) => x - y),
      [...Array(100).keys()],
    );
  });

  it("length-bucketing cuts the padded length of batches", () => {
    const ds = new Counting(400);
    const padded = (l: { batchIndices(e: number): number[][] }) =>
      l.batchIndices(0).reduce((s, b) => s + Math.max(...b.map((i) => ds.captionLength(i))), 0);
    const plain = padded(new DataLoader(ds, { batchSize: 16, shuffle: true }));
    const bucketed = padded(new DataLoader(ds, { batchSize: 16, shuffle: true, bucketByLength: true }));
    assert.ok(bucketed < 0.8 * plain, `bucketed ${bucketed} vs shuffled ${plain}`);
    assert.throws(
      () => new DataLoader({ length: 1, getItem: async () => 0 }, { batchSize: 1, bucketByLength: true }),
      /needs dataset\.captionLength/,
    );
  });

  it("prefetches batches concurrently and serves them in order", async () => {
    const ds = new Counting(24);
    const loader = new DataLoader<never, CaptionBatch>(ds as never, { batchSize: 4, prefetch: 2 });
    const names: string[] = [];
    for await (const batch of loader.epoch(0)) {
      names.push(...batch.imageNames);
      tf.dispose([batch.images, batch.captions, batch.mask]);
    }
    assert.deepEqual(names, [...Array(24).keys()].map(String));
    assert.ok(ds.maxInFlight >= 8, `at most ${ds.maxInFlight} loads at once`);
  });

  it("frees prefetched batches when the loop stops early", async () => {
    const before = tf.memory().numTensors;
    const loader = new DataLoader<never, CaptionBatch>(new Counting(40) as never, { batchSize: 4, prefetch: 3 });
    for await (const batch of loader.epoch(0)) {
      tf.dispose([batch.images, batch.captions, batch.mask]);
      break;
    }
    assert.equal(tf.memory().numTensors, before);
  });

  it("surfaces a failed load in order", async () => {
    const ds = {
      length: 8,
      getItem: async (i: number) => {
        if (i === 5) throw new Error("bad item 5");
        return i;
      },
    };
    const loader = new DataLoader(ds, { batchSize: 2, collate: (xs: number[]) => xs });
    const seen: number[][] = [];
    await assert.rejects(async () => {
      for await (const b of loader.epoch(0)) seen.push(b);
    }, /bad item 5/);
    assert.deepEqual(seen, [
      [0, 1],
      [2, 3],
    ]);
  });
});
