/**
 * Captioning metrics, computed exactly as the COCO caption evaluation code (pycocoevalcap) computes them, on
 * captions that are already tokenised (arrays of words):
 * - BLEU-1…4 (Papineni et al. 2002) at corpus level: clipped n-gram counts summed over all images, the
 *   effective reference length of each image the one closest to its candidate's length (ties: the shorter,
 *   as its `Bleu` wrapper's option "closest"), one brevity penalty for the corpus, and pycocoevalcap's
 *   epsilons (1e-15 added to matches, 1e-9 to guesses) so that a zero count gives ~0 rather than an error.
 * - CIDEr-D (Vedantam et al. 2015) as pycocoevalcap's `Cider`: TF-IDF n-gram vectors (n = 1…4) with document
 *   frequencies over the evaluated images' references, candidate weights clipped at the reference's,
 *   a Gaussian length penalty exp(−δ²/2σ²) with σ = 6 (δ counted, as there, in bigrams), mean over n and over
 *   references, ×10.
 * - ROUGE-L (Lin 2004) as pycocoevalcap's: LCS precision and recall against each reference, the best of each,
 *   F-measure with β = 1.2, mean over images.
 * pycocoevalcap first runs the PTB tokenizer, lower-casing and dropping punctuation; here captions are tokenised
 * by lib/data/tokenizer.ts (PTB conventions, as pycocoevalcap: lower case, clitics split, punctuation dropped).
 * Scales: BLEU and ROUGE-L are reported ×100 (0–100), CIDEr-D on pycocoevalcap's scale (×10 included).
 */

type Counts = Map<string, number>;

/** Counts of all n-grams, n = 1…maxN, keyed "n|w1 w2 …". */
function ngramCounts(words: readonly string[], maxN = 4): Counts {
  const c: Counts = new Map();
  for (let n = 1; n <= maxN; n++) {
    for (let i = 0; i + n <= words.length; i++) {
      const k = `${n}|${words.slice(i, i + n).join(" ")}`;
      c.set(k, (c.get(k) ?? 0) + 1);
    }
  }
  return c;
}

const order = (key: string) => Number(key.slice(0, key.indexOf("|")));

function checkInputs(
  candidates: readonly (readonly string[])[],
  references: readonly (readonly (readonly string[])[])[],
) {
  if (candidates.length !== references.length)
    throw new Error(`metrics: ${candidates.length} candidates but ${references.length} reference sets`);
  if (candidates.length === 0) throw new Error("metrics: no captions to score");
  references.forEach((r, i) => {
    if (r.length === 0) throw new Error(`metrics: image ${i} has no reference captions`);
  });
}

/** BLEU's sufficient statistics for one caption: clipped n-gram matches and guesses (n = 1…4), lengths. */
export interface BleuCounts {
  correct: number[];
  guess: number[];
  testLen: number;
  /** The reference length closest to the candidate's (ties: the shorter). */
  refLen: number;
}

export function bleuCounts(cand: readonly string[], refs: readonly (readonly string[])[], N = 4): BleuCounts {
  const maxRef: Counts = new Map();
  for (const ref of refs) for (const [k, v] of ngramCounts(ref, N)) maxRef.set(k, Math.max(maxRef.get(k) ?? 0, v));
  const L = cand.length;
  // Python's min over (|l − L|, l) tuples
  const refLen = refs
    .map((r) => r.length)
    .reduce((best, l) =>
      Math.abs(l - L) < Math.abs(best - L) || (Math.abs(l - L) === Math.abs(best - L) && l < best) ? l : best,
    );
  const guess = Array.from({ length: N }, (_, n) => Math.max(0, L - n));
  const correct = new Array(N).fill(0);
  for (const [k, v] of ngramCounts(cand, N)) correct[order(k) - 1] += Math.min(maxRef.get(k) ?? 0, v);
  return { correct, guess, testLen: L, refLen };
}

