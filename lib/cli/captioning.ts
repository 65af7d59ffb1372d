/** Captioning commands: train, train-scst, evaluate, caption, report, export, start. */
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../engine/backend";
import { MAIN_JOB_EPOCHS, runPipeline } from "../captioning/pipeline";
import { decoderFeaturesDir } from "../encoder/feature-dataset";
import { evaluate, storedCider, trainCider } from "../captioning/evaluate";
import { writeReport } from "../captioning/report";
import { EncoderCNN, decoderFeatureMap, decoderFeatures, featureMap } from "../encoder/encoder";
import {
  bestDir,
  defaultPlateauConfig,
  defaultTrainConfig,
  loadCaptioner,
  loadCheckpoint,
  parseEpochDir,
  train,
} from "../captioning/train";
import { defaultScstConfig, trainScst } from "../captioning/scst";
import { getDefaultConfig } from "../captioning/decoder";
import { CONSENSUS_FILE, beamSearch, byConsensus } from "../captioning/generate";
import { writeFileAtomic, writeJsonAtomic } from "../util/io";
import { attentionPng, isHeatmapPng } from "../captioning/heatmap";
import { exportCheckpoint } from "../util/checkpoint";
import { claimRunDir } from "../util/lock";
import { SHIPPED, flickr8kDir, projectRoot, quickMode, shippedModel } from "../util/paths";
import { ensureWeights } from "../encoder/weights";
import { describeSkipped } from "../encoder/features";
import { defineCommand, requireFlags } from "./command";
import {
  FEATURES_FLAG,
  FEATURE_MAP_FLAGS,
  MIRROR_FLAG,
  RUN_FLAGS,
  SKIP_FLAGS,
  refuseIgnoredFlags,
  trainingRun,
} from "./shared";

const dims = getDefaultConfig(0);
const tc = defaultTrainConfig(dims);
const pc = defaultPlateauConfig();
const sc = defaultScstConfig();

/** `--checkpoint` (repeated: an ensemble), or the shipped captioner's members when none is given. */
export function captionerCheckpoints(given: readonly string[], command: string): string[] {
  if (given.length) return [...given];
  const missing = SHIPPED.captioner.find((name) => !shippedModel(name));
  if (missing) throw new Error(`${command} needs --checkpoint DIR (no shipped model at models/${missing})`);
  return SHIPPED.captioner.map((name) => shippedModel(name)!);
}

const CAPTIONER_FLAG = {
  checkpoint: {
    type: "string",
    multiple: true,
    placeholder: "DIR",
    help: `checkpoint folder (default: the shipped captioner, models/${SHIPPED.captioner.join(" + models/")}); several: an ensemble, word probabilities averaged`,
  },
} as const;

const CONSENSUS_FLAG = {
  consensus: {
    type: "boolean",
    help:
      "of each beam's captions, the one the others agree with most (minimum Bayes risk with CIDEr-D, document " +
      "frequencies of --data-dir's train captions) instead of the likeliest; use a wide beam (--beam 10)",
  },
} as const;

const REGION_LAYER_FLAGS = {
  "region-layer": {
    type: "boolean",
    help: "learn a layer over each region, f′ = ReLU(f·W_f + b_f), that the decoder reads in place of the features",
  },
  "region-dim": {
    type: "int",
    placeholder: "N",
    help: "the region layer's output width (default: the features'); implies --region-layer",
    min: 1,
  },
} as const;

/** The main job's region-layer flags: the train command's, and a way back to the seed's design on the scenes. */
const START_REGION_LAYER_FLAGS = {
  "region-layer": {
    ...REGION_LAYER_FLAGS["region-layer"],
    help: `${REGION_LAYER_FLAGS["region-layer"].help} (default: on the synthetic scenes, 512 wide; off on flickr8k)`,
  },
  "region-dim": REGION_LAYER_FLAGS["region-dim"],
  "no-region-layer": {
    type: "boolean",
    help: "no region layer: the decoder reads the features themselves (the seed's design; with --layer conv5, the seed's inputs)",
  },
} as const;

