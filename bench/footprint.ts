/**
 * How local are the encoder's region features? For synthetic scenes with two or three objects, each object is
 * removed in turn (the same scene drawn without it) and the change of every grid cell's feature is measured:
 * ‖f_r(scene) − f_r(scene without the object)‖². The share of that change in the cells whose centre lies in the
 * object's box, one cell away, and further, says how much of an object a region outside it carries — what soft
 * attention can read about an object without pointing at it.
 *   npx tsx bench/footprint.ts [scenes=60] [seed=7]
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { EncoderCNN, FEATURE_DIM, GRID, OnnxEncoder, REGIONS } from "../lib/encoder";
import { Scene, makeScene, renderSvg, sceneSvg } from "../lib/data";
import { initBackend } from "../lib/engine";
import { Rng } from "../lib/util";

const CELL = 224 / GRID;

const KINDS = ["its centre is in the box", "overlaps the box, centre outside", "next to the box", "further"];

/** Which of KINDS cell r is for the box [x0, y0, x1, y1]. */
function kind(r: number, box: number[]): number {
  const [x0, y0] = [(r % GRID) * CELL, Math.floor(r / GRID) * CELL];
  const [cx, cy] = [x0 + CELL / 2, y0 + CELL / 2];
  if (cx >= box[0] && cx <= box[2] && cy >= box[1] && cy <= box[3]) return 0;
  const gap = Math.max(box[0] - (x0 + CELL), x0 - box[2], box[1] - (y0 + CELL), y0 - box[3]); // < 0: they overlap
  return gap < 0 ? 1 : gap < CELL ? 2 : 3;
}

async function features(encoder: OnnxEncoder, dir: string, scenes: Scene[]): Promise<Float32Array> {
  const files = await Promise.all(
    scenes.map(async (s, i) => {
      const f = path.join(dir, `${i}.png`);
      fs.writeFileSync(f, await renderSvg(sceneSvg(s)));
      return f;
    }),
  );
  const batch = await EncoderCNN.loadBatch(files);
  const out = await encoder.encode(batch.dataSync() as Float32Array, scenes.length);
  batch.dispose();
  return out;
}

async function main() {
  await initBackend({ quiet: true });
  const n = Number(process.argv[2] ?? 60);
  const rng = new Rng(Number(process.argv[3] ?? 7));
  const encoder = await OnnxEncoder.load();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "attend-tell-bench-footprint-"));
  const byKind = new Float64Array(KINDS.length);
  const cellsOf = new Float64Array(KINDS.length);
  let objects = 0;
  let peakInside = 0; // objects whose most changed cell has its centre in the box
  for (let done = 0; done < n;) {
    const s = makeScene("s.png", rng);
    if (s.objects.length < 2) continue;
    done++;
    const without = s.objects.map((_, k) => ({ ...s, objects: s.objects.filter((__, j) => j !== k) }));
    const f = await features(encoder, dir, [s, ...without]);
    const [R, E] = [REGIONS, FEATURE_DIM];
    s.objects.forEach((o, k) => {
      const change = new Float64Array(KINDS.length);
      let [peak, peakKind] = [-1, 0];
      for (let r = 0; r < R; r++) {
        let d2 = 0;
        for (let e = 0; e < E; e++) {
          const d = f[r * E + e] - f[(k + 1) * R * E + r * E + e];
          d2 += d * d;
        }
        const c = kind(r, o.box);
        if (d2 > peak) [peak, peakKind] = [d2, c];
        change[c] += d2;
        cellsOf[c]++;
      }
      const total = change.reduce((x, y) => x + y, 0);
      change.forEach((c, a) => (byKind[a] += c / total));
      objects++;
      if (peakKind === 0) peakInside++;
    });
  }
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(
    `${objects} objects in ${n} scenes (2–3 objects each): where removing an object changes the 7×7 features`,
  );
  console.log("| cells whose … | share of the change | share of the cells |");
  console.log("|---|---|---|");
  const cells = cellsOf.reduce((x, y) => x + y, 0);
  KINDS.forEach((k, c) =>
    console.log(
      `| ${k} | ${((100 * byKind[c]) / objects).toFixed(1)} % | ${((100 * cellsOf[c]) / cells).toFixed(1)} % |`,
    ),
  );
  console.log(
    `The most changed cell has its centre in the box for ${((100 * peakInside) / objects).toFixed(1)} % of the objects: ` +
      "the pointing of an attention that peaks where the object changes the features most.",
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
