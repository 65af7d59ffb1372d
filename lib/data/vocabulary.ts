/**
 * The seed's `Vocabulary`: word ↔ id maps built from the training captions, with the four reserved ids
 * `<PAD>=0 <SOS>=1 <EOS>=2 <UNK>=3`. A word gets an id when it occurs at least `freqThreshold` times
 * (default 5, as in the seed); rarer words map to `<UNK>`. Ids after the reserved four go by frequency,
 * most frequent first (ties alphabetical), so the same captions always give the same vocabulary.
 */
import { tokenize } from "./tokenizer";

export const PAD = 0;
export const SOS = 1;
export const EOS = 2;
export const UNK = 3;
export const SPECIAL_TOKENS = ["<PAD>", "<SOS>", "<EOS>", "<UNK>"] as const;

export const VOCABULARY_FORMAT = "attend-tell/vocabulary";
export const VOCABULARY_VERSION = 1;

interface VocabularyJSON {
  format: string;
  version: number;
  freqThreshold: number;
  itos: string[];
  /** Training-caption count of each word in itos (0 for the reserved tokens). */
  counts: number[];
}

export class Vocabulary {
  readonly itos: readonly string[];
  readonly counts: readonly number[];
  readonly freqThreshold: number;
  private readonly stoi: Map<string, number>;

  constructor(itos: string[], freqThreshold: number, counts?: number[]) {
    SPECIAL_TOKENS.forEach((t, i) => {
      if (itos[i] !== t) throw new Error(`Vocabulary: id ${i} must be ${t}, got ${JSON.stringify(itos[i])}`);
    });
    this.itos = itos;
    this.counts = counts ?? itos.map(() => 0);
    this.freqThreshold = freqThreshold;
    this.stoi = new Map(itos.map((w, i) => [w, i]));
    if (this.stoi.size !== itos.length) throw new Error("Vocabulary: duplicate words in itos");
  }

  /**
   * How `other` numbers the words differently from this vocabulary ("id 7 is "dog", not "cat""), or undefined when
   * they are the same word for word: a model's ids mean nothing under another numbering.
   */
  difference(other: Vocabulary): string | undefined {
    const i = other.itos.findIndex((w, j) => w !== this.itos[j]);
    if (i >= 0) return `id ${i} is ${JSON.stringify(other.itos[i])}, not ${JSON.stringify(this.itos[i])}`;
    if (other.size !== this.size) return `${other.size} ids, not ${this.size}`;
    return undefined;
  }

  /** Number of ids, reserved ones included: the decoder's output size. */
  get size(): number {
    return this.itos.length;
  }

  static tokenize(text: string): string[] {
    return tokenize(text);
  }

  /** Id of a word (already tokenised); `<UNK>` when it is not in the vocabulary. */
  id(word: string): number {
    return this.stoi.get(word) ?? UNK;
  }

  has(word: string): boolean {
    return this.stoi.has(word);
  }

  /** Text (or tokens) → ids, without `<SOS>`/`<EOS>`; unknown words → `<UNK>`. */
  numericalize(text: string | readonly string[]): number[] {
    const tokens = typeof text === "string" ? tokenize(text) : text;
    return tokens.map((w) => this.id(w));
  }

  /** `<SOS>` ids… `<EOS>`: what the decoder is trained on. */
  encode(text: string | readonly string[]): number[] {
    return [SOS, ...this.numericalize(text), EOS];
  }

  /** Ids → words, skipping `<PAD>`/`<SOS>` and stopping at the first `<EOS>`. */
  decode(ids: Iterable<number>): string[] {
    const words: string[] = [];
    for (const id of ids) {
      if (id === EOS) break;
      if (id === PAD || id === SOS) continue;
      const w = this.itos[id];
      if (w === undefined) throw new Error(`Vocabulary.decode: id ${id} is outside 0..${this.size - 1}`);
      words.push(w);
    }
    return words;
  }

  toJSON(): VocabularyJSON {
    return {
      format: VOCABULARY_FORMAT,
      version: VOCABULARY_VERSION,
      freqThreshold: this.freqThreshold,
      itos: [...this.itos],
      counts: [...this.counts],
    };
  }

  static fromJSON(json: unknown, source = "vocabulary"): Vocabulary {
    const j = json as Partial<VocabularyJSON>;
    if (j?.format !== VOCABULARY_FORMAT) {
      throw new Error(`${source} is not an attend-tell vocabulary (format ${JSON.stringify(j?.format)})`);
    }
    if (j.version !== VOCABULARY_VERSION) {
      throw new Error(
        `${source} has vocabulary format version ${j.version}; this attend-tell reads version ${VOCABULARY_VERSION}` +
          " — rebuild it with `attend-tell vocab`",
      );
    }
    if (!Array.isArray(j.itos) || typeof j.freqThreshold !== "number") throw new Error(`${source}: itos/freqThreshold missing`);
    return new Vocabulary(j.itos, j.freqThreshold, j.counts);
  }
}

/** Word counts over tokenised captions, most frequent first (ties alphabetical). */
export function countWords(captions: Iterable<string | readonly string[]>): [string, number][] {
  const counts = new Map<string, number>();
  for (const c of captions) {
    for (const w of typeof c === "string" ? tokenize(c) : c) counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** The vocabulary of words occurring at least `freqThreshold` times. Pass the **train** captions only. */
export function buildVocabulary(captions: Iterable<string | readonly string[]>, freqThreshold = 5): Vocabulary {
  if (!(freqThreshold >= 1)) throw new Error(`buildVocabulary: freqThreshold must be ≥ 1, got ${freqThreshold}`);
  const kept = countWords(captions).filter(([w, n]) => n >= freqThreshold && !SPECIAL_TOKENS.includes(w as never));
  return new Vocabulary(
    [...SPECIAL_TOKENS, ...kept.map(([w]) => w)],
    freqThreshold,
    [0, 0, 0, 0, ...kept.map(([, n]) => n)],
  );
}

/** Vocabulary size for each threshold, from one count: what notebook 01 charts. */
export function vocabularySizes(counts: [string, number][], thresholds: number[]): number[] {
  return thresholds.map((t) => SPECIAL_TOKENS.length + counts.filter(([, n]) => n >= t).length);
}
