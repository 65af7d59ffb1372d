/**
 * Caption generation, never teacher-forced: each step feeds back the word the model chose. Both methods return
 * the words and one attention vector (over the 49 regions) per generated word — what the heatmaps draw.
 * - `greedy`: the most probable word at each step, a whole batch at once.
 * - `sampleCaptions`: each word drawn from the model's distribution (self-critical training's samples).
 * - `beamSearch` (one image) / `beamSearchBatch` (N images, all N·k beams in one step): keeps the k best
 *   partial captions by total log-probability. It always returns a caption: when no beam has emitted `<EOS>` by
 *   `maxLen` (a known crash elsewhere), the best unfinished beam is used.
 * - `consensusCaption`: of the captions a beam search ended, the one the others agree with most (minimum Bayes
 *   risk with CIDEr-D), in place of the likeliest.
 * Greedy decoding and beam search also take an ensemble — several decoders trained on the same vocabulary — which
 * decodes as one model whose word probabilities are the mean of its members' (`ensembleLogProbs`).
 */
import * as tf from "@tensorflow/tfjs";
import { DecoderRNN } from "./decoder";
import { EOS, SOS, SPECIAL_TOKENS, Vocabulary } from "../data/vocabulary";
import { CiderD } from "./metrics";
import { Rng } from "../util/rng";
import type { OnnxDecoder } from "./onnx-decode";

export interface Generated {
  /** Word ids, without `<SOS>`/`<EOS>`. */
  ids: number[];
  /** One α (length R) per id. */
  alphas: number[][];
  /** Σ log p of the chosen words (and of `<EOS>` when it was emitted). */
  logProb: number;
  /** Whether the caption ended with `<EOS>` (false: cut at maxLen). */
  finished: boolean;
  /**
   * Beam search: every caption the search ended (those cut at maxLen when none ended), best first by `beamScore`;
   * this caption is the first. What `consensusCaption` re-ranks.
   */
  candidates?: Generated[];
}

/** One decoder, or an ensemble of decoders sharing a vocabulary and feature map (their probabilities averaged). */
export type Captioner = DecoderRNN | readonly DecoderRNN[];

/** The members of a `Captioner`. */
export const captionerMembers = (c: Captioner): readonly DecoderRNN[] => (Array.isArray(c) ? c : [c as DecoderRNN]);

/**
 * Greedy decoding of a batch of images' features `[B, R, E]`: each row's most probable next word. Its steps run on
 * ONNX Runtime when `onnx` is given (one per member of an ensemble), else on tfjs.
 */
export async function greedy(
  decoder: Captioner,
  features: tf.Tensor3D,
  maxLen = 20,
  onnx?: OnnxDecoder | readonly OnnxDecoder[],
): Promise<Generated[]> {
  const B = features.shape[0];
  const out: Generated[] = Array.from({ length: B }, () => ({ ids: [], alphas: [], logProb: 0, finished: false }));
  const model = await decodeRows(decoder, features, 1, onnx);
  let words = Array<number>(B).fill(SOS);
  try {
    for (let t = 0; t < maxLen && out.some((g) => !g.finished); t++) {
      const { values, indices, alpha } = await model.step(words, 1);
      words = out.map((g, b) => {
        if (g.finished) return EOS;
        g.logProb += values[b];
        if (indices[b] === EOS) g.finished = true;
        else {
          g.ids.push(indices[b]);
          g.alphas.push(alpha[b]);
        }
        return indices[b];
      });
      model.keep();
    }
  } finally {
    model.dispose();
  }
  return out;
}

/** Each row of `t` repeated k times in place: rows i·k … i·k + k − 1 are row i (beams, samples of an image). */
export function repeatRows(t: tf.Tensor3D, k: number): tf.Tensor3D {
  return tf.tidy(() => {
    const rows = Array.from({ length: t.shape[0] * k }, (_, r) => Math.floor(r / k));
    return tf.gather(t, tf.tensor1d(rows, "int32")) as tf.Tensor3D;
  });
}

/**
 * Captions sampled from the model's own distribution (no dropout): `samples` per image of `features` `[N, R, E]`,
 * rows image-major (image i's are i·samples … i·samples + samples − 1). Each word is drawn from the softmax with a
 * seeded generator, so a seed repeats a run on any engine. What self-critical training learns from; its steps run
 * on ONNX Runtime when `onnx` is given (the same draws, tested), else on tfjs.
 */
