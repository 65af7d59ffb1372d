/**
 * `attend-tell <command>`: a thin layer over the same lib functions the notebooks call.
 *   synthetic   generate the synthetic scenes            vocab    build a vocabulary from a train split
 *   backend     print the TensorFlow.js backend chosen   start    the main job (npm start)
 */
import * as path from "node:path";
import { parseArgs } from "node:util";
import { initBackend, describeBackend } from "./backend";
import { generateSynthetic } from "./synthetic";
import { buildVocabulary } from "./vocabulary";
import { trainCaptions } from "./dataset";
import { Progress } from "./progress";
import { flickr8kDir, projectRoot, quickMode, syntheticDir } from "./paths";
import { runPipeline } from "./pipeline";

const HELP = `attend-tell — attention for images and text (Show, Attend and Tell; SCAN)

Commands:
  start       [--data synthetic|flickr8k] [--data-dir DIR] [--out runs/NAME] [--batch-size N] [--skip-missing]
              the main job on the default data (synthetic scenes unless --data flickr8k or FLICKR8K_DIR)
  synthetic   [--out DIR] [--n 2000] [--seed 1]     generate the synthetic scenes
  vocab       --data-dir DIR [--threshold 5] --out FILE   vocabulary from the train split
  backend     print which TensorFlow.js backend is used and why

Environment: ATTEND_TELL_BACKEND=node-gpu|webgpu|node|wasm|cpu, FLICKR8K_DIR, ATTEND_TELL_QUICK=1 (see environment.md)`;

function int(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

export async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case "synthetic": {
      const { values } = parseArgs({ args: rest, options: { out: { type: "string" }, n: { type: "string" }, seed: { type: "string" } } });
      const out = values.out ?? syntheticDir();
      const n = int(values.n, "n", 2000);
      const bar = new Progress(n, "rendering", "img");
      await generateSynthetic(out, { n, seed: int(values.seed, "seed", 1) }, () => bar.tick());
      console.log(`wrote ${n} synthetic scenes to ${out} in ${bar.elapsed.toFixed(1)} s`);
      return;
    }
    case "vocab": {
      const { values } = parseArgs({
        args: rest,
        options: { "data-dir": { type: "string" }, threshold: { type: "string" }, out: { type: "string" } },
      });
      if (!values["data-dir"] || !values.out) throw new Error("vocab needs --data-dir DIR and --out FILE");
      const vocab = buildVocabulary(trainCaptions(values["data-dir"]), int(values.threshold, "threshold", 5));
      vocab.save(values.out);
      console.log(`vocabulary of ${vocab.size} ids (threshold ${vocab.freqThreshold}) written to ${values.out}`);
      return;
    }
    case "backend": {
      console.log(describeBackend(await initBackend({ quiet: true })));
      return;
    }
    case "start": {
      const { values } = parseArgs({
        args: rest,
        options: {
          data: { type: "string" },
          "data-dir": { type: "string" },
          out: { type: "string" },
          "batch-size": { type: "string" },
          "skip-missing": { type: "boolean" },
        },
      });
      const data = values.data ?? (process.env.FLICKR8K_DIR ? "flickr8k" : "synthetic");
      if (data !== "synthetic" && data !== "flickr8k") throw new Error(`--data must be synthetic or flickr8k, got ${data}`);
      let dataDir = values["data-dir"];
      if (!dataDir && data === "flickr8k") {
        dataDir = flickr8kDir();
        if (!dataDir) throw new Error("--data flickr8k: no Flickr8k found; set FLICKR8K_DIR or pass --data-dir");
      }
      await runPipeline({
        data,
        dataDir,
        out: values.out ?? path.join(projectRoot(), "runs", data),
        batchSize: int(values["batch-size"], "batch-size", 32),
        quick: quickMode(),
        skipMissing: values["skip-missing"] ?? false,
      });
      return;
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(HELP);
      return;
    default:
      throw new Error(`unknown command ${JSON.stringify(cmd)}\n\n${HELP}`);
  }
}

// Loaded as a module by tests and notebooks; run as a program by bin/attend-tell and npm scripts.
if (require.main === module) {
  main(process.argv.slice(2)).catch((e: Error) => {
    console.error(`attend-tell: ${e.message}`);
    process.exit(1);
  });
}
