/** Image–text matching commands (SCAN): train-matching, evaluate-matching, retrieve. */
import * as fs from "node:fs";
import * as path from "node:path";
import { initBackend } from "../engine/backend";
import { defaultFeaturesDir } from "../encoder/feature-dataset";
import { defaultScanConfig } from "../matching/scan";
import {
  defaultMatchingConfig,
  evaluateMatching,
  humanAgreement,
  loadMatchingCheckpoint,
  trainMatching,
} from "../matching/scan-train";
import { bankCaptions, captionsForPicture, searchPhotos } from "../matching/search";
import { FlickrDataset } from "../data/dataset";
import { textLines } from "../data/captions";
import { describeSkipped } from "../encoder/features";
import { writeJsonAtomic } from "../util/io";
import { SHIPPED, shippedModel } from "../util/paths";
import { defineCommand, requireFlags } from "./command";
import { FEATURES_FLAG, MIRROR_FLAG, RUN_FLAGS, SKIP_FLAGS, trainingRun, refuseIgnoredFlags } from "./shared";

const mc = defaultMatchingConfig(defaultScanConfig(0));

/** `--checkpoint` (repeatable), or the shipped SCAN ensemble (scores averaged) when none is given. */
function matchingCheckpoints(given: string[], command: string): string[] {
  if (given.length) return given;
  const missing = SHIPPED.scan.find((name) => !shippedModel(name));
  if (missing) throw new Error(`${command} needs --checkpoint DIR (no shipped model at models/${missing})`);
  return SHIPPED.scan.map((name) => shippedModel(name)!);
}

export const trainMatchingCmd = defineCommand({
  name: "train-matching",
  summary:
    "Train SCAN (stacked cross attention) on cached features; lr ÷ 10 every --lr-update epochs; a checkpoint per epoch.",
  flags: {
    "data-dir": { type: "string", placeholder: "DIR", help: "data folder" },
    out: { type: "string", placeholder: "runs/NAME", help: "run folder: checkpoint/ and history.json" },
    ...FEATURES_FLAG,
    direction: {
      type: "string",
      choices: ["t2i", "i2t"],
      default: "t2i",
      help: "t2i: words attend to regions, LSE (λ 9); i2t: regions to words, AVG (λ 4)",
    },
    epochs: { type: "int", default: mc.epochs, help: "train up to this epoch (on --resume: the new total)" },
    "batch-size": { type: "int", default: mc.batchSize, help: "image–caption pairs per step" },
    lr: { type: "number", above: 0, default: mc.lr, help: "Adam learning rate" },
    "lr-update": {
      type: "int",
      default: mc.lrUpdate,
      help: "divide the lr by 10 every N epochs (on --resume: the new schedule)",
    },
    "joint-dim": { type: "int", default: mc.scan.jointDim, help: "joint embedding size" },
    "warmup-epochs": {
      type: "int",
      min: 0,
      default: mc.warmupEpochs,
      help: "epochs summing the top --warmup-negatives violations",
    },
    "warmup-negatives": { type: "int", default: mc.warmupNegatives, help: "violations summed per item during warm-up" },
    seed: { type: "int", default: mc.seed, help: "random seed" },
    ...MIRROR_FLAG,
    ...RUN_FLAGS,
    ...SKIP_FLAGS,
  },
  async run(v, _, given) {
    await trainingRun("train-matching", v, async (data, out, log) => {
      const scan = { ...defaultScanConfig(data.vocab.size, v.direction as "t2i" | "i2t"), jointDim: v["joint-dim"] };
      const config = {
        ...defaultMatchingConfig(scan),
        epochs: v.epochs,
        batchSize: v["batch-size"],
        lr: v.lr,
        warmupEpochs: v["warmup-epochs"],
        warmupNegatives: v["warmup-negatives"],
        lrUpdate: v["lr-update"],
        seed: v.seed,
        mirror: v.mirror,
      };
      refuseIgnoredFlags({ resume: v.resume, given, checkpoint: out }, config, {
        direction: "scan.direction",
        "joint-dim": "scan.jointDim",
        "batch-size": "batchSize",
        lr: "lr",
        "warmup-epochs": "warmupEpochs",
        "warmup-negatives": "warmupNegatives",
        seed: "seed",
      });
      const { history, model } = await trainMatching({
        train: data.train,
        val: data.val,
        vocab: data.vocab,
        config,
        out,
        resume: v.resume,
        log,
      });
      model.dispose();
      writeJsonAtomic(path.join(v.out!, "history.json"), history);
      console.log(`checkpoint: ${out}`);
    });
  },
});