/** The region layer the flags ask for: on, off (--no-region-layer), or undefined (the command's default). */
export function regionLayerConfig(v: { "region-layer": boolean; "region-dim"?: number; "no-region-layer"?: boolean }) {
  const on = v["region-layer"] || v["region-dim"] !== undefined;
  if (v["no-region-layer"] && on) throw new Error("--no-region-layer contradicts --region-layer and --region-dim");
  return { regionLayer: v["no-region-layer"] ? false : on || undefined, regionDim: v["region-dim"] };
}

/** A copy of every epoch, for choosing one later by a measure the run does not apply (e.g. paired with another model). */
const KEEP_EPOCHS_FLAG = {
  "keep-epochs": {
    type: "boolean",
    help: "also keep each epoch's weights in runs/NAME/epochs/N (no optimiser state; a third of a checkpoint each)",
  },
} as const;

/** Where each of train's settings lives in its checkpoint's config (what --resume keeps; refuseIgnoredFlags). */
const TRAIN_PATHS = {
  "batch-size": "batchSize",
  lr: "lr",
  "lr-warmup": "lrWarmupEpochs",
  "lr-schedule": "lrSchedule",
  lambda: "lambda",
  "region-layer": "decoder.regionLayer",
  "region-dim": "decoder.regionDim",
  embed: "decoder.embedSize",
  attention: "decoder.attentionDim",
  decoder: "decoder.decoderDim",
  dropout: "decoder.dropout",
  "print-every": "printEvery",
  seed: "seed",
};
const SCST_PATHS = {
  lr: "lr",
  samples: "scst.samples",
  "batch-size": "scst.batchSize",
  baseline: "scst.baseline",
  "bleu-weight": "scst.bleuWeight",
  seed: "seed",
};

const ENGINE_FLAG = {
  engine: {
    type: "string",
    choices: ["onnx", "tfjs"],
    help: "where the step runs (default: onnx on CPUs, tfjs on GPUs)",
  },
} as const;

export const trainCmd = defineCommand({
  name: "train",
  summary: "Train the attention decoder on cached features (extracted first if missing); a checkpoint per epoch.",
  flags: {
    "data-dir": { type: "string", placeholder: "DIR", help: "data folder" },
    out: { type: "string", placeholder: "runs/NAME", help: "run folder: checkpoint/ and history.json" },
    ...FEATURES_FLAG,
    ...FEATURE_MAP_FLAGS,
    epochs: { type: "int", default: tc.epochs, help: "train up to this epoch (on --resume: the new total)" },
    "batch-size": { type: "int", default: tc.batchSize, help: "captions per step" },
    lr: { type: "number", above: 0, default: tc.lr, help: "Adam learning rate" },
    "lr-warmup": { type: "number", default: 0, help: "epochs over which the lr rises linearly (large batches)" },
    "lr-schedule": {
      type: "string",
      choices: ["constant", "cosine"],
      default: "constant",
      help: "cosine: the lr falls to 0 along half a cosine over --epochs",
    },
    lambda: {
      type: "number",
      default: tc.lambda,
      help: "weight of the doubly stochastic attention term (the seed's: 0.0204 = 1/49, the mean over regions)",
    },
    ...REGION_LAYER_FLAGS,
    embed: { type: "int", default: dims.embedSize, help: "word embedding size" },
    attention: { type: "int", default: dims.attentionDim, help: "attention size" },
    decoder: { type: "int", default: dims.decoderDim, help: "LSTM size" },
    dropout: { type: "number", below: 1, default: dims.dropout, help: "dropout before the output layer" },
    "print-every": { type: "int", default: tc.printEvery, help: "print a sample caption every N batches" },
    seed: { type: "int", default: tc.seed, help: "random seed (weights, batch order, dropout)" },
    plateau: {
      type: "boolean",
      help: "select by dev BLEU-4: score it each epoch, keep the best in runs/NAME/best, decay the lr on a plateau",
    },
    "plateau-beam": { type: "int", default: pc.beam, help: "beam width of the dev captions scored" },
    "plateau-patience": {
      type: "int",
      default: pc.patience,
      help: "epochs without a better BLEU-4 before the lr is multiplied by --plateau-factor",
    },
    "plateau-factor": { type: "number", above: 0, below: 1, default: pc.factor, help: "lr decay factor" },
    "plateau-stop": {
      type: "int",
      min: 0,
      default: pc.stopAfter,
      help: "stop after this many epochs without a better BLEU-4 (0: never)",
    },
    ...ENGINE_FLAG,
    ...MIRROR_FLAG,
    ...RUN_FLAGS,
    ...KEEP_EPOCHS_FLAG,
    ...SKIP_FLAGS,
  },
  async run(v, _, given) {
    await trainingRun("train", v, async (data, out, log) => {
      const decoder = {
        ...getDefaultConfig(data.vocab.size),
        ...decoderFeatures(data.cache.map),
        embedSize: v.embed,
        attentionDim: v.attention,
        decoderDim: v.decoder,
        dropout: v.dropout,
        ...regionLayerConfig(v),
      };
      const config = {
        ...defaultTrainConfig(decoder),
        epochs: v.epochs,
        batchSize: v["batch-size"],
        lr: v.lr,
        lambda: v.lambda,
        printEvery: v["print-every"],
        seed: v.seed,
        lrWarmupEpochs: v["lr-warmup"],
        lrSchedule: v["lr-schedule"] as "constant" | "cosine",
        mirror: v.mirror,
        plateau: v.plateau
          ? {
              beam: v["plateau-beam"],
              patience: v["plateau-patience"],
              factor: v["plateau-factor"],
              stopAfter: v["plateau-stop"],
            }
          : undefined,
      };
      refuseIgnoredFlags({ resume: v.resume, given, checkpoint: out }, config, TRAIN_PATHS);
      const { history } = await train({
        train: data.train,
        val: data.val,
        vocab: data.vocab,
        config,
        out,
        resume: v.resume,
        engine: v.engine as "onnx" | "tfjs" | undefined,
        keepEpochs: v["keep-epochs"],
        log,
      });
      writeJsonAtomic(path.join(v.out!, "history.json"), history);
      console.log(`checkpoint: ${out}; history: ${path.join(v.out!, "history.json")}`);
    });
  },
});

