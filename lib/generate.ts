/**
 * Caption generation, never teacher-forced: each step feeds back the word the model chose. Both methods return
 * the words and one attention vector (over the 49 regions) per generated word — what the heatmaps draw.
 * - `greedy`: the most probable word at each step, a whole batch at once.
 * - `beamSearch`: keeps the k best partial captions by total log-probability. It always returns a caption:
 *   when no beam has emitted `<EOS>` by `maxLen` (a known crash elsewhere), the best unfinished beam is used.
 */
import * as tf from "@tensorflow/tfjs";
import { DecoderRNN } from "./decoder";
import { FEATURE_DIM, REGIONS } from "./encoder";
import { FeatureCache } from "./features";
import { EOS, SOS } from "./vocabulary";

export interface Generated {
  /** Word ids, without `<SOS>`/`<EOS>`. */
  ids: number[];
  /** One α (length R) per id. */
  alphas: number[][];
  /** Σ log p of the chosen words (and of `<EOS>` when it was emitted). */
  logProb: number;
  /** Whether the caption ended with `<EOS>` (false: cut at maxLen). */
  finished: boolean;
}

/** Greedy decoding of a batch of images' features `[B, R, E]`. */
export async function greedy(decoder: DecoderRNN, features: tf.Tensor3D, maxLen = 20): Promise<Generated[]> {
  const B = features.shape[0];
  const out: Generated[] = Array.from({ length: B }, () => ({ ids: [], alphas: [], logProb: 0, finished: false }));
  const projected = tf.tidy(() => decoder.attention.projectFeatures(features));
  let state = tf.tidy(() => decoder.initHidden(features));
  let words = tf.fill([B], SOS, "int32") as tf.Tensor1D;
  try {
    for (let t = 0; t < maxLen && out.some((g) => !g.finished); t++) {
      const next = tf.tidy(() => {
        const s = decoder.step(tf.gather(decoder.embedding, words) as tf.Tensor2D, projected, features, state);
        const logp = tf.logSoftmax(decoder.output(s.h, false));
        const best = logp.argMax(1) as tf.Tensor1D;
        return { ...s, best, bestLogp: logp.max(1) };
      });
      const [best, bestLogp, alpha] = [await next.best.data(), await next.bestLogp.data(), (await next.alpha.array()) as number[][]];
      out.forEach((g, b) => {
        if (g.finished) return;
        g.logProb += bestLogp[b];
        if (best[b] === EOS) g.finished = true;
        else g.ids.push(best[b]), g.alphas.push(alpha[b]);
      });
      tf.dispose([state.h, state.c, words, next.alpha, next.bestLogp]);
      state = { h: next.h, c: next.c };
      words = next.best;
    }
  } finally {
    tf.dispose([projected, state.h, state.c, words]);
  }
  return out;
}

interface Beam {
  ids: number[];
  alphas: number[][];
  logProb: number;
}

/** Beam search for one image's features `[1, R, E]` (or `[R, E]`) with beam width k. */
export async function beamSearch(decoder: DecoderRNN, features: tf.Tensor, k = 3, maxLen = 20): Promise<Generated> {
  const V = decoder.config.vocabSize;
  const feats = (features.rank === 2 ? features.expandDims(0) : features) as tf.Tensor3D;
  const tiled = tf.tidy(() => tf.tile(feats, [k, 1, 1]) as tf.Tensor3D);
  const projected = tf.tidy(() => decoder.attention.projectFeatures(tiled));
  let state = tf.tidy(() => decoder.initHidden(tiled));
  let beams: Beam[] = [{ ids: [], alphas: [], logProb: 0 }];
  const finished: Beam[] = [];
  try {
    for (let t = 0; t < maxLen && beams.length > 0; t++) {
      const n = beams.length;
      const last = beams.map((b) => (b.ids.length ? b.ids[b.ids.length - 1] : SOS));
      const words = [...last, ...Array(k - n).fill(SOS)]; // unused rows: any word, ignored
      const next = tf.tidy(() => {
        const s = decoder.step(tf.gather(decoder.embedding, tf.tensor1d(words, "int32")) as tf.Tensor2D, projected, tiled, state);
        return { ...s, logp: tf.logSoftmax(decoder.output(s.h, false)) };
      });
      const logp = (await next.logp.data()) as Float32Array;
      const alpha = (await next.alpha.array()) as number[][];
      // Every (beam, word) extension, best first; at t = 0 all beams are the same, so only beam 0 expands.
      const cands: { beam: number; word: number; score: number }[] = [];
      for (let b = 0; b < n; b++) for (let w = 0; w < V; w++) cands.push({ beam: b, word: w, score: beams[b].logProb + logp[b * V + w] });
      cands.sort((x, y) => y.score - x.score);
      // The k − (finished) best extensions survive; those that end in <EOS> are finished captions.
      const kept: { beam: number; word: number; score: number }[] = [];
      for (const c of cands.slice(0, k - finished.length)) {
        if (c.word === EOS) finished.push({ ids: beams[c.beam].ids, alphas: beams[c.beam].alphas, logProb: c.score });
        else kept.push(c);
      }
      const nextBeams = kept.map((c) => ({ ids: [...beams[c.beam].ids, c.word], alphas: [...beams[c.beam].alphas, alpha[c.beam]], logProb: c.score }));
      // Reorder the LSTM state rows to follow the surviving beams.
      const rows = [...kept.map((c) => c.beam), ...Array(k - kept.length).fill(0)];
      const idx = tf.tensor1d(rows, "int32");
      const newState = tf.tidy(() => ({ h: tf.gather(next.h, idx) as tf.Tensor2D, c: tf.gather(next.c, idx) as tf.Tensor2D }));
      tf.dispose([idx, state.h, state.c, next.h, next.c, next.alpha, next.logp]);
      state = newState;
      beams = nextBeams;
    }
  } finally {
    tf.dispose([tiled, projected, state.h, state.c]);
    if (feats !== features) feats.dispose();
  }
  if (finished.length > 0) {
    const best = finished.reduce((a, b) => (b.logProb > a.logProb ? b : a));
    return { ...best, finished: true };
  }
  const best = beams.reduce((a, b) => (b.logProb > a.logProb ? b : a));
  return { ...best, finished: false };
}

/** Captions of `images` with beam width k (1: greedy, batched), in image order. */
export async function captionImages(decoder: DecoderRNN, cache: FeatureCache, images: readonly string[], k: number, opts: { maxLen?: number; onImage?: () => void } = {}): Promise<Generated[]> {
  const maxLen = opts.maxLen ?? 20;
  const out: Generated[] = [];
  const chunk = k === 1 ? 64 : 1;
  for (let i = 0; i < images.length; i += chunk) {
    const names = images.slice(i, i + chunk);
    const f = tf.tensor3d(cache.read(names), [names.length, REGIONS, FEATURE_DIM]);
    try {
      if (k === 1) out.push(...(await greedy(decoder, f, maxLen)));
      else out.push(await beamSearch(decoder, f, k, maxLen));
    } finally {
      f.dispose();
    }
    names.forEach(() => opts.onImage?.());
  }
  return out;
}
