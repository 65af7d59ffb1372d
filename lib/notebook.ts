/**
 * The prologue every chapter (notebooks/NN-*.ipynb) starts with, as one call: the compiled lib checked against its
 * sources (a stale dist/ would silently show old code), the tfjs backend, the size (ATTEND_TELL_QUICK), and the data
 * folder — Flickr8k when there is one, else the synthetic scenes, generated on first use. It may import anything.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { BackendChoice, describeBackend, initBackend } from "./engine/backend";
import { ensureScenes } from "./data/synthetic";
import { findCheckpoint } from "./captioning/train";
import { flickr8kDir, projectRoot, quickMode, syntheticDir } from "./util/paths";
import { readCheckpointMeta } from "./util/checkpoint";

/** The first source under `srcLib` whose compiled file under `distLib` is missing or older, else undefined. */
export function staleCompiled(srcLib: string, distLib: string): string | undefined {
  const walk = (dir: string): string[] =>
    fs
      .readdirSync(dir, { withFileTypes: true })
      .flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
  for (const ts of walk(srcLib).filter((f) => f.endsWith(".ts"))) {
    const rel = path.relative(srcLib, ts);
    const js = path.join(distLib, rel.replace(/\.ts$/, ".js"));
    if (!fs.existsSync(js) || fs.statSync(js).mtimeMs < fs.statSync(ts).mtimeMs) return rel;
  }
  return undefined;
}

/** Throws, saying how to fix it, when the compiled lib the notebooks import is older than its sources. */
export function checkCompiled(): void {
  if (!__filename.endsWith(".js")) return; // running the sources themselves (tsx): nothing can be stale
  const stale = staleCompiled(path.join(projectRoot(), "lib"), path.join(projectRoot(), "dist", "lib"));
  if (stale) {
    throw new Error(
      `dist/lib is older than lib/ (lib/${stale} changed since it was compiled): run \`npm run kernel\` in ` +
        `${projectRoot()}, then restart the kernel`,
    );
  }
}

export interface Chapter {
  /** The backend tfjs runs on (describeBackend says it in words). */
  backend: BackendChoice;
  /** ATTEND_TELL_QUICK=1: the small size CI runs. */
  quick: boolean;
  /** The data folder the chapter uses (absent when it asked for none). */
  dataDir?: string;
  /** True when dataDir is Flickr8k, false for the synthetic scenes. */
  flickr: boolean;
}

/**
 * Starts a chapter. `data`: "any" — Flickr8k when present, else the synthetic scenes; "synthetic" — the scenes
 * (chapters whose lesson needs their ground-truth boxes or a short training run); "none".
 */
export async function startChapter(o: { data?: "any" | "synthetic" | "none" } = {}): Promise<Chapter> {
  checkCompiled();
  const backend = await initBackend({ quiet: true });
  const quick = quickMode();
  const want = o.data ?? "any";
  let dataDir: string | undefined;
  let flickr = false;
  if (want === "any") {
    dataDir = flickr8kDir();
    flickr = !!dataDir;
  }
  if (!dataDir && want !== "none") dataDir = (await ensureScenes(quick)).dataDir;
  console.log(
    `backend: ${describeBackend(backend)}; ${quick ? "quick (CI) size" : "full size"}${dataDir ? `; data: ${dataDir}` : ""}`,
  );
  return { backend, quick, dataDir, flickr };
}

/**
 * ATTEND_TELL_CHECKPOINT, resolved against the project root (a chapter's kernel runs in notebooks/, a reader types
 * paths from the root as README does); a folder without a checkpoint is refused rather than silently passed over.
 */
export function envCheckpoint(): string | undefined {
  const v = process.env.ATTEND_TELL_CHECKPOINT;
  if (!v) return undefined;
  const dir = path.resolve(projectRoot(), v);
  if (!findCheckpoint([dir])) throw new Error(`ATTEND_TELL_CHECKPOINT=${v}: no checkpoint at ${dir}`);
  return dir;
}

/**
 * The trained captioner a chapter shows: ATTEND_TELL_CHECKPOINT, then (at full size) the CLI's Flickr8k and
 * synthetic runs, then what chapters 05 and 06 trained; undefined when there is none yet.
 */
export function chapterCheckpoint(quick = quickMode()): string | undefined {
  const root = projectRoot();
  return findCheckpoint([
    envCheckpoint(),
    ...(quick ? [] : [path.join(root, "runs/flickr8k/checkpoint"), path.join(root, "runs/synthetic/checkpoint")]),
    path.join(root, "runs/notebooks/05-training/checkpoint"),
    path.join(root, "runs/notebooks/06-heatmaps/checkpoint"),
  ]);
}

/**
 * The captioner of the scenes at this size that the main job trained (`npm start`, runs/synthetic) or that chapter 06
 * trained with the main job's recipe (runs/notebooks/06-heatmaps), or ATTEND_TELL_CHECKPOINT; undefined when
 * there is none yet.
 */
export function sceneCheckpoint(quick = quickMode()): string | undefined {
  const given = envCheckpoint();
  if (given) return given;
  const root = projectRoot();
  const scenes = path.resolve(syntheticDir(quick));
  const runs = [path.join(root, "runs/synthetic/checkpoint"), path.join(root, "runs/notebooks/06-heatmaps/checkpoint")];
  return runs.find((d) => {
    if (!findCheckpoint([d])) return false;
    const { dataDir } = readCheckpointMeta(d);
    return !!dataDir && path.resolve(dataDir) === scenes;
  });
}