export async function sampleCaptions(
  decoder: DecoderRNN,
  features: tf.Tensor3D,
  o: { samples: number; seed: number; maxLen?: number; onnx?: OnnxDecoder },
): Promise<Generated[]> {
  const rng = new Rng(o.seed);
  const N = features.shape[0] * o.samples;
  const model = await decodeRows(decoder, features, o.samples, o.onnx);
  const out: Generated[] = Array.from({ length: N }, () => ({ ids: [], alphas: [], logProb: 0, finished: false }));
  let words = Array<number>(N).fill(SOS);
  try {
    for (let t = 0; t < (o.maxLen ?? 20) && out.some((g) => !g.finished); t++) {
      const { values: logp, alpha } = await model.step(words, 0);
      const V = logp.length / N;
      words = out.map((g, r) => {
        // one draw per row and step, finished or not: a row's words never depend on when the others ended
        let u = rng.next();
        if (g.finished) return EOS;
        // inverse CDF of softmax row r
        let w = V - 1;
        for (let v = 0; v < V; v++) {
          u -= Math.exp(logp[r * V + v]);
          if (u <= 0) {
            w = v;
            break;
          }
        }
        g.logProb += logp[r * V + w];
        if (w === EOS) g.finished = true;
        else {
          g.ids.push(w);
          g.alphas.push(alpha[r]);
        }
        return w;
      });
      model.keep();
    }
  } finally {
    model.dispose();
  }
  return out;
}

interface Beam {
  ids: number[];
  alphas: number[][];
  logProb: number;
}

/** Beam search for one image's features `[1, R, E]` (or `[R, E]`) with beam width k. */
export async function beamSearch(
  decoder: Captioner,
  features: tf.Tensor,
  k = 3,
  maxLen = 20,
  lengthPenalty = 0,
): Promise<Generated> {
  const feats = (features.rank === 2 ? features.expandDims(0) : features) as tf.Tensor3D;
  try {
    return (await beamSearchBatch(decoder, feats, k, maxLen, lengthPenalty))[0];
  } finally {
    if (feats !== features) feats.dispose();
  }
}

/**
 * The model's side of decoding N images' rows, `repeat` rows per image (beams, samples): each step takes every
 * row's last word and gives each row's k best next words with their log-probabilities (k = 0: every word's,
 * `[rows, V]`, no indices — what sampling draws from) and the row's α; `keep(rows)` then makes the state rows
 * follow the surviving beams (no argument: each row keeps its own). On tfjs (`DecoderRNN.step`) or on ONNX Runtime
 * (`OnnxDecoder`, the same step as a graph).
 */
interface DecodeRows {
  step(words: number[], k: number): Promise<{ values: Float32Array; indices: Int32Array; alpha: number[][] }>;
  keep(rows?: number[]): void;
  dispose(): void;
}

/**
 * The rows of `features` `[N, R, E]`, each image's `repeat` times, on ONNX Runtime when `onnx` is given, else tfjs;
 * an ensemble's members each decode the rows and `ensembleRows` combines their steps.
 */
async function decodeRows(
  decoder: Captioner,
  features: tf.Tensor3D,
  repeat: number,
  onnx?: OnnxDecoder | readonly OnnxDecoder[],
): Promise<DecodeRows> {
  const members = captionerMembers(decoder);
  const sessions = onnx === undefined ? undefined : Array.isArray(onnx) ? onnx : [onnx as OnnxDecoder];
  if (sessions && sessions.length !== members.length)
    throw new Error(`${members.length} decoders but ${sessions.length} ONNX decoders`);
  const data = sessions ? ((await features.data()) as Float32Array) : undefined;
  const rows = members.map((d, m) =>
    sessions ? onnxRows(sessions[m], data!, features.shape[0], repeat) : tfjsRows(d, features, repeat),
  );
  if (rows.length === 1) return rows[0];
  return ensembleRows(await Promise.all(rows), members[0].config.vocabSize);
}

/**
 * Log-probabilities of an ensemble, `[rows, V]`: each word's probability the mean of the members' (log Σ p / M,
 * computed stably from their log-probabilities) — the rule of self-critical.pytorch's AttEnsemble. A word one member
 * rules out keeps the others' probability, divided by M.
 */
