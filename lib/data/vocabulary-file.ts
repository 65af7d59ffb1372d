/**
 * The vocabulary on disk: vocab.json (versioned, written atomically) and the committed Flickr8k word counts. Apart
 * from lib/data/vocabulary.ts so that the vocabulary itself runs in a web page.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Vocabulary } from "./vocabulary";
import { readJson, sha256File, writeJsonAtomic } from "../util/io";
import { projectRoot } from "../util/paths";

/** Writes `vocab` as versioned JSON, atomically. */
export function saveVocabulary(vocab: Vocabulary, file: string): void {
  writeJsonAtomic(file, vocab.toJSON());
}

/** The vocabulary in `file`, or a one-line error naming the file. */
export function loadVocabulary(file: string): Vocabulary {
  if (!fs.existsSync(file)) throw new Error(`vocabulary file ${file} does not exist`);
  return Vocabulary.fromJSON(readJson(file, "vocabulary file"), `vocabulary file ${file}`);
}

/**
 * Flickr8k's train-split word counts (6,000 images, 30,000 captions, tokenised as `tokenize` does), committed so
 * that the threshold lesson of notebook 01 shows a natural language's long tail on machines without Flickr8k
 * (the synthetic captions use a few dozen words, each hundreds of times). Counts only: no caption text.
 * Written by `npx tsx scripts/word-counts.ts DATA_DIR`; its sha256 is checked on every read.
 */
export const FLICKR8K_WORD_COUNTS = path.join(projectRoot(), "data", "flickr8k-train-word-counts.json");
export const FLICKR8K_WORD_COUNTS_SHA256 = "d99da32ff5e2d2d83e6cc7f56fcd4fdddcc47a3466dd1fc9af8d14bbd1dddda4";

export function readWordCounts(file = FLICKR8K_WORD_COUNTS, sha256 = FLICKR8K_WORD_COUNTS_SHA256): [string, number][] {
  const actual = sha256File(file);
  if (actual !== sha256) throw new Error(`${file} is damaged: sha256 ${actual}, expected ${sha256}`);
  const j = readJson<{ format: string; counts: [string, number][] }>(file, "word counts file");
  if (j.format !== "attend-tell/word-counts") throw new Error(`${file} is not a word counts file`);
  return j.counts;
}