/** BLEU-1…4 (×100) from summed counts: geometric mean of the n-gram precisions times the brevity penalty. */
export function bleuFromCounts(c: BleuCounts): [number, number, number, number] {
  const tiny = 1e-15,
    small = 1e-9;
  const ratio = (c.testLen + tiny) / (c.refLen + small);
  const bp = ratio < 1 ? Math.exp(1 - 1 / ratio) : 1;
  const out: number[] = [];
  for (let n = 1; n <= 4; n++) {
    let b = 1;
    for (let k = 0; k < n; k++) b *= (c.correct[k] + tiny) / (c.guess[k] + small);
    out.push(100 * b ** (1 / n) * bp);
  }
  return out as [number, number, number, number];
}

/** Corpus BLEU-1…4 (×100): counts summed over all images, then one score. */
export function bleu(
  candidates: readonly (readonly string[])[],
  references: readonly (readonly (readonly string[])[])[],
): [number, number, number, number] {
  checkInputs(candidates, references);
  const total: BleuCounts = { correct: [0, 0, 0, 0], guess: [0, 0, 0, 0], testLen: 0, refLen: 0 };
  candidates.forEach((cand, i) => {
    const c = bleuCounts(cand, references[i]);
    for (let n = 0; n < 4; n++) {
      total.correct[n] += c.correct[n];
      total.guess[n] += c.guess[n];
    }
    total.testLen += c.testLen;
    total.refLen += c.refLen;
  });
  return bleuFromCounts(total);
}

/**
 * CIDEr-D with its document frequencies fixed by a corpus of references: `ciderD` builds it from the references it
 * scores (as pycocoevalcap does); self-critical training builds it once from the train references and scores each
 * sampled caption against its own image's references.
 */
export class CiderD {
  private readonly df = new Map<string, number>();
  private logRefLen: number;

  constructor(
    references: readonly (readonly (readonly string[])[])[],
    readonly sigma = 6,
  ) {
    for (const refs of references) {
      const seen = new Set<string>();
      for (const r of refs) for (const k of ngramCounts(r, 4).keys()) seen.add(k);
      for (const k of seen) this.df.set(k, (this.df.get(k) ?? 0) + 1);
    }
    this.logRefLen = Math.log(references.length);
  }

  /**
   * The document frequencies as JSON: the number of reference sets and each n-gram's count, those in one set only
   * left out (an n-gram in one set or none weighs log |I| alike). What a shipped model stores for consensus decoding.
   */
  toJSON(): CiderDocuments {
    const df: Record<string, number> = {};
    for (const [k, n] of this.df) if (n >= 2) df[k] = n;
    return { format: "attend-tell/cider-df", documents: Math.round(Math.exp(this.logRefLen)), df };
  }

  /** A scorer from `toJSON`'s document frequencies; `source` names the file in errors. */
  static fromJSON(json: unknown, source = "document frequencies", sigma = 6): CiderD {
    const j = json as Partial<CiderDocuments> | null;
    const bad = (why: string) => new Error(`${source}: ${why}`);
    if (j?.format !== "attend-tell/cider-df") throw bad(`not CIDEr-D document frequencies (format ${j?.format})`);
    if (!Number.isInteger(j.documents) || j.documents! < 1) throw bad(`documents must be a positive integer`);
    const cider = new CiderD([], sigma);
    for (const [k, n] of Object.entries(j.df ?? {})) {
      if (!/^[1-4]\|/.test(k) || !Number.isInteger(n) || n < 2 || n > j.documents!)
        throw bad(`bad entry ${JSON.stringify(k)}: ${JSON.stringify(n)}`);
      cider.df.set(k, n);
    }
    cider.logRefLen = Math.log(j.documents!);
    return cider;
  }

  private vec(counts: Counts): { v: Map<string, number>; norm: number[]; length: number } {
    const v = new Map<string, number>();
    const norm = [0, 0, 0, 0];
    let length = 0;
    for (const [k, tf] of counts) {
      const n = order(k) - 1;
      const w = tf * (this.logRefLen - Math.log(Math.max(1, this.df.get(k) ?? 0)));
      v.set(k, w);
      norm[n] += w * w;
      if (n === 1) length += tf; // pycocoevalcap counts the length in bigrams
    }
    return { v, norm: norm.map(Math.sqrt), length };
  }

