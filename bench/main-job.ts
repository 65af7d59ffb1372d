/**
 * The main job's recipe on the scenes, one knob at a time: generates (or reuses) N scenes of seed 1 in their own
 * folder, extracts conv4-pooled features, trains the decoder for a fixed cosine schedule with the dev scenes scored
 * after each epoch (shown only), and scores the test scenes, greedy: scenes captioned exactly right and pointing.
 * Prints each stage's seconds and one JSON line. The figures of docs/main-job.md.
 *
 *   npx tsx bench/main-job.ts [scenes] [embed/attention/hidden/region] [epochs] [lr] [dropout] [batch] [seed]
 *   npx tsx bench/main-job.ts 3000 128/128/256/256 14 2e-3 0.1 64 1      # the main job's recipe
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describeBackend, initBackend } from "../lib/engine";
import { ensureSynthetic, readBoxes } from "../lib/data";
import { prepareCaptionData } from "../lib/encoder";
import { evaluate, pipelineConfig, scoreScenes, train } from "../lib/captioning";
import { projectRoot } from "../lib/util";

async function main() {
  const [n, dims, epochs, lr, dropout, batch, seed] = [
    Number(process.argv[2] ?? 3000),
    (process.argv[3] ?? "128/128/256/256").split("/").map(Number),
    Number(process.argv[4] ?? 14),
    Number(process.argv[5] ?? 2e-3),
    Number(process.argv[6] ?? 0.1),
    Number(process.argv[7] ?? 64),
    Number(process.argv[8] ?? 1),
  ];
  const backend = await initBackend({ quiet: true });
  console.log(`backend: ${describeBackend(backend)}; ${os.cpus().length} cores`);
  const t = [Date.now()];
  const lap = () => (t.push(Date.now()), (t[t.length - 1] - t[t.length - 2]) / 1000);
  const dataDir = path.join(projectRoot(), "data", `synthetic-${n}`);
  await ensureSynthetic(dataDir, { n });
  const scenes = lap();
  const data = await prepareCaptionData(dataDir, { map: "conv4-pooled", quiet: true });
  const features = lap();
  const config = pipelineConfig({ data: "synthetic", quick: false, batchSize: batch, epochs, seed }, data.vocab.size);
  const [embedSize, attentionDim, decoderDim, regionDim] = dims;
  Object.assign(config, { lr });
  config.decoder = { ...config.decoder, embedSize, attentionDim, decoderDim, regionDim, dropout };
  const boxes = readBoxes(dataDir);
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "main-job-"));
  const dev: number[] = [];
  const { decoder } = await train({
    train: data.train,
    val: data.val,
    vocab: data.vocab,
    config,
    out,
    quiet: true,
    log: () => {},
    onEpoch: async ({ epoch, decoder: d }) => {
      const s = await scoreScenes(d, data.vocab, data.cache, [...data.val.dataset.images], boxes);
      dev.push(Number((100 * s.accuracy).toFixed(1)));
      console.log(`epoch ${epoch + 1}: dev scenes right ${dev[dev.length - 1]} %`);
    },
  });
  const training = lap();
  const { report } = await evaluate({
    decoder,
    vocab: data.vocab,
    dataDir,
    split: "test",
    featuresDir: data.featuresDir,
    beams: [1],
    quiet: true,
  });
  const testing = lap();
  const b = report.beam["1"];
  fs.rmSync(out, { recursive: true, force: true });
  console.log(
    JSON.stringify({
      scenes: n,
      dims: dims.join("/"),
      epochs,
      lr,
      dropout,
      batch,
      seed,
      dev,
      test: { images: report.n_images, right: b.sceneAccuracy, pointing: b.attention?.pointing },
      seconds: { scenes, features, training, testing },
    }),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
