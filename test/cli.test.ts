import { strict as assert } from "node:assert";
import { COMMANDS, help, main } from "../lib/cli";
import { parseCommand, usage } from "../lib/cli/command";
import { captionerCheckpoints, regionLayerConfig } from "../lib/cli/captioning";
import { SHIPPED, projectRoot } from "../lib/util";
import * as path from "node:path";
import { tmpDir } from "./helpers";
import { defaultTrainConfig } from "../lib/captioning";
import { getDefaultConfig, pipelineConfig } from "../lib/captioning";
import { featureMap } from "../lib/encoder";

async function output(argv: string[]): Promise<string> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => void lines.push(a.join(" "));
  try {
    await main(argv);
  } finally {
    console.log = log;
  }
  return lines.join("\n");
}

describe("CLI: a table of commands", () => {
  it("every command answers --help with each flag and its default", async () => {
    for (const c of COMMANDS) {
      const text = await output([c.name, "--help"]);
      assert.ok(text.startsWith(`attend-tell ${c.name}`), text);
      for (const flag of Object.keys(c.flags))
        assert.ok(text.includes(`--${flag}`), `${c.name} --help lacks --${flag}`);
    }
    const train = await output(["train", "--help"]);
    const d = defaultTrainConfig(getDefaultConfig(0));
    assert.match(train, new RegExp(`--epochs N +.*\\(default ${d.epochs}\\)`));
    assert.match(train, new RegExp(`--lambda N +.*\\(default ${d.lambda}\\)`)); // the config's default, not restated
    assert.doesNotMatch(train, /--attention-entropy|--deep-output|--no-gate|--init-state|--recurrence/); // removed variants
    assert.match(await output([]), /train-matching +Train SCAN/);
    assert.equal(
      help()
        .split("\n")
        .filter((l) => /^ {2}\S/.test(l)).length,
      COMMANDS.length,
    );
    // each summary up to the end of its first sentence, never cut at an abbreviation
    assert.match(help(), /evaluate-matching +.*e\.g\. SCAN's t2i \+ i2t ensemble\)\./);
    for (const c of COMMANDS) {
      for (const line of usage(c).split("\n"))
        assert.ok((line.match(/repeat/g) ?? []).length <= 1, `${c.name} --help says "repeat" twice: ${line}`);
    }
  });

  it("features, train and start take the same feature-map flags, and the main job's decoder reads that map", () => {
    for (const name of ["features", "train", "start"]) {
      const c = COMMANDS.find((k) => k.name === name)!;
      const map = (argv: string[]) => featureMap(parseCommand(c, argv).values as { grid?: number; layer?: string });
      assert.deepEqual(
        [map([]), map(["--grid", "14"]), map(["--grid", "7", "--layer", "conv4"])],
        ["conv5", "conv4", "conv4-pooled"],
        name,
      );
      assert.throws(() => parseCommand(c, ["--layer", "conv3"]), /--layer must be one of conv5, conv4/);
    }
    const config = (map?: "conv5" | "conv4-pooled", data: "synthetic" | "flickr8k" = "flickr8k") =>
      pipelineConfig({ data, quick: false, batchSize: 64, map }, 40).decoder;
    assert.deepEqual([config().encoderDim, config().featureMap], [2048, "conv5"]);
    assert.deepEqual([config("conv4-pooled").encoderDim, config("conv4-pooled").featureMap], [1024, "conv4-pooled"]);
    assert.deepEqual(
      [config(undefined, "synthetic").featureMap, config("conv5", "synthetic").featureMap],
      ["conv4-pooled", "conv5"],
    );
  });

  it("train and start take --region-layer and --region-dim (which implies the layer), and the main job's decoder then learns it", () => {
    const layer = (name: string, args: string[]) =>
      regionLayerConfig(
        parseCommand(
          COMMANDS.find((k) => k.name === name)!,
          args,
        ).values as Parameters<typeof regionLayerConfig>[0],
      );
    for (const name of ["train", "start"]) {
      assert.deepEqual(layer(name, ["--region-layer"]), { regionLayer: true, regionDim: undefined }, name);
      assert.deepEqual(layer(name, ["--region-dim", "512"]), { regionLayer: true, regionDim: 512 }, name);
      assert.deepEqual(layer(name, []), { regionLayer: undefined, regionDim: undefined }, name);
      assert.throws(() => layer(name, ["--region-dim", "0"]), /--region-dim/, name);
    }
    assert.deepEqual(layer("start", ["--no-region-layer"]), { regionLayer: false, regionDim: undefined });
    assert.throws(() => layer("start", ["--no-region-layer", "--region-dim", "256"]), /--no-region-layer contradicts/);
    // the main job's default per data set (MAIN_JOB_INPUTS), and what the flags make of it
    const decoder = (data: "synthetic" | "flickr8k", regionLayer?: boolean, regionDim?: number) => {
      const d = pipelineConfig({ data, quick: false, batchSize: 64, regionLayer, regionDim }, 40).decoder;
      return [d.featureMap, d.regionLayer, d.regionDim];
    };
    assert.deepEqual(decoder("synthetic"), ["conv4-pooled", true, 256]);
    assert.deepEqual(decoder("synthetic", false), ["conv4-pooled", undefined, undefined]);
    assert.deepEqual(decoder("synthetic", true, 128), ["conv4-pooled", true, 128]);
    assert.deepEqual(decoder("flickr8k"), ["conv5", undefined, undefined]);
    assert.deepEqual(decoder("flickr8k", undefined, 512), ["conv5", true, 512]);
    assert.throws(() => decoder("flickr8k", false, 512), /width \(512\) was given without the layer/);
  });

  it("parses typed flags with defaults and rejects bad values in one line naming the flag", () => {
    const train = COMMANDS.find((c) => c.name === "train")!;
    const { values } = parseCommand(train, ["--data-dir", "d", "--out", "o", "--epochs", "3", "--resume"]);
    assert.equal(values.epochs, 3);
    assert.equal(values.resume, true);
    assert.equal(values.overwrite, false);
    assert.equal(values["batch-size"], defaultTrainConfig(getDefaultConfig(0)).batchSize);
    assert.throws(
      () => parseCommand(train, ["--epochs", "0"]),
      /^Error: --epochs must be a positive integer, got "0"$/,
    );
    assert.throws(() => parseCommand(train, ["--lr=-1"]), /--lr must be a number > 0, got "-1"/);
    assert.throws(() => parseCommand(train, ["--engine", "gpu"]), /--engine must be one of onnx, tfjs, got "gpu"/);
    assert.throws(
      () => parseCommand(train, ["--bogus"]),
      /^Error: train: Unknown option '--bogus' \(attend-tell train --help lists the flags\)$/,
    );
    assert.throws(() => parseCommand(train, ["extra"]), /train takes no arguments, got "extra"/);
    const evaluate = COMMANDS.find((c) => c.name === "evaluate")!;
    assert.deepEqual(parseCommand(evaluate, ["--beam", "1,3,5"]).values.beam, [1, 3, 5]);
    assert.throws(
      () => parseCommand(evaluate, ["--beam", "1,x"]),
      /--beam must be a comma-separated list of positive integers/,
    );
    const matching = COMMANDS.find((c) => c.name === "evaluate-matching")!;
    assert.deepEqual(parseCommand(matching, ["--checkpoint", "a", "--checkpoint", "b"]).values.checkpoint, ["a", "b"]);
    assert.match(usage(matching), /--checkpoint DIR .*repeatable/);
  });

  it("says what is missing and which commands exist", async () => {
    await assert.rejects(
      main(["train", "--out", "runs/x"]),
      /^Error: train needs --data-dir \(attend-tell train --help\)$/,
    );
    await assert.rejects(main(["trian"]), /unknown command "trian"; the commands are: start, .*train,/);
    await assert.rejects(main(["caption"]), /caption needs one or more image files/);
    await assert.rejects(
      main(["train", "--data-dir", "d", "--out", "o", "--resume", "--overwrite"]),
      /--resume and --overwrite contradict each other/,
    );
    // self-critical training is its own command, starting from a trained captioner
    await assert.rejects(
      main(["train-scst", "--data-dir", "d", "--out", "o"]),
      /^Error: train-scst needs --from \(attend-tell train-scst --help\)$/,
    );
    await assert.rejects(main(["train", "--scst"]), /--scst/);
  });

  it("without --checkpoint, caption and evaluate take every member of the shipped captioner, or name the one missing", () => {
    assert.deepEqual(captionerCheckpoints(["a", "b"], "caption"), ["a", "b"]);
    assert.deepEqual(
      captionerCheckpoints([], "caption"),
      SHIPPED.captioner.map((name) => path.join(projectRoot(), "models", name)),
    );
    const root = process.env.ATTEND_TELL_ROOT;
    process.env.ATTEND_TELL_ROOT = tmpDir();
    try {
      assert.throws(
        () => captionerCheckpoints([], "evaluate"),
        new RegExp(`^Error: evaluate needs --checkpoint DIR \\(no shipped model at models/${SHIPPED.captioner[0]}\\)$`),
      );
    } finally {
      if (root === undefined) delete process.env.ATTEND_TELL_ROOT;
      else process.env.ATTEND_TELL_ROOT = root;
    }
  });
});
