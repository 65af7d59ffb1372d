/**
 * Captioning the images of a feature cache, by one decoder or an ensemble: what evaluation, model selection and the
 * synthetic scenes' scores (`scoreScenes`) run. The engine is chosen here, once: ONNX Runtime's decoder where training runs there.
 */
import { FeatureCache } from "../encoder/feature-cache";
import { decoderFeatureMap } from "../encoder/feature-maps";
import { TrainEngine, defaultEngine } from "../engine/backend";
import { Vocabulary } from "../data/vocabulary";
import { CiderD } from "./metrics";
import { OnnxDecoder } from "./onnx-decode";
import { Captioner, Generated, beamSearchBatch, byConsensus, captionerMembers, greedy } from "./generate";
import { DecoderRNN } from "./decoder";
import { SceneScore, scoreCaptions } from "./synthetic-eval";
import type { SceneObject } from "../data/synthetic";

/**
 * Captions of `images` with beam width k (1: greedy, batched), in image order, by one decoder or an ensemble. The
 * steps run on ONNX Runtime where training does (CPUs with onnxruntime-node: `defaultEngine`), else on tfjs.
 */
export async function captionImages(
  decoder: Captioner,
  cache: FeatureCache,
  images: readonly string[],
  k: number,
  opts: {
    maxLen?: number;
    onImage?: () => void;
    lengthPenalty?: number;
    engine?: TrainEngine;
    /** Beam search (k > 1) then `consensusCaption` among each image's candidates, scored in `vocab`'s words. */
    consensus?: { cider: CiderD; vocab: Vocabulary };
  } = {},
): Promise<Generated[]> {
  const maxLen = opts.maxLen ?? 20;
  const out: Generated[] = [];
  const chunk = k === 1 ? 64 : 32; // beam: 32 images = 32·k rows per step
  const members = captionerMembers(decoder);
  members.forEach((d, m) =>
    cache.checkFeatureMap(decoderFeatureMap(d.config), members.length > 1 ? `decoder ${m + 1}` : "the decoder"),
  );
  const onnx: OnnxDecoder[] = [];
  try {
    if ((opts.engine ?? defaultEngine()) === "onnx")
      for (const d of members) onnx.push(await OnnxDecoder.create(d, cache.regions));
    for (let i = 0; i < images.length; i += chunk) {
      const names = images.slice(i, i + chunk);
      const f = cache.tensor(names);
      try {
        const sessions = onnx.length ? onnx : undefined;
        if (k === 1) out.push(...(await greedy(decoder, f, maxLen, sessions)));
        else {
          const gen = await beamSearchBatch(decoder, f, k, maxLen, opts.lengthPenalty, sessions);
          const c = opts.consensus;
          // each image's caption only: k candidates with their maps would be kept for every image of a split
          for (const g of gen) {
            const { candidates: _, ...caption } = c ? byConsensus(g, c.cider, c.vocab) : g;
            out.push(caption);
          }
        }
      } finally {
        f.dispose();
      }
      names.forEach(() => opts.onImage?.());
    }
  } finally {
    for (const o of onnx) await o.dispose();
  }
  return out;
}

/** Greedy captions for `images` (features from the cache), scored against their ground-truth objects. */
export async function scoreScenes(
  decoder: DecoderRNN,
  vocab: Vocabulary,
  cache: FeatureCache,
  images: string[],
  boxes: Record<string, SceneObject[]>,
): Promise<SceneScore> {
  const gen = await captionImages(decoder, cache, images, 1, { maxLen: 24 });
  return scoreCaptions(
    gen.map((g) => vocab.decode(g.ids)),
    images,
    boxes,
  );
}
