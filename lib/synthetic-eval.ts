/**
 * Are the generated captions of synthetic scenes right? A scene's caption is correct when the (colour, shape)
 * objects it names are exactly the scene's objects — sizes and relations aside. This is the stopping rule of
 * `npm start` and, with the ground-truth boxes, the basis of attention-correctness measures.
 */
import * as tf from "@tensorflow/tfjs";
import { DecoderRNN } from "./decoder";
import { REGIONS, FEATURE_DIM } from "./encoder";
import { FeatureCache } from "./features";
import { greedy } from "./generate";
import { COLORS, Color, SHAPES, SceneObject, Shape } from "./synthetic";
import { Vocabulary } from "./vocabulary";

export interface Mention {
  color: Color;
  shape: Shape;
  /** Index of the shape word in the caption. */
  index: number;
}

/** The objects a caption names: each shape word with the colour word just before it (a size may sit between). */
export function mentionedObjects(words: readonly string[]): Mention[] {
  const out: Mention[] = [];
  words.forEach((w, i) => {
    if (!(SHAPES as readonly string[]).includes(w)) return;
    const c = words[i - 1];
    if (c !== undefined && c in COLORS) out.push({ color: c as Color, shape: w as Shape, index: i });
  });
  return out;
}

const key = (o: { color: string; shape: string }) => `${o.color} ${o.shape}`;

/** True when the caption names exactly the scene's objects (each once or more, no others). */
export function captionCorrect(words: readonly string[], objects: readonly SceneObject[]): boolean {
  const named = new Set(mentionedObjects(words).map(key));
  const truth = new Set(objects.map(key));
  return named.size === truth.size && [...truth].every((k) => named.has(k));
}

export interface SceneScore {
  /** Share of scenes whose caption names exactly their objects. */
  accuracy: number;
  /** Share of the scenes' objects that the captions name. */
  recall: number;
  /** Share of named objects that are in the scene. */
  precision: number;
  samples: { image: string; caption: string; correct: boolean; truth: string[] }[];
}

/** Greedy captions for `images` (features from the cache), scored against their ground-truth objects. */
export async function scoreScenes(
  decoder: DecoderRNN, vocab: Vocabulary, cache: FeatureCache, images: string[], boxes: Record<string, SceneObject[]>, batchSize = 64,
): Promise<SceneScore> {
  let correct = 0, truthCount = 0, found = 0, named = 0, right = 0;
  const samples: SceneScore["samples"] = [];
  for (let i = 0; i < images.length; i += batchSize) {
    const names = images.slice(i, i + batchSize);
    const f = tf.tensor3d(cache.read(names), [names.length, REGIONS, FEATURE_DIM]);
    const gen = await greedy(decoder, f, 24);
    f.dispose();
    gen.forEach((g, b) => {
      const words = vocab.decode(g.ids);
      const objects = boxes[names[b]];
      if (!objects) throw new Error(`no ground-truth boxes for ${names[b]}`);
      const ok = captionCorrect(words, objects);
      const mentions = new Set(mentionedObjects(words).map(key));
      const truth = new Set(objects.map(key));
      correct += ok ? 1 : 0;
      truthCount += truth.size;
      found += [...truth].filter((k) => mentions.has(k)).length;
      named += mentions.size;
      right += [...mentions].filter((k) => truth.has(k)).length;
      samples.push({ image: names[b], caption: words.join(" "), correct: ok, truth: [...truth] });
    });
  }
  return { accuracy: correct / images.length, recall: found / Math.max(1, truthCount), precision: right / Math.max(1, named), samples };
}