export function ensembleLogProbs(members: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(members[0].length);
  const logM = Math.log(members.length);
  for (let i = 0; i < out.length; i++) {
    let max = -Infinity;
    for (const m of members) max = Math.max(max, m[i]);
    if (max === -Infinity) {
      out[i] = -Infinity;
      continue;
    }
    let sum = 0;
    for (const m of members) sum += Math.exp(m[i] - max);
    out[i] = max + Math.log(sum) - logM;
  }
  return out;
}

/** Each of N rows' k largest values of `x` `[N, V]` and their columns, largest first (ties: the lower column). */
export function topK(x: Float32Array, N: number, k: number): { values: Float32Array; indices: Int32Array } {
  const V = x.length / N;
  const values = new Float32Array(N * k);
  const indices = new Int32Array(N * k);
  for (let r = 0; r < N; r++) {
    const best: number[] = []; // columns, kept sorted best first
    for (let v = 0; v < V; v++) {
      const xv = x[r * V + v];
      if (best.length === k && !(xv > x[r * V + best[k - 1]])) continue;
      let j = 0;
      while (j < best.length && !(xv > x[r * V + best[j]])) j++;
      best.splice(j, 0, v);
      if (best.length > k) best.pop();
    }
    best.forEach((v, j) => {
      values[r * k + j] = x[r * V + v];
      indices[r * k + j] = v;
    });
  }
  return { values, indices };
}

/**
 * Members' rows decoded as one model: every step asks each member for all of its word log-probabilities, combines
 * them (`ensembleLogProbs`) and takes the top k; α is the members' mean. Beams move all members' state rows alike.
 */
function ensembleRows(members: readonly DecodeRows[], V: number): DecodeRows {
  return {
    async step(words, k) {
      const outs: Awaited<ReturnType<DecodeRows["step"]>>[] = [];
      for (const m of members) outs.push(await m.step(words, 0));
      const logp = ensembleLogProbs(outs.map((o) => o.values));
      if (logp.length !== words.length * V) throw new Error(`ensemble members disagree on the vocabulary size`);
      const alpha = outs[0].alpha.map((row, r) =>
        row.map((_, j) => outs.reduce((a, o) => a + o.alpha[r][j], 0) / outs.length),
      );
      return { ...(k === 0 ? { values: logp, indices: new Int32Array(0) } : topK(logp, words.length, k)), alpha };
    },
    keep(rows) {
      for (const m of members) m.keep(rows);
    },
    dispose() {
      for (const m of members) m.dispose();
    },
  };
}

function tfjsRows(decoder: DecoderRNN, features: tf.Tensor3D, repeat: number): DecodeRows {
  const tiled = repeatRows(features, repeat);
  const start = decoder.start(tiled);
  const { regions, projected } = start;
  let state = start.state;
  let next: { h: tf.Tensor2D; c: tf.Tensor2D } | undefined;
  return {
    async step(words, k) {
      const r = tf.tidy(() => {
        const emb = tf.gather(decoder.embedding, tf.tensor1d(words, "int32")) as tf.Tensor2D;
        const s = decoder.step(emb, projected, regions, state);
        const logp = tf.logSoftmax(decoder.output(s.h, false));
        const top = k === 0 ? { values: logp, indices: tf.zeros([0], "int32") } : tf.topk(logp, k);
        return { h: s.h, c: s.c, alpha: s.alpha, values: top.values, indices: top.indices };
      });
      next = { h: r.h, c: r.c };
      const out = {
        values: (await r.values.data()) as Float32Array,
        indices: (await r.indices.data()) as Int32Array,
        alpha: (await r.alpha.array()) as number[][],
      };
      tf.dispose([r.alpha, r.values, r.indices]);
      return out;
    },
    keep(rows) {
      let kept = next!;
      if (rows) {
        const idx = tf.tensor1d(rows, "int32");
        kept = tf.tidy(() => ({
          h: tf.gather(next!.h, idx) as tf.Tensor2D,
          c: tf.gather(next!.c, idx) as tf.Tensor2D,
        }));
        tf.dispose([idx, next!.h, next!.c]);
      }
      tf.dispose([state.h, state.c]);
      state = kept;
      next = undefined;
    },
    dispose() {
      tf.dispose([...new Set([tiled, regions]), projected, state.h, state.c, ...(next ? [next.h, next.c] : [])]);
    },
  };
}

