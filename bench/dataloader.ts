/**
 * DataLoader throughput (items/s) with and without prefetch, on Flickr8k when present, else the synthetic scenes.
 * The consumer keeps the main thread busy for `workMs` per batch, as a model step does; prefetching pays off
 * when loading (sharp, on libuv's threads) overlaps with that work.
 *   npx tsx bench/dataloader.ts [batches=100] [workMs=80]
 */
import { initBackend } from "../lib/engine";
import { CaptionBatch } from "../lib/data";
import { DataLoader, measureLoader } from "../lib/data";
import { DatasetItem, FlickrDataset, trainCaptions } from "../lib/data";
import { flickr8kDir } from "../lib/util";
import { ensureScenes } from "../lib/data";
import { buildVocabulary } from "../lib/data";

async function main() {
  const backend = await initBackend();
  const nBatches = Number(process.argv[2] ?? 100);
  const workMs = Number(process.argv[3] ?? 80);
  const dataDir = flickr8kDir() ?? (await ensureScenes()).dataDir;
  const train = new FlickrDataset({ dataDir, split: "train", vocab: buildVocabulary(trainCaptions(dataDir), 5) });
  for (const prefetch of [0, 2, 4, 8]) {
    const loader = new DataLoader<DatasetItem, CaptionBatch>(train, {
      batchSize: 32,
      shuffle: true,
      seed: prefetch,
      prefetch,
    });
    const { itemsPerSecond, batches: k } = await measureLoader(loader, { batches: nBatches, busyMs: workMs });
    console.log(
      `prefetch ${prefetch}: ${itemsPerSecond.toFixed(0)} items/s (${k} batches of 32, 224×224 decode+resize, ${workMs} ms busy per batch, ${backend.kind}, ${dataDir})`,
    );
  }
}
main();