const QUERYBANK_FLAGS = {
  querybank: {
    type: "int",
    placeholder: "N",
    min: 1,
    help: "normalise the scores by a bank of N train images and their captions as queries (QB-Norm's inverted softmax)",
  },
  "querybank-beta": { type: "number", above: 0, default: 20, help: "with --querybank: the inverted softmax's β" },
} as const;

export const evaluateMatchingCmd = defineCommand({
  name: "evaluate-matching",
  summary:
    "Recall@1/5/10 both ways over a split (several checkpoints: their scores averaged, e.g. SCAN's t2i + i2t ensemble).",
  flags: {
    checkpoint: {
      type: "string",
      multiple: true,
      placeholder: "DIR",
      help: "checkpoint folder (default: the shipped SCAN models)",
    },
    "data-dir": { type: "string", placeholder: "DIR", help: "data folder" },
    split: { type: "string", choices: ["dev", "test"], default: "dev", help: "split to score" },
    ...FEATURES_FLAG,
    ...QUERYBANK_FLAGS,
    human: { type: "boolean", help: "also the rank correlation with ExpertAnnotations.txt" },
    json: { type: "boolean", help: "print the result as JSON" },
    ...SKIP_FLAGS,
  },
  async run(v) {
    requireFlags("evaluate-matching", v, "data-dir");
    const checkpoints = matchingCheckpoints(v.checkpoint, "evaluate-matching");
    await initBackend({ quiet: v.json });
    const [ck, ...ensemble] = await Promise.all(checkpoints.map((c) => loadMatchingCheckpoint(c)));
    if (ensemble.length && !v.json)
      console.log(`ensemble of ${checkpoints.length} models (scores averaged): ${checkpoints.join(", ")}`);
    const featuresDir = v.features ?? defaultFeaturesDir(v["data-dir"]!);
    const dataDir = v["data-dir"]!;
    try {
      const r = await evaluateMatching({
        model: ck.model,
        vocab: ck.vocab,
        ensemble,
        dataDir,
        split: v.split,
        featuresDir,
        skipMissing: v["skip-missing"],
        skipBad: v["skip-bad"],
        quiet: v.json,
        querybank: v.querybank ? { images: v.querybank, beta: v["querybank-beta"] } : undefined,
      });
      const human = v.human
        ? await humanAgreement({ model: ck.model, vocab: ck.vocab, ensemble, dataDir, featuresDir })
        : undefined;
      if (v.json) return console.log(JSON.stringify({ ...r, checkpoints, ...(human ? { human } : {}) }));
      const f = (x: { r1: number; r5: number; r10: number; medr: number }) =>
        `R@1 ${x.r1.toFixed(1)}  R@5 ${x.r5.toFixed(1)}  R@10 ${x.r10.toFixed(1)}  medr ${x.medr}`;
      console.log(`${v.split}: ${r.n_images} images × ${r.n_captions} captions, scored in ${r.seconds.toFixed(1)} s`);
      if (r.querybank)
        console.log(
          `scores normalised by a query bank of ${r.querybank.images} train images and ${r.querybank.captions} captions (β ${r.querybank.beta})`,
        );
      console.log(`image → text: ${f(r.i2t)}\ntext → image: ${f(r.t2i)}\nrsum ${r.rsum.toFixed(1)}`);
      if (human) {
        const n = human.pairs + human.missingImage + human.missingCaption;
        const missing = `${human.missingImage} images missing, ${human.missingCaption} captions not found`;
        console.log(
          human.kendallTau === null
            ? `human judgements (${human.file}): none of the ${n} judged pairs can be scored — ${missing} (Flickr8k's judged images are all test-split images)`
            : `human judgements (${human.file}): ${human.pairs} of ${n} pairs, Kendall τ-b ${human.kendallTau.toFixed(3)}, ` +
                `Spearman ρ ${human.spearman!.toFixed(3)}` +
                (human.missingImage + human.missingCaption ? ` (${missing})` : ""),
        );
      }
    } finally {
      for (const c of [ck, ...ensemble]) c.model.dispose();
    }
  },
});

/** The photos directly in a folder (jpg, jpeg, png, webp), sorted. */
export function photosIn(dir: string): string[] {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`--images ${dir} is not a folder`);
  const files = fs
    .readdirSync(dir)
    .filter((f) => /\.(jpe?g|png|webp)$/i.test(f))
    .sort()
    .map((f) => path.join(dir, f));
  if (files.length === 0) throw new Error(`--images ${dir} holds no .jpg, .png or .webp photos`);
  return files;
}

