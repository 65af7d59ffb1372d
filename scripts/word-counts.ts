/**
 * Writes data/flickr8k-train-word-counts.json: the word counts of Flickr8k's train captions (lib/data countWords),
 * what notebook 01's threshold lesson charts where Flickr8k is absent. Prints the sha256 to put in
 * lib/data/vocabulary.ts (FLICKR8K_WORD_COUNTS_SHA256).
 *   npx tsx scripts/word-counts.ts [DATA_DIR, default FLICKR8K_DIR or data/flickr8k]
 */
import { FLICKR8K_WORD_COUNTS, countWords, trainCaptions } from "../lib/data";
import { sha256File, writeFileAtomic } from "../lib/util";

const dataDir = process.argv[2] ?? process.env.FLICKR8K_DIR ?? "data/flickr8k";
const captions = trainCaptions(dataDir);
const counts = countWords(captions);
const body = {
  format: "attend-tell/word-counts",
  version: 1,
  source: "Flickr8k train split (Flickr_8k.trainImages.txt), tokenised by lib/data/tokenizer.ts",
  captions: captions.length,
  counts,
};
// one [word, count] pair per line: small diffs when the tokenizer changes
const text = `{\n${Object.entries(body)
  .filter(([k]) => k !== "counts")
  .map(([k, v]) => ` ${JSON.stringify(k)}: ${JSON.stringify(v)},`)
  .join("\n")}\n "counts": [\n${counts.map((c) => `  ${JSON.stringify(c)}`).join(",\n")}\n ]\n}\n`;
writeFileAtomic(FLICKR8K_WORD_COUNTS, text);
console.log(
  `${FLICKR8K_WORD_COUNTS}: ${counts.length} words of ${captions.length} captions; sha256 ${sha256File(FLICKR8K_WORD_COUNTS)}`,
);