export const trainScstCmd = defineCommand({
  name: "train-scst",
  summary:
    "Self-critical sequence training of a trained captioner (Rennie et al. 2017): sampled captions rewarded by their CIDEr-D, the end of the sentence counted; a checkpoint per epoch, the best by dev CIDEr-D kept.",
  flags: {
    from: {
      type: "string",
      placeholder: "DIR",
      help: "the checkpoint to start from (e.g. runs/NAME/best, models/NAME)",
    },
    "data-dir": { type: "string", placeholder: "DIR", help: "data folder" },
    out: { type: "string", placeholder: "runs/NAME", help: "run folder: checkpoint/, best/ and history.json" },
    ...FEATURES_FLAG,
    ...FEATURE_MAP_FLAGS,
    epochs: { type: "int", default: 10, help: "train up to this epoch (on --resume: the new total)" },
    lr: { type: "number", above: 0, default: 5e-5, help: "Adam learning rate" },
    samples: { type: "int", min: 2, default: sc.samples, help: "captions sampled per image" },
    "batch-size": { type: "int", default: sc.batchSize, help: "images per step" },
    baseline: {
      type: "string",
      choices: ["greedy", "mean"],
      default: sc.baseline,
      help: "each sample's baseline: the other samples' mean reward (Luo 2020), or the greedy caption's (Rennie et al.)",
    },
    "bleu-weight": {
      type: "number",
      min: 0,
      default: 0,
      help: "reward = CIDEr-D + this × the caption's BLEU-4 (0…1)",
    },
    beam: { type: "int", default: pc.beam, help: "beam width of the dev captions scored after each epoch" },
    seed: { type: "int", default: tc.seed, help: "random seed (batch order, samples)" },
    ...ENGINE_FLAG,
    ...RUN_FLAGS,
    ...KEEP_EPOCHS_FLAG,
    ...SKIP_FLAGS,
  },
  async run(v, _, given) {
    if (!v.resume) requireFlags("train-scst", v, "from");
    await trainingRun("train-scst", v, async (data, out, log) => {
      const scst = {
        ...sc,
        samples: v.samples,
        batchSize: v["batch-size"],
        baseline: v.baseline as "greedy" | "mean",
        bleuWeight: v["bleu-weight"],
      };
      const config = { epochs: v.epochs, lr: v.lr, clipNorm: tc.clipNorm, seed: v.seed, scst, beam: v.beam };
      refuseIgnoredFlags({ resume: v.resume, given, checkpoint: out }, { ...config, scst }, SCST_PATHS);
      const r = await trainScst({
        from: v.from,
        train: data.train,
        val: data.val,
        config,
        out,
        resume: v.resume,
        engine: v.engine as "onnx" | "tfjs" | undefined,
        keepEpochs: v["keep-epochs"],
        log,
      });
      writeJsonAtomic(path.join(v.out!, "history.json"), r.history);
      console.log(`checkpoint: ${out}; the best epoch by dev CIDEr-D: ${bestDir(out)}`);
    });
  },
});

