/**
 * The seed's `DataLoader(dataset, batch_size, shuffle, num_workers, collate_fn)`, for async datasets.
 *
 * - Seeded shuffle: the order of epoch e depends only on (seed, e), so a resumed run sees the same batches.
 * - `prefetch` batches are loaded while the current one is used — the seed's workers: sharp decodes on
 *   libuv's thread pool, so image loading overlaps with the model's work on the main thread.
 * - `bucketByLength`: within windows of `bucketWindow` batches, items are sorted by caption length before
 *   batching (then batches are shuffled), so a batch pads to fewer steps — a decoder step costs the same
 *   for a padded token as for a real one.
 */
import * as tf from "@tensorflow/tfjs";
import { CaptionBatch, capsCollate, disposeBatch } from "./collate";
import { DatasetItem } from "./dataset";
import { Rng } from "../util/rng";

export interface Indexable<Item> {
  readonly length: number;
  getItem(i: number): Promise<Item>;
  /** Needed for bucketByLength. */
  captionLength?(i: number): number;
}

/** Which items of which epoch a batch is built from (a dataset with several views of an item picks by it). */
export interface CollateAt {
  epoch: number;
  indices: readonly number[];
}

export interface DataLoaderOptions<Item, Batch> {
  batchSize: number;
  shuffle?: boolean;
  seed?: number;
  /** Drop the last batch when it is smaller than batchSize. */
  dropLast?: boolean;
  /** Batches loaded ahead of the one in use (0 = load on demand). Default 2. */
  prefetch?: number;
  bucketByLength?: boolean;
  /** Window, in batches, within which bucketByLength sorts. Default 50. */
  bucketWindow?: number;
  collate?: (items: Item[], at: CollateAt) => Batch;
  /** Frees a batch the consumer never took (iteration stopped early). */
  dispose?: (batch: Batch) => void;
}

/** capsCollate, then free the per-item image tensors (the batch holds its own stacked copy). */
export function collateAndFree(items: DatasetItem[]): CaptionBatch {
  const batch = capsCollate(items);
  tf.dispose(items.map((i) => i.image));
  return batch;
}

export class DataLoader<Item = DatasetItem, Batch = CaptionBatch> {
  readonly dataset: Indexable<Item>;
  readonly opts: Required<Omit<DataLoaderOptions<Item, Batch>, "dispose">> & Pick<DataLoaderOptions<Item, Batch>, "dispose">;

  constructor(dataset: Indexable<Item>, opts: DataLoaderOptions<Item, Batch>) {
    if (!(Number.isInteger(opts.batchSize) && opts.batchSize >= 1)) {
      throw new Error(`DataLoader: batchSize must be a positive integer, got ${opts.batchSize}`);
    }
    if (opts.bucketByLength && !dataset.captionLength) throw new Error("DataLoader: bucketByLength needs dataset.captionLength(i)");
    const defaultCollate = collateAndFree as unknown as (items: Item[], at: CollateAt) => Batch;
    this.dataset = dataset;
    this.opts = {
      shuffle: false,
      seed: 0,
      dropLast: false,
      prefetch: 2,
      bucketByLength: false,
      bucketWindow: 50,
      collate: defaultCollate,
      dispose: opts.collate ? undefined : (disposeBatch as unknown as (b: Batch) => void),
      ...opts,
    };
  }

  /** Batches per epoch. */
  get length(): number {
    const n = this.dataset.length / this.opts.batchSize;
    return this.opts.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  /** The item indices of every batch of epoch `epoch`, in the order they will be served. */
  batchIndices(epoch = 0): number[][] {
    const { batchSize, shuffle, seed, dropLast, bucketByLength, bucketWindow } = this.opts;
    const rng = new Rng((seed ^ Math.imul(epoch + 1, 0x9e3779b1)) >>> 0);
    const order = Array.from({ length: this.dataset.length }, (_, i) => i);
    if (shuffle) rng.shuffle(order);
    let batches: number[][] = [];
    const window = bucketByLength ? batchSize * bucketWindow : order.length;
    for (let w = 0; w < order.length; w += window) {
      const chunk = order.slice(w, w + window);
      if (bucketByLength) {
        const len = (i: number) => this.dataset.captionLength!(i);
        chunk.sort((a, b) => len(a) - len(b));
      }
      for (let b = 0; b < chunk.length; b += batchSize) batches.push(chunk.slice(b, b + batchSize));
    }
    if (dropLast) batches = batches.filter((b) => b.length === batchSize);
    if (bucketByLength && shuffle) rng.shuffle(batches);
    return batches;
  }

  private async load(indices: number[], epoch: number): Promise<Batch> {
    const items = await Promise.all(indices.map((i) => this.dataset.getItem(i)));
    return this.opts.collate(items, { epoch, indices });
  }

  /** The batches of one epoch. Stop early with `break`: batches already prefetched are disposed. */
  async *epoch(epoch = 0): AsyncGenerator<Batch> {
    const batches = this.batchIndices(epoch);
    const ahead: Promise<Batch>[] = [];
    let next = 0;
    const fill = () => {
      while (next < batches.length && ahead.length <= this.opts.prefetch) {
        const p = this.load(batches[next++], epoch);
        p.catch(() => {}); // a failed load surfaces when awaited in order, not as an unhandled rejection
        ahead.push(p);
      }
    };
    try {
      fill();
      while (ahead.length > 0) {
        const batch = await ahead.shift()!;
        fill();
        yield batch;
      }
    } finally {
      // Early exit: wait for loads in flight so their tensors can be freed, and so no error goes unhandled.
      for (const p of ahead.splice(0)) {
        try {
          const b = await p;
          this.opts.dispose?.(b);
        } catch {
          /* the consumer already stopped; its own error (if any) is the one that matters */
        }
      }
    }
  }

  [Symbol.asyncIterator](): AsyncGenerator<Batch> {
    return this.epoch(0);
  }
}

/** Padded length T of each batch (its longest caption): the decoder steps each batch costs. */
export function paddedLengths(batches: number[][], lengthOf: (i: number) => number): number[] {
  return batches.map((b) => Math.max(...b.map(lengthOf)));
}

/**
 * Items per second served by `loader` over its first `batches` batches of epoch 0. `busyMs` keeps the main
 * thread busy per batch, as a model step would, so prefetching has something to overlap with.
 */
export async function measureLoader<Item>(
  loader: DataLoader<Item, CaptionBatch>,
  opts: { batches: number; busyMs?: number },
): Promise<{ itemsPerSecond: number; batches: number; seconds: number }> {
  const t0 = performance.now();
  let k = 0, items = 0;
  for await (const b of loader.epoch(0)) {
    items += b.lengths.length;
    disposeBatch(b);
    for (const end = performance.now() + (opts.busyMs ?? 0); performance.now() < end; );
    if (++k === opts.batches) break;
  }
  const seconds = (performance.now() - t0) / 1000;
  return { itemsPerSecond: items / seconds, batches: k, seconds };
}