async function onnxRows(onnx: OnnxDecoder, features: Float32Array, N: number, repeat: number): Promise<DecodeRows> {
  const R = onnx.regions;
  const E = onnx.config.encoderDim;
  const D = onnx.config.decoderDim;
  const tiled = new Float32Array(N * repeat * R * E);
  for (let r = 0; r < N * repeat; r++)
    tiled.set(features.subarray(Math.floor(r / repeat) * R * E, (Math.floor(r / repeat) + 1) * R * E), r * R * E);
  let state = await onnx.init(tiled, N * repeat);
  let next: { h: Float32Array; c: Float32Array } | undefined;
  const gatherRows = (x: Float32Array, rows: number[]) => {
    const out = new Float32Array(rows.length * D);
    rows.forEach((r, i) => out.set(x.subarray(r * D, (r + 1) * D), i * D));
    return out;
  };
  return {
    async step(words, k) {
      const r = await onnx.step(words, tiled, state, k);
      next = { h: r.h, c: r.c };
      const alpha = Array.from({ length: words.length }, (_, i) => Array.from(r.alpha.subarray(i * R, (i + 1) * R)));
      return { values: r.values, indices: r.indices, alpha };
    },
    keep(rows) {
      state = {
        ...state,
        h: rows ? gatherRows(next!.h, rows) : next!.h,
        c: rows ? gatherRows(next!.c, rows) : next!.c,
      };
      next = undefined;
    },
    dispose() {},
  };
}

/**
 * What beam search considered at step t for image i: every candidate extension (its beam, i.e. the index of the
 * partial caption it extends among that image's beams, the word and the total log-probability), best first, and
 * whether it survived as a beam, finished with `<EOS>`, or was dropped. Kept candidates are the beams of step t + 1
 * in this order. For drawing the search as a tree (chapter 07).
 */
export type BeamTrace = (
  t: number,
  image: number,
  candidates: { beam: number; word: number; score: number; fate: "kept" | "finished" | "dropped" }[],
) => void;

/**
 * Beam search with width k for a batch of N images' features `[N, R, E]`: all N·k beams advance in one decoder
 * step (rows i·k … i·k + k − 1 are image i's), so a GPU sees one large step instead of N small ones. Per image
 * the same search as one at a time: each beam proposes its k best words (enough: at most k extensions survive),
 * the k − (finished) best of those survive, and extensions ending in `<EOS>` are finished captions. With `onnx`
 * the steps run on ONNX Runtime (CPUs) instead of tfjs; `trace` sees every step's candidates.
 */
export async function beamSearchBatch(
  decoder: Captioner,
  features: tf.Tensor3D,
  k = 3,
  maxLen = 20,
  lengthPenalty = 0,
  onnx?: OnnxDecoder | readonly OnnxDecoder[],
  trace?: BeamTrace,
): Promise<Generated[]> {
  const N = features.shape[0];
  const V = captionerMembers(decoder)[0].config.vocabSize;
  if (!Number.isInteger(k) || k < 1 || k > V)
    throw new Error(`beam width ${k} must be between 1 and the vocabulary's ${V} words (--beam)`);
  const model = await decodeRows(decoder, features, k, onnx);
  const beams: Beam[][] = Array.from({ length: N }, () => [{ ids: [], alphas: [], logProb: 0 }]);
  const finished: Beam[][] = Array.from({ length: N }, () => []);
  try {
    for (let t = 0; t < maxLen && beams.some((b) => b.length > 0); t++) {
      // each row's last word (unused rows: any word, ignored)
      const words = beams.flatMap((bs) =>
        Array.from({ length: k }, (_, j) =>
          j < bs.length && bs[j].ids.length ? bs[j].ids[bs[j].ids.length - 1] : SOS,
        ),
      );
      const { values, indices, alpha } = await model.step(words, k);
      const rows: number[] = [];
      for (let i = 0; i < N; i++) {
        const bs = beams[i];
        // at t = 0 all of an image's beams are the same, so only its beam 0 (the only one) expands
        const cands: { beam: number; word: number; score: number }[] = [];
        for (let b = 0; b < bs.length; b++)
          for (let j = 0; j < k; j++) {
            const r = (i * k + b) * k + j;
            cands.push({ beam: b, word: indices[r], score: bs[b].logProb + values[r] });
          }
        cands.sort((x, y) => y.score - x.score);
        const kept: typeof cands = [];
        const survivors = cands.slice(0, Math.max(0, k - finished[i].length));
        for (const c of survivors) {
          if (c.word === EOS) finished[i].push({ ids: bs[c.beam].ids, alphas: bs[c.beam].alphas, logProb: c.score });
          else kept.push(c);
        }
        trace?.(
          t,
          i,
          cands.map((c) => ({ ...c, fate: !survivors.includes(c) ? "dropped" : c.word === EOS ? "finished" : "kept" })),
        );
        beams[i] = kept.map((c) => ({
          ids: [...bs[c.beam].ids, c.word],
          alphas: [...bs[c.beam].alphas, alpha[i * k + c.beam]],
          logProb: c.score,
        }));
        // the LSTM state rows follow the surviving beams
        rows.push(...kept.map((c) => i * k + c.beam), ...Array(k - kept.length).fill(i * k));
      }
      model.keep(rows);
    }
  } finally {
    model.dispose();
  }
  return beams.map((bs, i) => {
    const done = finished[i].length > 0;
    const candidates = rankBeams(done ? finished[i] : bs, lengthPenalty).map((b) => ({ ...b, finished: done }));
    return { ...candidates[0], candidates };
  });
}

