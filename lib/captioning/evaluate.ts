/**
 * Evaluation of a trained captioner on a split: captions generated for every image (greedy for beam 1, beam
 * search otherwise — never teacher-forced), scored against the split's reference captions with BLEU-1…4,
 * CIDEr-D and ROUGE-L (lib/captioning/metrics.ts). On synthetic scenes it also measures what no other captioning project
 * does: whether the attention of each generated object word falls on that object (lib/captioning/synthetic-eval.ts).
 * With `consensus`, each beam's caption is the one its other candidates agree with most (generate.ts
 * `consensusCaption`, CIDEr-D with the train references' document frequencies) instead of the likeliest.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { decoderFeatureMap } from "../encoder/feature-maps";
import { Split } from "../data/captions";
import { cachedSplit } from "../encoder/features";
import { CONSENSUS_FILE, Captioner, SENTENCE_END, captionerMembers, consensusCider } from "./generate";
import { captionImages } from "./caption-images";
import { readJson, writeJsonAtomic } from "../util/io";
import { CheckpointMeta, verifyCheckpointFiles } from "../util/checkpoint";
import { CaptionMetrics, CiderD, captionMetrics } from "./metrics";
import { Progress } from "../util/progress";
import { BOXES_FILE, readBoxes } from "../data/synthetic";
import { AttentionScore, attentionCorrectness, captionCorrect } from "./synthetic-eval";
import { tokenize } from "../data/tokenizer";
import { cutOffRate } from "./endings";
import { Vocabulary } from "../data/vocabulary";
import { FlickrDataset } from "../data/dataset";

export interface BeamResult extends CaptionMetrics {
  /** Captions cut off mid-phrase (endings.ts `isCutOff`), and the same share among the split's references. */
  cutOff: number;
  referencesCutOff: number;
  /** Synthetic scenes only: captions naming exactly the scene's objects, and attention on the named objects. */
  sceneAccuracy?: number;
  attention?: AttentionScore;
  seconds: number;
}

export interface EvaluationReport {
  split: Split;
  /** Where the images are (for reports). */
  dataDir: string;
  n_images: number;
  /** Images of the split skipped: no photo (skipMissing) or one that cannot be decoded (skipBad). */
  skipped: number;
  /** Which, and why. */
  skippedImages?: { image: string; why: string }[];
  beam: Record<string, BeamResult>;
  /** Beam search's captions chosen by consensus (`EvaluateOptions.consensus`), not by likelihood. */
  consensus?: boolean;
}

export interface GeneratedCaption {
  image: string;
  caption: string;
  words: string[];
  /** One 49-vector per word. */
  attention: number[][];
  references: string[];
}

export interface EvaluateOptions {
  /** One decoder, or an ensemble (generate.ts `Captioner`). */
  decoder: Captioner;
  vocab: Vocabulary;
  dataDir: string;
  split: Split;
  featuresDir: string;
  beams: number[];
  skipMissing?: boolean;
  /** Leave out photos that cannot be decoded (named in the report) instead of failing. */
  skipBad?: boolean;
  maxLen?: number;
  /** GNMT's length penalty α for beam search (generate.ts beamScore); 0: plain log-probability. */
  lengthPenalty?: number;
  /** Only the split's first `limit` images (notebooks, quick looks). */
  limit?: number;
  /**
   * Beam widths > 1: of each image's candidates, the caption the others agree with most (minimum Bayes risk with
   * CIDEr-D, document frequencies of the data folder's train captions) instead of the likeliest.
   */
  consensus?: boolean;
  /** Writes `captions-<split>-beam<k>.json` here (`…-beam<k>-consensus.json` with `consensus`). */
  outDir?: string;
  quiet?: boolean;
}

