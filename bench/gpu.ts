/**
 * One entry for every benchmark, for GPU hosts: `bash .gpu-bundle/run.sh gpu <bench> [args]` runs bench/<bench>.ts
 * with its own arguments (also `npx tsx bench/gpu.ts <bench> [args]` here). Each bundled entry carries its own
 * copy of tfjs (~9 MB), so one entry instead of one per benchmark keeps the upload under the device's 64 MiB.
 * esbuild turns these dynamic imports into lazily run modules: only the chosen benchmark runs.
 */
export {};

const BENCHES: Record<string, () => Promise<unknown>> = {
  backend: () => import("./backend"),
  train: () => import("./train"),
  profile: () => import("./profile"),
  generate: () => import("./generate"),
  scan: () => import("./scan"),
  resnet: () => import("./resnet"),
  flickr8k: () => import("./flickr8k"),
};

const name = process.argv[2];
if (!name || !(name in BENCHES)) {
  console.error(`usage: bench/gpu.ts <${Object.keys(BENCHES).join("|")}> [that benchmark's arguments]`);
  process.exit(2);
}
process.argv.splice(2, 1); // the benchmark reads its arguments from process.argv[2] on
void BENCHES[name]();
