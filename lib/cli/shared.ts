/** What the training commands share: their run-folder and skip flags, and the frame around a training run. */
import * as path from "node:path";
import { initBackend } from "../engine/backend";
import { CaptionData, prepareCaptionData } from "../encoder/feature-dataset";
import { writeJsonAtomic } from "../util/io";
import { readCheckpointMeta } from "../util/checkpoint";
import * as fs from "node:fs";
import { claimRunDir } from "../util/lock";
import type { FlagSpec } from "./command";
import { requireFlags } from "./command";
import { LAYERS, featureMap } from "../encoder/feature-maps";

export const SKIP_FLAGS = {
  "skip-missing": { type: "boolean", help: "skip listed images that have no photo (named) instead of failing" },
  "skip-bad": { type: "boolean", help: "skip photos that cannot be decoded (named) instead of failing" },
} as const satisfies Record<string, FlagSpec>;

/** Where the cached region features are (the one rule every command shares: lib/encoder defaultFeaturesDir). */
export const FEATURES_FLAG = {
  features: { type: "string", placeholder: "DIR", help: "feature cache (default data/features/<data folder name>)" },
} as const satisfies Record<string, FlagSpec>;

/** Which ResNet-50 features the captioner reads (lib/encoder FEATURE_MAPS; SCAN reads the seed's). */
export const FEATURE_MAP_FLAGS = {
  grid: {
    type: "int",
    help: "region grid of the features: 7 (default) or 14 (conv4's 14×14×1024: finer attention)",
  },
  layer: {
    type: "string",
    choices: LAYERS,
    help: "ResNet-50 stage: conv5 (7×7×2048, the seed's; default on grid 7) or conv4 (1024 per region, more local; on grid 7 averaged over 2×2 cells)",
  },
} as const satisfies Record<string, FlagSpec>;

/** Training on each photo and its mirror image (lib/encoder MirrorView). */
export const MIRROR_FLAG = {
  mirror: {
    type: "boolean",
    help: "also train on the train photos flipped left to right (left/right swapped in their captions), each epoch half of them; their features are cached once in <features>-mirrored",
  },
} as const satisfies Record<string, FlagSpec>;

export const RUN_FLAGS = {
  resume: { type: "boolean", help: "continue the checkpoint in --out" },
  overwrite: { type: "boolean", help: "replace the checkpoint in --out" },
} as const satisfies Record<string, FlagSpec>;

interface RunValues {
  "data-dir"?: string;
  out?: string;
  features?: string;
  grid?: number;
  layer?: string;
  mirror?: boolean;
  resume: boolean;
  overwrite: boolean;
  "skip-missing": boolean;
  "skip-bad": boolean;
}

/**
 * A training command's frame: the run folder claimed (locked; a finished run needs --resume or --overwrite), the
 * backend, the data with its features, the skipped images written beside the checkpoint; `train` gets the
 * checkpoint folder. The lock is released however it ends.
 */
export async function trainingRun(
  command: string,
  v: RunValues,
  train: (data: CaptionData, checkpoint: string, log: (line: string) => void) => Promise<void>,
): Promise<void> {
  requireFlags(command, v as unknown as Record<string, unknown>, "data-dir", "out");
  const checkpoint = path.join(v.out!, "checkpoint");
  const log = (l: string) => console.log(l);
  const what = `${command} --out ${v.out}`;
  const release = claimRunDir(v.out!, checkpoint, { resume: v.resume, overwrite: v.overwrite, log, what });
  try {
    sameMirror(v.resume, checkpoint, !!v.mirror);
    await initBackend();
    const data = await prepareCaptionData(v["data-dir"]!, {
      featuresDir: v.features,
      map: featureMap(v),
      mirror: v.mirror,
      skipMissing: v["skip-missing"],
      skipBad: v["skip-bad"],
    });
    if (data.skipped.length) writeJsonAtomic(path.join(v.out!, "skipped-images.json"), data.skipped);
    await train(data, checkpoint, log);
  } finally {
    release();
  }
}

/** `--resume` with the data the run was trained on: with mirror images (`--mirror`) or without, as stored. */
function sameMirror(resume: boolean, checkpoint: string, mirror: boolean): void {
  if (!resume || !fs.existsSync(path.join(checkpoint, "checkpoint.json"))) return;
  const stored = !!readCheckpointMeta<{ mirror?: boolean }>(checkpoint).config.mirror;
  if (stored !== mirror)
    throw new Error(
      `--resume continues ${checkpoint}, trained ${stored ? "with" : "without"} mirror images: ${stored ? "add" : "drop"} --mirror`,
    );
}

/**
 * `--resume` continues a run with its checkpoint's settings: a flag given with another value than the checkpoint's
 * would be ignored, so it is refused by name (the same command line with --resume added is fine). `paths` maps each
 * such flag to where its value lives in the config (`decoder.decoderDim`).
 */
export function refuseIgnoredFlags(
  o: { resume: boolean; given: ReadonlySet<string>; checkpoint: string },
  config: object,
  paths: Record<string, string>,
): void {
  if (!o.resume || !fs.existsSync(path.join(o.checkpoint, "checkpoint.json"))) return;
  const stored = readCheckpointMeta<object>(o.checkpoint).config;
  const at = (c: object, p: string) => p.split(".").reduce<unknown>((x, k) => (x as Record<string, unknown>)?.[k], c);
  for (const [flag, p] of Object.entries(paths)) {
    if (!o.given.has(flag) || at(stored, p) === undefined) continue;
    const [mine, theirs] = [at(config, p), at(stored, p)];
    if (JSON.stringify(mine) !== JSON.stringify(theirs))
      throw new Error(
        `--resume continues ${o.checkpoint} with its own settings: --${flag} (${JSON.stringify(mine)}) differs from its ` +
          `${JSON.stringify(theirs)} and would be ignored; drop --${flag}, or train into a new --out`,
      );
  }
}
