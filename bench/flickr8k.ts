/**
 * The whole captioning job on Flickr8k, timed by stage on the active backend with the real lib functions:
 *   1. features: ResNet-50 over the 7,091 shared train + dev photos (decode + encode + float16 cache), into a
 *      fresh cache folder so that nothing is read from an earlier run;
 *   2. one training epoch over the 30,000 train captions (the seed's dimensions, the trainer's default engine);
 *   3. dev evaluation: beam-3 captions of the 1,000 dev images and their BLEU / CIDEr-D / ROUGE-L.
 * Needs the photos (FLICKR8K_DIR or data/flickr8k) and the ResNet-50 weights.
 *   npx tsx bench/flickr8k.ts [batch=64] [lr=3e-4] [cache dir=a temporary folder, removed afterwards]
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describeBackend, initBackend } from "../lib/engine";
import { getDefaultConfig } from "../lib/captioning";
import { evaluate } from "../lib/captioning";
import { flickr8kDir } from "../lib/util";
import { prepareCaptionData } from "../lib/encoder";
import { defaultTrainConfig, train } from "../lib/captioning";

async function main() {
  const backend = await initBackend({ quiet: true });
  console.log(`backend: ${describeBackend(backend)}`);
  const dataDir = flickr8kDir();
  if (!dataDir)
    throw new Error("bench/flickr8k.ts needs Flickr8k's photos: set FLICKR8K_DIR or put them in data/flickr8k");
  const B = Number(process.argv[2] ?? 64);
  const lr = Number(process.argv[3] ?? 3e-4);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "attend-tell-bench-"));
  const featuresDir = process.argv[4] ?? path.join(tmp, "features");
  const times: [string, number][] = [];
  const timed = async <T>(stage: string, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const r = await f();
    times.push([stage, (performance.now() - t0) / 1000]);
    console.log(`${stage}: ${times[times.length - 1][1].toFixed(1)} s`);
    return r;
  };
  try {
    const data = await timed("features of the train + dev photos, vocabulary", () =>
      prepareCaptionData(dataDir, { featuresDir, quiet: true }),
    );
    console.log(`  ${data.cache.size} photos in the cache, vocabulary ${data.vocab.size}`);
    const config = {
      ...defaultTrainConfig(getDefaultConfig(data.vocab.size)),
      epochs: 1,
      batchSize: B,
      lr,
      lambda: 1 / 49,
      printEvery: 1e9,
    };
    const { decoder } = await timed(`one epoch (${data.train.length} captions, batch ${B}) + dev loss`, () =>
      train({
        train: data.train,
        val: data.val,
        vocab: data.vocab,
        config,
        out: path.join(tmp, "checkpoint"),
        quiet: true,
        log: () => {},
      }),
    );
    const { report } = await timed("dev evaluation, beam 3", () =>
      evaluate({ decoder, vocab: data.vocab, dataDir, split: "dev", featuresDir, beams: [3], quiet: true }),
    );
    const m = report.beam["3"];
    console.log(
      `  ${report.n_images} dev images: BLEU-4 ${m.bleu4.toFixed(1)}, CIDEr-D ${m.cider.toFixed(3)} after one epoch`,
    );
    data.cache.close();
    decoder.dispose();
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const total = times.reduce((a, [, s]) => a + s, 0);
  console.log(
    `Flickr8k end to end (${times.map(([, s]) => s.toFixed(0)).join(" + ")} s): ${total.toFixed(1)} s = ${(total / 60).toFixed(1)} min on ${backend.kind}`,
  );
}
main();
