/**
 * Caption tokenisation with wink-nlp, shared by the vocabulary and (later) the metrics.
 *
 * Choice: lower-cased normal forms (wink's `its.normal`: "Don't" → "do", "not"), punctuation dropped
 * (",", ".", "-", quotes — as pycocoevalcap's PTB tokenizer drops it before scoring), numbers and words kept.
 * "two-year-old" → "two year old". Only wink's tokenizer runs (no POS/NER pipe), ~60k captions/s.
 */
import winkNLP from "wink-nlp";
import model from "wink-eng-lite-web-model";

let nlp: ReturnType<typeof winkNLP> | undefined;

export function tokenize(text: string): string[] {
  nlp ??= winkNLP(model, []);
  const its = nlp.its;
  const out: string[] = [];
  const tokens = nlp.readDoc(text).tokens();
  const normals = tokens.out(its.normal) as string[];
  const types = tokens.out(its.type) as string[];
  for (let i = 0; i < normals.length; i++) if (types[i] !== "punctuation") out.push(normals[i]);
  return out;
}
