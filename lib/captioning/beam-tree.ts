/**
 * Beam search as a tree: what `beamSearchBatch`'s trace saw, each candidate linked to the beam it extended, and the
 * returned caption's path through it. Chapter 07 and the explorer draw it.
 */
import type { BeamTrace, Generated } from "./generate";

/** The candidates of one step, as the trace reports them. */
export type BeamStep = Parameters<BeamTrace>[2];

/** A candidate of step `step` (total log-probability `score`); `parent`: the kept candidate it extends. */
export interface BeamNode {
  step: number;
  score: number;
  word: number;
  fate: BeamStep[number]["fate"];
  parent?: BeamNode;
}

export interface BeamTree {
  nodes: BeamNode[];
  /** The returned caption: one node per word, then its `<EOS>` when it finished. */
  path: BeamNode[];
}

/**
 * The tree of one image's search. A step's kept candidates are the next step's beams in order, so candidate `c` of
 * step t extends kept candidate `c.beam` of step t − 1 (step 0 extends the start). The path follows the returned
 * caption's words the same way; an error if a word is not a kept extension of its beam (not this search's caption).
 */
export function beamTree(steps: readonly BeamStep[], best: Generated): BeamTree {
  const nodes: BeamNode[] = [];
  const kept: BeamNode[][] = [];
  steps.forEach((cands, step) => {
    const now = cands.map((c) => ({
      step,
      score: c.score,
      word: c.word,
      fate: c.fate,
      parent: kept[step - 1]?.[c.beam],
    }));
    nodes.push(...now);
    kept.push(now.filter((n) => n.fate === "kept"));
  });
  const path: BeamNode[] = [];
  const extend = (step: number, fate: BeamNode["fate"], word?: number) => {
    const node = nodes.find(
      (n) => n.step === step && n.fate === fate && n.parent === path.at(-1) && (word === undefined || n.word === word),
    );
    if (!node) throw new Error(`beamTree: step ${step + 1} of the caption is not in the search's tree`);
    path.push(node);
  };
  best.ids.forEach((w, t) => extend(t, "kept", w));
  if (best.finished) extend(best.ids.length, "finished");
  return { nodes, path };
}