  /** In how many reference sets the n-gram occurs (as toJSON keeps them: counts of 1 may read as 0). */
  documentFrequency(ngram: readonly string[]): number {
    return this.df.get(`${ngram.length}|${ngram.join(" ")}`) ?? 0;
  }

  /** CIDEr-D of one candidate against its image's references. */
  score(candidate: readonly string[], refs: readonly (readonly string[])[]): number {
    const N = 4;
    const h = this.vec(ngramCounts(candidate, N));
    const score = new Array(N).fill(0);
    for (const ref of refs) {
      const r = this.vec(ngramCounts(ref, N));
      const delta = h.length - r.length;
      const val = new Array(N).fill(0);
      for (const [k, hw] of h.v) {
        const rw = r.v.get(k) ?? 0;
        val[order(k) - 1] += Math.min(hw, rw) * rw;
      }
      for (let n = 0; n < N; n++) {
        // pycocoevalcap divides by the product of norms (NaN when one is 0, which numpy's mean would carry)
        const d = h.norm[n] * r.norm[n];
        score[n] += (d === 0 ? 0 : val[n] / d) * Math.exp(-(delta * delta) / (2 * this.sigma * this.sigma));
      }
    }
    return (10 * score.reduce((a, b) => a + b, 0)) / N / refs.length;
  }
}

/** `CiderD.toJSON`: n-gram keys "n|w1 w2 …" with their document frequencies (≥ 2) over `documents` sets. */
export interface CiderDocuments {
  format: "attend-tell/cider-df";
  documents: number;
  df: Record<string, number>;
}

/** CIDEr-D: mean over images and the per-image scores. */
export function ciderD(
  candidates: readonly (readonly string[])[],
  references: readonly (readonly (readonly string[])[])[],
  sigma = 6,
): { score: number; perImage: number[] } {
  checkInputs(candidates, references);
  const scorer = new CiderD(references, sigma);
  const perImage = candidates.map((cand, i) => scorer.score(cand, references[i]));
  return { score: perImage.reduce((a, b) => a + b, 0) / perImage.length, perImage };
}

/** Length of the longest common subsequence of two word arrays. */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  const prev = new Array(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    let diag = 0;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j];
      prev[j] = a[i - 1] === b[j - 1] ? diag + 1 : Math.max(prev[j], prev[j - 1]);
      diag = up;
    }
  }
  return prev[b.length];
}

/** ROUGE-L (×100): mean over images. */
export function rougeL(
  candidates: readonly (readonly string[])[],
  references: readonly (readonly (readonly string[])[])[],
  beta = 1.2,
): number {
  checkInputs(candidates, references);
  const scores = candidates.map((cand, i) => {
    let p = 0,
      r = 0;
    for (const ref of references[i]) {
      const l = lcsLength(ref, cand);
      p = Math.max(p, cand.length ? l / cand.length : 0);
      r = Math.max(r, ref.length ? l / ref.length : 0);
    }
    return p !== 0 && r !== 0 ? ((1 + beta ** 2) * p * r) / (r + beta ** 2 * p) : 0;
  });
  return (100 * scores.reduce((a, b) => a + b, 0)) / scores.length;
}

export interface CaptionMetrics {
  bleu1: number;
  bleu2: number;
  bleu3: number;
  bleu4: number;
  cider: number;
  rougeL: number;
}

/** All three metrics at once (BLEU and ROUGE-L ×100, CIDEr-D as pycocoevalcap). */
export function captionMetrics(
  candidates: readonly (readonly string[])[],
  references: readonly (readonly (readonly string[])[])[],
): CaptionMetrics {
  const [bleu1, bleu2, bleu3, bleu4] = bleu(candidates, references);
  return {
    bleu1,
    bleu2,
    bleu3,
    bleu4,
    cider: ciderD(candidates, references).score,
    rougeL: rougeL(candidates, references),
  };
}
