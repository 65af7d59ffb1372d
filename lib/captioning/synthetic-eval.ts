/**
 * Are the generated captions of synthetic scenes right? A scene's caption is correct when the (colour, shape)
 * objects it names are exactly the scene's objects — sizes and relations aside. This is the stopping rule of
 * `npm start` and, with the ground-truth boxes, the basis of attention-correctness measures.
 */
import { COLORS, Color, SHAPES, SceneObject, Shape } from "../data/synthetic";

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

/** The caption's mentions that name an object of the scene (right colour and shape), each with that object. */
export function namedObjects(
  words: readonly string[],
  objects: readonly SceneObject[],
): { mention: Mention; object: SceneObject }[] {
  return mentionedObjects(words).flatMap((mention) => {
    const object = objects.find((x) => x.color === mention.color && x.shape === mention.shape);
    return object ? [{ mention, object }] : [];
  });
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

/** Captions (words) of `images`, scored against their ground-truth objects (`scoreScenes` decodes them). */
export function scoreCaptions(
  captions: readonly (readonly string[])[],
  images: readonly string[],
  boxes: Record<string, SceneObject[]>,
): SceneScore {
  let correct = 0,
    truthCount = 0,
    found = 0,
    named = 0,
    right = 0;
  const samples: SceneScore["samples"] = [];
  captions.forEach((words, i) => {
    const objects = boxes[images[i]];
    if (!objects) throw new Error(`no ground-truth boxes for ${images[i]}`);
    const ok = captionCorrect(words, objects);
    const mentions = new Set(mentionedObjects(words).map(key));
    const truth = new Set(objects.map(key));
    correct += ok ? 1 : 0;
    truthCount += truth.size;
    found += [...truth].filter((k) => mentions.has(k)).length;
    named += mentions.size;
    right += [...mentions].filter((k) => truth.has(k)).length;
    samples.push({ image: images[i], caption: words.join(" "), correct: ok, truth: [...truth] });
  });
  return {
    accuracy: correct / images.length,
    recall: found / Math.max(1, truthCount),
    precision: right / Math.max(1, named),
    samples,
  };
}

/**
 * Whether the centre of α's most attended region lies in `box` ([x0, y0, x1, y1] in pixels). Regions are the
 * grid × grid cells, row-major, each an imageSize/grid square; the grid is read from α's length unless given.
 */
export function peakInBox(
  alpha: readonly number[],
  box: readonly [number, number, number, number],
  imageSize = 224,
  grid = Math.round(Math.sqrt(alpha.length)),
): boolean {
  let peak = 0;
  for (let r = 1; r < alpha.length; r++) if (alpha[r] > alpha[peak]) peak = r;
  const cell = imageSize / grid;
  const [cx, cy] = [((peak % grid) + 0.5) * cell, (Math.floor(peak / grid) + 0.5) * cell];
  return cx >= box[0] && cx <= box[2] && cy >= box[1] && cy <= box[3];
}

export interface AttentionScore {
  /** Generated object words (shape words naming an object of the scene) that were scored. */
  objectWords: number;
  /** Share of them whose most attended region's centre lies in the object's box. */
  pointing: number;
  /** Mean attention mass on the object's box (each region weighted by the share of its cell inside the box). */
  massInBox: number;
  /** The mass a uniform attention would put on the boxes: the chance level of `massInBox`. */
  uniformMass: number;
}

/**
 * Attention correctness on synthetic scenes: for every generated shape word that names an object of the scene
 * (right colour and shape), where does α at that word fall? Regions are the encoder's grid × grid cells, row-major
 * (r = row·grid + col), each covering an imageSize/grid square of the picture; the grid is read from α's length
 * (49: 7×7, 196: 14×14) unless given.
 */
export function attentionCorrectness(
  items: readonly {
    words: readonly string[];
    alphas: readonly (readonly number[])[];
    objects: readonly SceneObject[];
  }[],
  imageSize = 224,
  grid?: number,
  /**
   * The word whose α is scored: the shape word (default), the colour word before it, or the word this many places
   * from the shape word (−2: the one before the colour word, where the decoder picks the next object; +1: after).
   */
  at: "shape" | "colour" | number = "shape",
): AttentionScore {
  let n = 0,
    hits = 0,
    mass = 0,
    uniform = 0;
  for (const { words, alphas, objects } of items) {
    for (const { mention: m, object: o } of namedObjects(words, objects)) {
      const a = alphas[m.index + (at === "shape" ? 0 : at === "colour" ? -1 : at)];
      if (!a) continue;
      const g = grid ?? Math.round(Math.sqrt(a.length));
      const cell = imageSize / g;
      const [x0, y0, x1, y1] = o.box;
      hits += peakInBox(a, o.box, imageSize, g) ? 1 : 0;
      for (let r = 0; r < a.length; r++) {
        const [row, col] = [Math.floor(r / g), r % g];
        const w =
          Math.max(0, Math.min(x1, (col + 1) * cell) - Math.max(x0, col * cell)) *
          Math.max(0, Math.min(y1, (row + 1) * cell) - Math.max(y0, row * cell));
        const share = w / (cell * cell);
        mass += a[r] * share;
        uniform += share / a.length;
      }
      n++;
    }
  }
  return { objectWords: n, pointing: n ? hits / n : 0, massInBox: n ? mass / n : 0, uniformMass: n ? uniform / n : 0 };
}
