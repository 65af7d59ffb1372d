/**
 * The CPU speed figures of one machine in one run, each beside the figure measured before the speed work
 * (the speed work's baseline, on the 2-core machine that measured them) and, where the previous path still exists, beside that
 * path measured here in the same run. Every part runs alone, one after another, in its own process:
 *   1. training step, seed dims, batch 64, on the ONNX Runtime step engine (TypedAdam) (bench/train.ts);
 *   2. beam 3 (and greedy) over the 1,000 Flickr8k dev images with the shipped captioner: tfjs vs ONNX Runtime
 *      (bench/evaluate.ts; needs Flickr8k);
 *   3. SCAN d = 1,024: training step and the 1,000 × 5,000 dev scoring, t2i and i2t (bench/scan.ts);
 *   4. ResNet-50 features end to end (decode, encode, float16, append) over `images` photos (bench/encoder.ts);
 *   5. a self-critical step on each step engine, tfjs and ONNX Runtime (bench/scst.ts).
 * Each part runs under each page setting asked for, one after the other: `4k` is glibc's default, `huge` the
 * transparent huge pages that bin/attend-tell asks for (HUGE_PAGES, lib/engine/onnx/session.ts).
 *   npx tsx bench/speed.ts [parts=train,evaluate,scan,features,scst] [feature images=96] [pages=4k,huge]
 */
import { spawnSync } from "node:child_process";
import { withHugePages } from "../lib/engine";
import { projectRoot } from "../lib/util";

const BEFORE: Record<string, string> = {
  train: "69.7 captions/s (ONNX Runtime step, tfjs Adam; 89.6 on another idle machine of the kind)",
  evaluate: "beam 3 over 1,000 dev images: 140 s (under load)",
  scan: "scoring 1,000 × 5,000: 88 s a model (d = 512, idle); epoch 6–7.5 min, warm-up epoch ~12 min",
  features: "15.4 images/s (ONNX Runtime, all 7,091 photos)",
  scst: "a Flickr8k self-critical epoch 16–29 min (samples decoded on tfjs-wasm)",
};
const PARTS: Record<string, string[]> = {
  train: ["bench/train.ts", "64", "onnx,onnx", "6"],
  evaluate: ["bench/evaluate.ts", "3", "1000", "tfjs,onnx"],
  scan: ["bench/scan.ts", "1024", "onnx,onnx:16", "3", "1000", "t2i,i2t"],
  features: ["bench/encoder.ts"],
  scst: ["bench/scst.ts", "4", "32", "greedy", "2"],
};

const parts = (process.argv[2] ?? "train,evaluate,scan,features,scst").split(",");
const featureImages = process.argv[3] ?? "96";
const pages = (process.argv[4] ?? "4k,huge").split(",");
const root = projectRoot();
const plain = { ...process.env };
delete plain.GLIBC_TUNABLES;
const ENV: Record<string, NodeJS.ProcessEnv> = { "4k": plain, huge: withHugePages(plain) };
for (const part of parts) {
  const args = PARTS[part];
  if (!args) throw new Error(`bench/speed.ts: no part ${part} (${Object.keys(PARTS).join(", ")})`);
  console.log(`\n== ${part} — before: ${BEFORE[part]}`);
  for (const page of pages) {
    const env = ENV[page];
    if (!env) throw new Error(`bench/speed.ts: no page setting ${page} (${Object.keys(ENV).join(", ")})`);
    const t0 = performance.now();
    const r = spawnSync("npx", ["tsx", ...args, ...(part === "features" ? [featureImages] : [])], {
      cwd: root,
      encoding: "utf8",
      env,
    });
    const lines = `${r.stdout}${r.stderr}`.split("\n").filter((l) => l && !l.startsWith("[attend-tell]"));
    console.log(`  -- ${page} pages`);
    for (const l of lines) console.log(`   ${l}`);
    console.log(`   (${((performance.now() - t0) / 1000).toFixed(0)} s for this part)`);
  }
}
