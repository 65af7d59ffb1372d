/**
 * Captions cut off mid-phrase: "a football player in a red", "a man is sitting on a". BLEU and CIDEr-D barely see
 * them (they reward the n-grams before the cut), so a captioner can learn them — self-critical training whose reward
 * ignores the end of the sentence does (Luo 2020) — while a person judges a captioner by exactly these.
 *
 * A caption is cut off when it ends
 * - in a word that opens a phrase and cannot close one: an article or other determiner ("a", "the", "every"), a
 *   possessive ("his", "its", "their"; not "her", which also ends "a man hugging her"), a conjunction ("and"), or a
 *   preposition that needs its object ("of", "with", "at", "in", "into", …) — but not the prepositions that
 *   captions end with as adverbs ("standing outside", "looking down", "with a hat on", "the water behind");
 * - or in an article followed only by colour and size words: a noun phrase opened and never given its noun ("in a
 *   red", "a black and white"). Only these adjectives: in captions many nouns are spelt like adjectives ("at a fair",
 *   "in the dark", "on a grassy plain").
 * Word lists, not a tagger, so that the measure is exact and the same everywhere. Flickr8k's human captions: 0.1 %.
 */
/** Words that leave a phrase open when a caption ends on them. */
export const OPEN_ENDINGS: ReadonlySet<string> = new Set([
  // articles and determiners ("another" closes "from one bed to another")
  ...["a", "an", "the", "this", "these", "those", "some", "each", "every", "several", "many"],
  // possessives
  ...["his", "its", "their", "my", "your", "our"],
  // conjunctions
  ...["and", "or", "but", "while", "as", "than"],
  // prepositions that need an object (those ending captions as adverbs are left out: on, by, behind, below, above,
  // over, off, out, up, down, around, outside, inside, underneath, along, alongside)
  ...["of", "with", "at", "to", "from", "in", "into", "onto", "for", "near", "through", "across", "under"],
  ...["beside", "between", "like", "toward", "towards", "against", "during", "among", "without", "upon", "atop"],
]);

/** Colour and size words: after an article they announce a noun. */
export const ATTRIBUTES: ReadonlySet<string> = new Set([
  ...["black", "white", "red", "blue", "green", "yellow", "orange", "purple", "pink", "brown", "grey", "gray", "tan"],
  ...["little", "small", "large", "big", "tall", "young", "old", "long", "short"],
]);

const ARTICLES: ReadonlySet<string> = new Set(["a", "an", "the"]);

/** True when the caption (tokens, lower case) stops mid-phrase (see above). An empty caption is cut off. */
export function isCutOff(words: readonly string[]): boolean {
  if (words.length === 0) return true;
  if (OPEN_ENDINGS.has(words[words.length - 1])) return true;
  let k = words.length - 1;
  if (!ATTRIBUTES.has(words[k])) return false;
  while (k >= 0 && (ATTRIBUTES.has(words[k]) || words[k] === "and")) k--;
  return k >= 0 && ARTICLES.has(words[k]);
}

/** The share of captions that are cut off (isCutOff); 0 for none. */
export function cutOffRate(captions: readonly (readonly string[])[]): number {
  return captions.length ? captions.filter(isCutOff).length / captions.length : 0;
}