/**
 * The score a finished caption is chosen by: its log-probability divided by GNMT's length penalty
 * ((5 + |y|) / 6)^α (Wu et al. 2016), |y| counting `<EOS>`. α = 0: the plain log-probability, which favours short
 * captions; larger α favours longer ones.
 */
export function beamScore(logProb: number, words: number, lengthPenalty = 0): number {
  return lengthPenalty === 0 ? logProb : logProb / ((5 + words + 1) / 6) ** lengthPenalty;
}

/** Beams best first by `beamScore` (equals in their order). */
export function rankBeams<B extends { ids: number[]; logProb: number }>(pool: readonly B[], lengthPenalty = 0): B[] {
  const score = (b: B) => beamScore(b.logProb, b.ids.length, lengthPenalty);
  return [...pool].sort((a, b) => score(b) - score(a));
}

/** The word appended to every caption consensus decoding compares (and to the references of its scorer). */
export const SENTENCE_END = SPECIAL_TOKENS[EOS];

/**
 * Minimum Bayes risk decoding with CIDEr-D as the gain (Kumar & Byrne 2004; for captions, the consensus re-ranking
 * of Devlin et al. 2015): of an image's candidate captions, the index of the one with the highest mean CIDEr-D
 * against the others — the caption the model's likely captions agree with most, rather than the single likeliest.
 * `cider` holds the document frequencies (the training references', each ended with SENTENCE_END: `trainCider`).
 * The end of the sentence counts as a word: a caption cut off mid-phrase ("… sitting on a") then agrees with the
 * others only where they stop at the same word, so consensus no longer favours truncations (docs/captioning-results.md).
 * The first of equals wins, so one candidate, or candidates that all agree, give the beam's own choice.
 */
export function consensusCaption(candidates: readonly (readonly string[])[], cider: CiderD): number {
  const ended = candidates.map((c) => [...c, SENTENCE_END]);
  let best = 0;
  let bestScore = -Infinity;
  ended.forEach((c, i) => {
    const others = ended.filter((_, j) => j !== i);
    const score = others.length ? cider.score(c, others) : 0;
    if (score > bestScore) [best, bestScore] = [i, score];
  });
  return best;
}

/** Of a beam search's result, the candidate `consensusCaption` picks (with the candidates kept). */
export function byConsensus(g: Generated, cider: CiderD, vocab: Vocabulary): Generated {
  const cands = g.candidates ?? [g];
  return {
    ...cands[
      consensusCaption(
        cands.map((x) => vocab.decode(x.ids)),
        cider,
      )
    ],
    candidates: cands,
  };
}

/** Where a checkpoint stores its train captions' document frequencies (`export --consensus-data`). */
export const CONSENSUS_FILE = "consensus.json";

/**
 * Consensus decoding's scorer from stored document frequencies (`CiderD.toJSON`), refused when they were counted
 * without the end of the sentence (stored before consensus counted it: `consensusCaption`).
 */
export function consensusCider(json: unknown, file: string): CiderD {
  const cider = CiderD.fromJSON(json, file);
  if (cider.documentFrequency([SENTENCE_END]) === 0)
    throw new Error(
      `${file} was stored before consensus decoding counted the end of the sentence: export it again with ` +
        `--consensus-data DIR, or pass --data-dir DIR`,
    );
  return cider;
}