/**
 * Where `evaluate` writes a checkpoint's captions unless --out says: beside a run's checkpoint; for an epoch kept by
 * --keep-epochs (runs/NAME/epochs/N), runs/NAME/evaluation-epoch-N; a weights-only model elsewhere (models/NAME) is
 * left as shipped, so runs/NAME.
 */
export function evaluationDir(checkpoint: string, weightsOnly: boolean | undefined): string {
  const abs = path.resolve(checkpoint);
  if (!weightsOnly) return path.dirname(abs);
  const kept = parseEpochDir(abs);
  if (kept) return path.join(kept.run, `evaluation-epoch-${kept.epoch}`);
  return path.join(projectRoot(), "runs", path.basename(abs));
}

export const evaluateCmd = defineCommand({
  name: "evaluate",
  summary: "BLEU-1…4, CIDEr-D and ROUGE-L of a checkpoint's captions on a split (and attention on synthetic scenes).",
  flags: {
    ...CAPTIONER_FLAG,
    "data-dir": { type: "string", placeholder: "DIR", help: "data folder" },
    split: { type: "string", choices: ["dev", "test", "train"], default: "dev", help: "split to score" },
    beam: { type: "ints", default: [1, 3], help: "beam widths, comma-separated (1 = greedy)" },
    "max-len": { type: "int", default: 20, help: "longest caption in words" },
    "length-penalty": { type: "number", default: 0, help: "beam search's length normalisation α (0: none)" },
    ...CONSENSUS_FLAG,
    ...FEATURES_FLAG,
    out: {
      type: "string",
      placeholder: "DIR",
      help: "where captions and metrics go (default: beside a run's checkpoint; runs/NAME/evaluation-epoch-N for a kept epoch; runs/<model> for a shipped model)",
    },
    json: { type: "boolean", help: "print the report as JSON" },
    ...SKIP_FLAGS,
  },
  async run(v) {
    requireFlags("evaluate", v, "data-dir");
    const checkpoints = captionerCheckpoints(v.checkpoint, "evaluate");
    const shipped = v.checkpoint.length === 0;
    if (checkpoints.length > 1 && !shipped && !v.out)
      throw new Error("evaluate of an ensemble needs --out DIR for its captions");
    await initBackend({ quiet: v.json });
    const model = await loadCaptioner(checkpoints);
    const [checkpoint, ck] = [checkpoints[0], model.checkpoints[0]];
    const outDir = v.out ?? evaluationDir(checkpoint, ck.weightsOnly);
    try {
      const { report } = await evaluate({
        decoder: model.decoder,
        vocab: model.vocab,
        dataDir: v["data-dir"]!,
        split: v.split,
        beams: v.beam,
        outDir,
        quiet: v.json,
        featuresDir: v.features ?? decoderFeaturesDir(v["data-dir"]!, ck.decoder.config),
        skipMissing: v["skip-missing"],
        skipBad: v["skip-bad"],
        maxLen: v["max-len"],
        lengthPenalty: v["length-penalty"],
        consensus: v.consensus,
      });
      writeJsonAtomic(path.join(outDir, `metrics-${v.split}${v.consensus ? "-consensus" : ""}.json`), report);
      if (v.json) return console.log(JSON.stringify(report));
      const which = model.checkpoints.map((c, i) => `${checkpoints[i]} (epoch ${c.epoch})`).join(" + ");
      console.log(
        `${v.split}: ${report.n_images} images; ${checkpoints.length > 1 ? "ensemble" : "checkpoint"} ${which}` +
          (v.consensus ? "; beam captions chosen by consensus" : ""),
      );
      if (report.skippedImages?.length) console.log(describeSkipped(report.skippedImages));
      const synthetic = !!Object.values(report.beam)[0]?.attention;
      console.log(
        "beam  BLEU-1  BLEU-2  BLEU-3  BLEU-4  CIDEr-D  ROUGE-L  cut off" +
          (synthetic ? "  scenes right  pointing  mass in box" : "") +
          "   (BLEU, ROUGE-L ×100)",
      );
      for (const [k, m] of Object.entries(report.beam)) {
        const f = (x: number) => x.toFixed(1).padStart(6);
        let line = `${k.padStart(4)}  ${f(m.bleu1)}  ${f(m.bleu2)}  ${f(m.bleu3)}  ${f(m.bleu4)}  ${m.cider.toFixed(3).padStart(7)}  ${f(m.rougeL)}  ${(100 * m.cutOff).toFixed(1).padStart(6)}%`;
        if (m.attention) {
          line +=
            `  ${(100 * m.sceneAccuracy!).toFixed(1).padStart(11)}%  ${(100 * m.attention.pointing).toFixed(1).padStart(7)}%  ` +
            `${m.attention.massInBox.toFixed(3)} (uniform ${m.attention.uniformMass.toFixed(3)})`;
        }
        console.log(line + `   ${m.seconds.toFixed(0)} s`);
      }
      const refs = Object.values(report.beam)[0]?.referencesCutOff ?? 0;
      console.log(`cut off: captions that stop mid-phrase ("… in a red"); the references: ${(100 * refs).toFixed(1)}%`);
      const tag = v.consensus ? "-consensus" : "";
      console.log(
        `captions: ${path.join(outDir, `captions-${v.split}-beam<k>${tag}.json`)}; metrics: ${path.join(outDir, `metrics-${v.split}${tag}.json`)}`,
      );
    } finally {
      model.dispose();
    }
  },
});