export async function evaluate(
  o: EvaluateOptions,
): Promise<{ report: EvaluationReport; captions: Record<string, GeneratedCaption[]> }> {
  // Features of the split's images (computed now for any the cache lacks, e.g. a split not trained on).
  const {
    dataset: ds,
    images,
    cache,
    skipped,
  } = await cachedSplit({
    dataDir: o.dataDir,
    split: o.split,
    vocab: o.vocab,
    featuresDir: o.featuresDir,
    map: decoderFeatureMap(captionerMembers(o.decoder)[0].config),
    skipMissing: o.skipMissing,
    skipBad: o.skipBad,
    limit: o.limit,
    quiet: true,
  });
  if (images.length === 0) {
    cache.close();
    throw new Error(`no ${o.split} images with photos in ${o.dataDir}`);
  }
  const references = images.map((im) => ds.captionsOf(im).map(tokenize));
  const referencesCutOff = cutOffRate(references.flat()); // the same for every beam
  const synthetic = fs.existsSync(path.join(o.dataDir, BOXES_FILE)) ? readBoxes(o.dataDir) : undefined;
  const report: EvaluationReport = {
    split: o.split,
    dataDir: path.resolve(o.dataDir),
    n_images: images.length,
    skipped: skipped.length,
    skippedImages: skipped,
    beam: {},
    ...(o.consensus ? { consensus: true } : {}),
  };
  const captions: Record<string, GeneratedCaption[]> = {};
  try {
    const consensus = o.consensus ? { cider: trainCider(o.dataDir, o.vocab), vocab: o.vocab } : undefined;
    for (const k of o.beams) {
      if (!Number.isInteger(k) || k < 1) throw new Error(`beam sizes must be integers ≥ 1; got ${k}`);
      const bar = o.quiet ? undefined : new Progress(images.length, `${o.split} beam ${k}`, "img");
      const t0 = Date.now();
      const gen = await captionImages(o.decoder, cache, images, k, {
        maxLen: o.maxLen,
        lengthPenalty: o.lengthPenalty,
        onImage: () => bar?.tick(),
        consensus,
      });
      const words = gen.map((g) => o.vocab.decode(g.ids));
      const result: BeamResult = {
        ...captionMetrics(words, references),
        cutOff: cutOffRate(words),
        referencesCutOff,
        seconds: (Date.now() - t0) / 1000,
      };
      if (synthetic) {
        result.sceneAccuracy =
          images.filter((im, i) => captionCorrect(words[i], synthetic[im] ?? [])).length / images.length;
        result.attention = attentionCorrectness(
          images.map((im, i) => ({ words: words[i], alphas: gen[i].alphas, objects: synthetic[im] ?? [] })),
        );
      }
      report.beam[String(k)] = result;
      captions[String(k)] = images.map((image, i) => ({
        image,
        caption: words[i].join(" "),
        words: words[i],
        attention: gen[i].alphas.map((a) => a.map((v) => Number(v.toFixed(5)))),
        references: ds.captionsOf(image),
      }));
      const file = `captions-${o.split}-beam${k}${o.consensus && k > 1 ? "-consensus" : ""}.json`;
      if (o.outDir) writeJsonAtomic(path.join(o.outDir, file), captions[String(k)]);
    }
  } finally {
    cache.close();
  }
  return { report, captions };
}

/**
 * The CIDEr-D scorer of a split's references (document frequencies over all of them), and the tokens per image:
 * self-critical training's reward, and consensus decoding's gain (with the train split's, each reference ended
 * with SENTENCE_END: `sentenceEnd`).
 */
export function referenceScorer(
  data: { dataset: FlickrDataset },
  opts: { sentenceEnd?: boolean } = {},
): {
  cider: CiderD;
  references: (image: string) => string[][];
} {
  const ended = (w: string[]) => (opts.sentenceEnd ? [...w, SENTENCE_END] : w);
  const tokens = new Map(
    data.dataset.images.map((im) => [im, data.dataset.captionsOf(im).map((c) => ended(tokenize(c)))]),
  );
  return { cider: new CiderD([...tokens.values()]), references: (im) => tokens.get(im) ?? [] };
}

/**
 * The train captions' document frequencies stored with a checkpoint, as a scorer for consensus decoding — verified
 * against the sha256 its checkpoint.json lists; undefined when it stores none.
 */
export function storedCider(dir: string): CiderD | undefined {
  const meta = readJson<CheckpointMeta<unknown>>(path.join(dir, "checkpoint.json"), "checkpoint");
  const sum = meta.files?.[CONSENSUS_FILE];
  if (!sum) return undefined;
  verifyCheckpointFiles(dir, { [CONSENSUS_FILE]: sum });
  const file = path.join(dir, CONSENSUS_FILE);
  return consensusCider(readJson(file, "document frequencies"), file);
}

/** CIDEr-D with the document frequencies of `dataDir`'s train captions (what consensus decoding scores with). */
export function trainCider(dataDir: string, vocab: Vocabulary): CiderD {
  const dataset = new FlickrDataset({ dataDir, split: "train", vocab, onMissing: "skip" });
  if (dataset.images.length === 0)
    throw new Error(`consensus decoding needs the train captions of ${dataDir}: none found`);
  return referenceScorer({ dataset }, { sentenceEnd: true }).cider;
}
