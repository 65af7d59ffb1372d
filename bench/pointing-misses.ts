/**
 * When the main job's attention misses the object a caption names, where does it look? Reads the greedy captions
 * with their attention maps that `npm start` writes (runs/NAME/captions-test-beam1.json) and the scenes' boxes, and
 * prints, for each run: pointing (the peak of α in the named object's box) by the word's place from the shape word
 * (−2: the word before the colour, −1: the colour word, 0: the shape word, +1: the word after), pointing at the
 * colour or the shape word, and where the shape word's peak lies when it misses — in the object named next, in one
 * named earlier, in an object the caption leaves out, or on no object.
 *
 *   npx tsx bench/pointing-misses.ts runs/synthetic [runs/seed2 …]
 */
import * as path from "node:path";
import { readBoxes } from "../lib/data";
import { attentionCorrectness, namedObjects, peakInBox } from "../lib/captioning";
import { readJson } from "../lib/util";

interface Captioned {
  image: string;
  words: string[];
  attention: number[][];
}

const PLACES = [-2, "colour", "shape", 1] as const;

function study(run: string) {
  const { dataDir } = readJson<{ dataDir: string }>(path.join(run, "summary.json"), "main job summary");
  const boxes = readBoxes(dataDir);
  const captions = readJson<Captioned[]>(path.join(run, "captions-test-beam1.json"), "test captions");
  const items = captions.map((c) => ({ words: c.words, alphas: c.attention, objects: boxes[c.image] }));
  // each place scored where the caption has it (attentionCorrectness skips a place past the caption's end)
  const byPlace = PLACES.map(
    (at) => `${at}: ${(100 * attentionCorrectness(items, 224, undefined, at).pointing).toFixed(1)} %`,
  );
  const miss = { "the object named next": 0, "an object named earlier": 0, "an object not named": 0, "no object": 0 };
  let words = 0,
    phrase = 0;
  for (const c of captions) {
    const objects = boxes[c.image];
    const named = namedObjects(c.words, objects);
    named.forEach(({ mention: m, object: o }, j) => {
      words++;
      const at = (offset: number) => {
        const a = c.attention[m.index + offset];
        return a !== undefined && peakInBox(a, o.box);
      };
      phrase += at(-1) || at(0) ? 1 : 0;
      if (at(0)) return;
      const other = objects.find((x) => x !== o && peakInBox(c.attention[m.index], x.box));
      const k = named.findIndex((n) => n.object === other);
      miss[
        !other
          ? "no object"
          : k > j
            ? "the object named next"
            : k >= 0
              ? "an object named earlier"
              : "an object not named"
      ]++;
    });
  }
  const pct = (x: number) => `${((100 * x) / words).toFixed(1)} %`;
  console.log(`${run}: ${words} named objects in ${captions.length} test scenes`);
  console.log(`  pointing by the word's place from the shape word: ${byPlace.join(", ")}`);
  console.log(`  at the colour or the shape word: ${pct(phrase)}`);
  console.log(
    `  a miss at the shape word peaks on ${Object.entries(miss)
      .map(([k, v]) => `${k} ${pct(v)}`)
      .join(", ")}`,
  );
}

for (const run of process.argv.slice(2)) study(run);