/**
 * The files `caption --heatmap FILE` writes for `images` (several: FILE-1.png, …), refused before any work when one
 * would replace an input photo or a file that is not an earlier attention map.
 */
export function heatmapFiles(heatmap: string, images: readonly string[]): string[] {
  const files = images.length === 1 ? [heatmap] : images.map((_, i) => heatmap.replace(/(\.png)?$/i, `-${i + 1}.png`));
  const inputs = new Set(images.map((im) => path.resolve(im)));
  for (const f of files) {
    if (inputs.has(path.resolve(f)))
      throw new Error(`--heatmap ${heatmap} would write ${f} over the input image ${f}: choose another name`);
    if (fs.existsSync(f) && !isHeatmapPng(f))
      throw new Error(
        `--heatmap ${heatmap}: ${f} exists and is not an attention map written by caption: nothing was replaced; choose another name or move it`,
      );
  }
  return files;
}

export const caption = defineCommand({
  name: "caption",
  summary: "Caption any image end to end (ResNet-50 → attention decoder), with one attention map per word.",
  positionals: "IMAGE...",
  flags: {
    ...CAPTIONER_FLAG,
    beam: { type: "int", default: 3, help: "beam width (1 = greedy)" },
    "max-len": { type: "int", default: 20, help: "longest caption in words" },
    "length-penalty": { type: "number", default: 0, help: "beam search's length normalisation α (0: none)" },
    ...CONSENSUS_FLAG,
    "data-dir": {
      type: "string",
      placeholder: "DIR",
      help: `with --consensus: the data folder of the train captions (default: those a checkpoint stores, ${CONSENSUS_FILE})`,
    },
    heatmap: {
      type: "string",
      placeholder: "FILE.png",
      help: "write the attention of every word over the image (several images: FILE-1.png, …)",
    },
    json: { type: "boolean", help: "print captions, words and attention as JSON" },
  },
  async run(v, images) {
    if (images.length === 0) throw new Error("caption needs one or more image files (attend-tell caption --help)");
    const heatmaps = v.heatmap ? heatmapFiles(v.heatmap, images) : [];
    const checkpoints = captionerCheckpoints(v.checkpoint, "caption");
    // the document frequencies: --data-dir's train captions, else those a member stores (export --consensus-data)
    const stored = v.consensus && !v["data-dir"] ? checkpoints.map(storedCider).find((c) => c) : undefined;
    if (v.consensus && !v["data-dir"] && !stored)
      throw new Error(
        "caption --consensus needs --data-dir DIR: its train captions give CIDEr-D its document frequencies " +
          `(no checkpoint given stores them in ${CONSENSUS_FILE})`,
      );
    await initBackend({ quiet: v.json });
    ensureWeights();
    const model = await loadCaptioner(checkpoints);
    const cider = v.consensus ? (stored ?? trainCider(v["data-dir"]!, model.vocab)) : undefined;
    const encoder = await EncoderCNN.load({ map: decoderFeatureMap(model.checkpoints[0].decoder.config) });
    const results = [];
    try {
      for (const image of images) {
        const x = await EncoderCNN.loadBatch([image]);
        const f = encoder.encode(x);
        let g = await beamSearch(model.decoder, f, v.beam, v["max-len"], v["length-penalty"]);
        tf.dispose([x, f]);
        if (cider) g = byConsensus(g, cider, model.vocab);
        const words = model.vocab.decode(g.ids);
        let heatmap: string | undefined;
        if (v.heatmap) {
          heatmap = heatmaps[results.length];
          fs.mkdirSync(path.dirname(path.resolve(heatmap)), { recursive: true });
          writeFileAtomic(heatmap, await attentionPng(image, words, g.alphas));
        }
        const attention = g.alphas.map((a) => a.map((x) => Number(x.toFixed(5))));
        results.push({ image, caption: words.join(" "), words, attention, ...(heatmap ? { heatmap } : {}) });
      }
    } finally {
      model.dispose();
    }
    if (v.json) console.log(JSON.stringify(results.length === 1 ? results[0] : results));
    else
      for (const r of results)
        console.log(`${r.image}: ${r.caption}` + (r.heatmap ? `   (attention: ${r.heatmap})` : ""));
  },
});

