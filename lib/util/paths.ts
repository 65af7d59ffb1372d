/**
 * Where things are. The project root is found from this file (lib/ under tsx, dist/lib/ when compiled for
 * the notebooks) or from `ATTEND_TELL_ROOT` when bundled elsewhere (the GPU bundle).
 */
import * as fs from "node:fs";
import * as path from "node:path";

export function projectRoot(): string {
  if (process.env.ATTEND_TELL_ROOT) return path.resolve(process.env.ATTEND_TELL_ROOT);
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, "package.json");
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, "utf8")).name === "attend-tell") return dir;
    if (path.dirname(dir) === dir) return process.cwd();
  }
}

/** The synthetic scenes' default folder (generated on first use). */
export function syntheticDir(quick = quickMode()): string {
  // The quick (CI) set is smaller: its own folder, so that a quick run never replaces the full set under a
  // longer job that is reading it.
  return path.join(projectRoot(), "data", quick ? "synthetic-quick" : "synthetic");
}

/** The Flickr8k folder, if there is one: `FLICKR8K_DIR`, else `data/flickr8k`. Undefined when neither exists. */
export function flickr8kDir(): string | undefined {
  const env = process.env.FLICKR8K_DIR;
  if (env) {
    if (!fs.existsSync(env)) throw new Error(`FLICKR8K_DIR=${env} does not exist`);
    return path.resolve(env);
  }
  const dir = path.join(projectRoot(), "data", "flickr8k");
  return fs.existsSync(dir) ? dir : undefined;
}

/** True when notebooks and the main job should run at their quick (CI) size: `ATTEND_TELL_QUICK=1`. */
export function quickMode(): boolean {
  const v = (process.env.ATTEND_TELL_QUICK ?? "").trim().toLowerCase();
  if (["1", "true", "yes"].includes(v)) return true;
  if (["", "0", "false", "no"].includes(v)) return false;
  throw new Error(
    `ATTEND_TELL_QUICK=${process.env.ATTEND_TELL_QUICK} means nothing: set it to 1 for the quick size, 0 or unset for full size`,
  );
}

/**
 * The models shipped in the repository (weights only, float16; each folder has a MODEL.md card). The captioner is
 * an ensemble of its members (word probabilities averaged), as SCAN is of its two directions (similarities averaged).
 */
export const SHIPPED = {
  captioner: ["captioner-flickr8k", "captioner-flickr8k-2"],
  scan: ["scan-flickr8k-t2i", "scan-flickr8k-i2t"],
} as const;

/** `models/<name>` when it holds a checkpoint, else undefined. */
export function shippedModel(name: string): string | undefined {
  const dir = path.join(projectRoot(), "models", name);
  return fs.existsSync(path.join(dir, "checkpoint.json")) ? dir : undefined;
}

/** The folders of the members `names` of a shipped ensemble, or undefined unless every one holds a checkpoint. */
export function shippedEnsemble(names: readonly string[]): string[] | undefined {
  const dirs = names.map(shippedModel);
  return dirs.every((d) => d !== undefined) ? (dirs as string[]) : undefined;
}
