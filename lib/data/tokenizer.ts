/**
 * Caption tokenisation, shared by the vocabulary and the metrics: the Penn Treebank conventions that
 * pycocoevalcap's tokenizer applies before it scores (Stanford `PTBTokenizer -lowerCase`, then its punctuation
 * list dropped), so that BLEU and CIDEr-D here are comparable with published figures, and the words stay as people
 * write them ("through", not wink's normal form "thru").
 *
 * wink-nlp finds the tokens; on top of it, as PTB does: lower case; clitics split off ("dog's" → "dog" "'s",
 * "doesn't" → "does" "n't", "I'm" → "i" "'m"); hyphenated words kept whole ("two-year-old"); punctuation dropped
 * (quotes, brackets, . , ; : ! ? - -- ...); numbers ("3:30") and symbols ("&") kept. Only wink's tokenizer runs
 * (no POS/NER pipe).
 */
import winkNLP from "wink-nlp";
import model from "wink-eng-lite-web-model";

let nlp: ReturnType<typeof winkNLP> | undefined;

// PTB splits these clitics off the word before them; wink does for most, not for "I'm"-like tokens.
const CLITIC = /^(.+?)(n't|'s|'m|'re|'ve|'ll|'d)$/;

/** Lower-cased PTB tokens of `text`, punctuation dropped. */
export function tokenize(text: string): string[] {
  nlp ??= winkNLP(model, []);
  const its = nlp.its;
  const tokens = nlp.readDoc(text).tokens();
  const values = (tokens.out(its.value) as string[]).map((v) => v.toLowerCase());
  const types = tokens.out(its.type) as string[];
  const spaces = tokens.out(its.precedingSpaces) as string[];
  const out: string[] = [];
  // Index of the wink token that ended out's last entry: a hyphen joins only tokens written together.
  let lastEnd = -2;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const joinsHyphen =
      v === "-" && lastEnd === i - 1 && spaces[i] === "" && i + 1 < values.length && spaces[i + 1] === "" &&
      types[i + 1] !== "punctuation";
    if (joinsHyphen) {
      out[out.length - 1] += `-${values[i + 1]}`;
      lastEnd = ++i;
      continue;
    }
    if (types[i] === "punctuation" || /^[-'`".,;:!?()[\]{}]+$/.test(v)) continue;
    const m = v.length > 2 ? CLITIC.exec(v) : null;
    if (m && m[1] !== "'") out.push(m[1], m[2]);
    else out.push(v);
    lastEnd = i;
  }
  return out;
}