export const report = defineCommand({
  name: "report",
  summary: "Write runs/NAME/report.html: loss charts, metrics, an attention gallery.",
  flags: {
    run: { type: "string", placeholder: "runs/NAME", help: "the folder given to train --out" },
    split: {
      type: "string",
      choices: ["dev", "test"],
      help: "whose metrics and captions (default: what was evaluated)",
    },
    gallery: { type: "int", default: 6, help: "images in the attention gallery" },
  },
  async run(v) {
    requireFlags("report", v, "run");
    console.log(await writeReport(v.run!, { split: v.split, gallery: v.gallery }));
  },
});

export const exportCmd = defineCommand({
  name: "export",
  summary:
    "Copy a checkpoint (captioning or matching) as weights only — float16, no optimizer state, every file's sha256 " +
    "in checkpoint.json — as the models under models/ are shipped.",
  flags: {
    checkpoint: { type: "string", placeholder: "DIR", help: "checkpoint folder to export" },
    out: { type: "string", placeholder: "DIR", help: "folder to write (e.g. models/NAME)" },
    float32: { type: "boolean", help: "keep float32 weights" },
    "consensus-data": {
      type: "string",
      placeholder: "DIR",
      help: `a captioner: store the document frequencies of DIR's train captions (${CONSENSUS_FILE}), so that caption --consensus needs no data folder`,
    },
    overwrite: { type: "boolean", help: "replace an existing export in --out (its MODEL.md is kept)" },
  },
  async run(v) {
    requireFlags("export", v, "checkpoint", "out");
    if (fs.existsSync(path.join(v.out!, "checkpoint.json")) && !v.overwrite) {
      throw new Error(`${v.out} already holds a checkpoint: add --overwrite to replace it`);
    }
    if (v.overwrite && fs.existsSync(v.out!) && !fs.existsSync(path.join(v.out!, "checkpoint.json")))
      throw new Error(`export --overwrite: ${v.out} holds no export to replace; choose a new folder`);
    await initBackend({ quiet: true });
    let extra: Record<string, unknown> | undefined;
    if (v["consensus-data"]) {
      const ck = await loadCheckpoint(v.checkpoint!); // a captioner's, or an error naming the format
      ck.decoder.dispose();
      extra = { [CONSENSUS_FILE]: trainCider(v["consensus-data"], ck.vocab).toJSON() };
    }
    // a model card written by hand beside an earlier export survives its replacement
    const card = path.join(v.out!, "MODEL.md");
    const kept = v.overwrite && fs.existsSync(card) ? fs.readFileSync(card) : undefined;
    const meta = await exportCheckpoint(v.checkpoint!, v.out!, { float16: !v.float32, extra, overwrite: v.overwrite });
    if (kept) writeFileAtomic(card, kept);
    console.log(
      `exported ${v.checkpoint} (epoch ${meta.epoch}) to ${v.out}, weights only${v.float32 ? "" : ", float16"}; sha256:`,
    );
    for (const [f, sum] of Object.entries(meta.files ?? {})) console.log(`  ${sum}  ${f}`);
  },
});