export const retrieve = defineCommand({
  name: "retrieve",
  summary:
    "Rank images for a text query — a data set's split, or any folder of photos (--images DIR) — or captions for an " +
    "image (--image FILE): a split's, or your own (--captions FILE).",
  positionals: '["a text query"]',
  flags: {
    checkpoint: {
      type: "string",
      multiple: true,
      placeholder: "DIR",
      help: "checkpoint folder (default: the shipped SCAN models); several: their scores averaged",
    },
    "data-dir": {
      type: "string",
      placeholder: "DIR",
      help: "data folder whose split is searched (with --images and --querybank: the bank's train captions)",
    },
    images: { type: "string", placeholder: "DIR", help: "a folder of your photos to search instead (features cached)" },
    features: { type: "string", placeholder: "DIR", help: "feature cache (default data/features/<folder name>)" },
    split: { type: "string", choices: ["dev", "test", "train"], default: "dev", help: "split to search" },
    image: { type: "string", placeholder: "FILE", help: "find captions for this image instead of images for a query" },
    captions: { type: "string", placeholder: "FILE", help: "with --image: rank these captions (one a line)" },
    k: { type: "int", default: 5, help: "results to show" },
    ...QUERYBANK_FLAGS,
    json: { type: "boolean", help: "print results as JSON" },
    ...SKIP_FLAGS,
  },
  async run(v, words) {
    if (v.image) {
      if (!v["data-dir"] === !v.captions)
        throw new Error("retrieve --image ranks captions: give --data-dir DIR (its split's) or --captions FILE");
      if (v.querybank) throw new Error("retrieve --querybank normalises a text query's ranking of images, not --image");
    } else {
      if (v.captions) throw new Error("retrieve --captions FILE ranks captions for a picture: give --image FILE too");
      if (v.querybank && !v["data-dir"])
        throw new Error("retrieve --querybank N takes its bank of train captions from --data-dir DIR");
      // with a query bank, --data-dir is where its captions come from, and --images what is searched
      if (!v["data-dir"] === !v.images && !(v.querybank && v.images))
        throw new Error("retrieve needs --data-dir DIR or --images DIR, not both (attend-tell retrieve --help)");
      if (words.length === 0)
        throw new Error('retrieve: give a text query ("a dog runs on the beach") or --image FILE');
    }
    const checkpoints = matchingCheckpoints(v.checkpoint, "retrieve");
    await initBackend({ quiet: v.json });
    const [ck, ...ensemble] = await Promise.all(checkpoints.map((c) => loadMatchingCheckpoint(c)));
    const matchers = { model: ck.model, vocab: ck.vocab, ensemble };
    const onMissing = v["skip-missing"] ? "skip" : "error";
    try {
      let results: { image?: string; caption?: string; score: number }[];
      if (v.image) {
        const captions = v.captions
          ? captionLines(v.captions)
          : (() => {
              const ds = new FlickrDataset({ dataDir: v["data-dir"]!, split: v.split, vocab: ck.vocab, onMissing });
              return ds.images.flatMap((im) => ds.captionsOf(im));
            })();
        results = await captionsForPicture({ ...matchers, file: v.image, captions, k: v.k });
      } else {
        const query = words.join(" ");
        let files: string[];
        if (v.images) files = photosIn(v.images);
        else {
          const ds = new FlickrDataset({ dataDir: v["data-dir"]!, split: v.split, vocab: ck.vocab, onMissing });
          if (ds.skipped.length && !v.json) console.error(`[attend-tell] ${describeSkipped(ds.skipped)}`);
          files = ds.images.map((im) => ds.imagePath(im));
        }
        const found = await searchPhotos({
          ...matchers,
          query,
          files,
          featuresDir: v.features ?? defaultFeaturesDir(v.images ?? v["data-dir"]!),
          k: v.k,
          onBadImage: v["skip-bad"] ? "skip" : "error",
          quiet: v.json,
          bank: v.querybank
            ? { captions: bankCaptions(v["data-dir"]!, v.querybank), beta: v["querybank-beta"] }
            : undefined,
        });
        const named = found.skipped.map((b) => ({ image: path.basename(b.file), why: b.why }));
        if (named.length && !v.json) console.error(`[attend-tell] ${describeSkipped(named)}`);
        // a folder of photos: show where each one is; a data set: its image names
        results = found.results.map((r) => ({ image: v.images ? r.file : path.basename(r.file), score: r.score }));
      }
      if (v.json) console.log(JSON.stringify(results));
      else for (const r of results) console.log(`${r.score.toFixed(4)}  ${r.image ?? r.caption}`);
    } finally {
      for (const c of [ck, ...ensemble]) c.model.dispose();
    }
  },
});

/** The non-empty lines of a captions file (UTF-8, as every text file read); an empty file is an error naming it. */
export function captionLines(file: string): string[] {
  const lines = textLines(file, "--captions")
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  if (lines.length === 0) throw new Error(`--captions ${file} holds no captions (one a line)`);
  return lines;
}
