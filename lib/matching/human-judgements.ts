/**
 * How well a matching model's scores agree with people: Flickr8k's `ExpertAnnotations.txt` (Hodosh et al.
 * 2013) has 5,822 (image, caption) pairs, each judged by three experts from 1 (the caption does not describe
 * the image) to 4 (it describes it). The agreement is rank correlation between the model's score and the mean
 * expert judgement: Kendall's τ-b (ties counted as in scipy.stats.kendalltau) and Spearman's ρ (average ranks).
 */
import * as fs from "node:fs";
import * as path from "node:path";

export const EXPERT_FILE = "ExpertAnnotations.txt";

export interface Judgement {
  image: string;
  /** `<image>#<n>`: the n-th caption (from 0) of that image in the caption file. */
  captionId: string;
  scores: number[];
  line: number;
}

/** The expert judgements of a data folder, with errors naming the file and line. */
export function readExpertAnnotations(file: string): Judgement[] {
  if (!fs.existsSync(file)) throw new Error(`${file} does not exist (Flickr8k_text ships ${EXPERT_FILE})`);
  const out: Judgement[] = [];
  fs.readFileSync(file, "utf8")
    .split(/\r?\n/)
    .forEach((text, i) => {
      if (text.trim() === "") return;
      const f = text.trim().split(/\t/);
      const where = `${file}:${i + 1}`;
      if (f.length < 3)
        throw new Error(
          `${where}: expected image, caption id and judgements separated by tabs; got ${JSON.stringify(text.slice(0, 80))}`,
        );
      if (!/#\d+$/.test(f[1])) throw new Error(`${where}: caption id ${JSON.stringify(f[1])} is not <image>#<n>`);
      const scores = f.slice(2).map(Number);
      const bad = scores.find((s) => !Number.isInteger(s) || s < 1 || s > 4);
      if (bad !== undefined) throw new Error(`${where}: judgement ${bad} is not an integer from 1 to 4`);
      out.push({ image: f[0], captionId: f[1], scores, line: i + 1 });
    });
  return out;
}

/** Ranks from 1, ties given their average rank. */
export function averageRanks(x: readonly number[]): number[] {
  const order = x.map((_, i) => i).sort((a, b) => x[a] - x[b]);
  const ranks = new Array<number>(x.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && x[order[j + 1]] === x[order[i]]) j++;
    for (let k = i; k <= j; k++) ranks[order[k]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return ranks;
}

function pearson(x: readonly number[], y: readonly number[]): number {
  const n = x.length;
  const mx = x.reduce((a, b) => a + b, 0) / n,
    my = y.reduce((a, b) => a + b, 0) / n;
  let sxy = 0,
    sxx = 0,
    syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
    syy += (y[i] - my) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}

/** Spearman's ρ: Pearson's correlation of the average ranks. */
export function spearman(x: readonly number[], y: readonly number[]): number {
  checkPaired(x, y);
  return pearson(averageRanks(x), averageRanks(y));
}

/** Kendall's τ-b = (concordant − discordant) / √((n₀ − n₁)(n₀ − n₂)), ties in x (n₁) and in y (n₂) excluded. O(n²). */
export function kendallTauB(x: readonly number[], y: readonly number[]): number {
  checkPaired(x, y);
  let s = 0,
    tx = 0,
    ty = 0,
    pairs = 0;
  for (let i = 0; i < x.length; i++) {
    for (let j = i + 1; j < x.length; j++) {
      const a = Math.sign(x[i] - x[j]),
        b = Math.sign(y[i] - y[j]);
      pairs++;
      if (a === 0) tx++;
      if (b === 0) ty++;
      s += a * b;
    }
  }
  return s / Math.sqrt((pairs - tx) * (pairs - ty));
}

function checkPaired(x: readonly number[], y: readonly number[]) {
  if (x.length !== y.length) throw new Error(`rank correlation: ${x.length} values against ${y.length}`);
  if (x.length < 2) throw new Error("rank correlation needs at least 2 pairs");
}

/**
 * The judged pairs whose image is available and whose caption is in the caption file, with the caption text
 * and the mean judgement; the others counted by reason.
 */
export function judgedPairs(
  dataDir: string,
  captionsOf: (image: string) => readonly string[],
  available: (image: string) => boolean,
): {
  pairs: { image: string; caption: string; human: number }[];
  missingImage: number;
  missingCaption: number;
  file: string;
} {
  const file = path.join(dataDir, EXPERT_FILE);
  const pairs: { image: string; caption: string; human: number }[] = [];
  let missingImage = 0,
    missingCaption = 0;
  for (const j of readExpertAnnotations(file)) {
    const hash = j.captionId.lastIndexOf("#");
    const capImage = j.captionId.slice(0, hash),
      n = Number(j.captionId.slice(hash + 1));
    const caption = captionsOf(capImage)[n];
    if (caption === undefined) missingCaption++;
    else if (!available(j.image)) missingImage++;
    else pairs.push({ image: j.image, caption, human: j.scores.reduce((a, b) => a + b, 0) / j.scores.length });
  }
  return { pairs, missingImage, missingCaption, file };
}