/**
 * A flag as the user must type it: run as `npm start`, npm takes `--resume` for itself, so the hint says
 * `npm start -- --resume` (else a user who follows it loops on the same message).
 */
export function npmFlag(name: string): string {
  return process.env.npm_lifecycle_event === "start" ? `npm start -- --${name}` : `--${name}`;
}

export const start = defineCommand({
  name: "start",
  summary:
    "The main job (npm start): data → ResNet-50 features → vocabulary → training → evaluation → report, on the " +
    "synthetic scenes unless --data flickr8k or FLICKR8K_DIR.",
  flags: {
    data: {
      type: "string",
      choices: ["synthetic", "flickr8k"],
      help: "data set (default synthetic, or flickr8k when FLICKR8K_DIR is set)",
    },
    "data-dir": {
      type: "string",
      placeholder: "DIR",
      help: "data folder (default: FLICKR8K_DIR, else data/flickr8k)",
    },
    out: { type: "string", placeholder: "runs/NAME", help: "run folder (default runs/<data>)" },
    "batch-size": { type: "int", default: 64, help: "captions per step" },
    epochs: {
      type: "int",
      help: `epochs (default: ${MAIN_JOB_EPOCHS.synthetic} on synthetic, ${MAIN_JOB_EPOCHS.quick} at the quick size, ${MAIN_JOB_EPOCHS.flickr8k} on flickr8k)`,
    },
    seed: { type: "int", help: "the training's random seed: weights, batch order, dropout (default 1)" },
    resume: { type: "boolean", help: "continue the run in --out" },
    overwrite: { type: "boolean", help: "replace the run in --out" },
    ...FEATURE_MAP_FLAGS,
    layer: {
      ...FEATURE_MAP_FLAGS.layer,
      help: `${FEATURE_MAP_FLAGS.layer.help}. Without --grid and --layer: conv4 on grid 7 on the synthetic scenes, conv5 on flickr8k`,
    },
    ...START_REGION_LAYER_FLAGS,
    ...SKIP_FLAGS,
  },
  async run(v) {
    const data = (v.data ?? (process.env.FLICKR8K_DIR ? "flickr8k" : "synthetic")) as "synthetic" | "flickr8k";
    let dataDir = v["data-dir"];
    if (!dataDir && data === "flickr8k") {
      dataDir = flickr8kDir();
      if (!dataDir) throw new Error("--data flickr8k: no Flickr8k found; set FLICKR8K_DIR or pass --data-dir");
    }
    const out = v.out ?? path.join(projectRoot(), "runs", data);
    const release = claimRunDir(out, path.join(out, "checkpoint"), {
      resume: v.resume,
      overwrite: v.overwrite,
      log: (l) => console.log(l),
      what: `start --out ${out}`,
      flag: npmFlag,
    });
    try {
      await runPipeline({
        data,
        dataDir,
        out,
        batchSize: v["batch-size"],
        epochs: v.epochs,
        seed: v.seed,
        map: v.grid === undefined && v.layer === undefined ? undefined : featureMap(v), // else the data set's
        ...regionLayerConfig(v),
        quick: quickMode(),
        skipMissing: v["skip-missing"],
        skipBad: v["skip-bad"],
        resume: v.resume,
      });
    } finally {
      release();
    }
  },
});
