/**
 * How long the synthetic scenes take to generate (issue: 2,000 images well under a minute on 2 cores).
 *   npx tsx bench/synthetic.ts [n=2000]
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { generateSynthetic } from "../lib/data";

async function main() {
  const n = Number(process.argv[2] ?? 2000);
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "attend-tell-bench-")), "synthetic");
  const t0 = performance.now();
  await generateSynthetic(dir, { n });
  const s = (performance.now() - t0) / 1000;
  const bytes = fs
    .readdirSync(path.join(dir, "Images"))
    .reduce((a, f) => a + fs.statSync(path.join(dir, "Images", f)).size, 0);
  console.log(
    `synthetic scenes: ${n} images in ${s.toFixed(1)} s (${(n / s).toFixed(0)} images/s, ${os.cpus().length} cores), ${(bytes / 2 ** 20).toFixed(1)} MiB of PNG`,
  );
  fs.rmSync(path.dirname(dir), { recursive: true, force: true });
}
main();
