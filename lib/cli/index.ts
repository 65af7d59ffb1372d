/**
 * `attend-tell <command>`: the table of commands, each a small function over the same lib functions the notebooks
 * call (lib/cli/*.ts); `attend-tell <command> --help` prints its flags and defaults. This folder may import anything
 * in lib/; nothing in lib/ imports it.
 */
import { describeBackend, initBackend } from "../engine/backend";
import { EncoderCNN } from "../encoder/encoder";
import { ensureWeights } from "../encoder/weights";
import { Command, defineCommand, parseCommand, usage } from "./command";
import { features, synthetic, vocab, weights } from "./data";
import { caption, evaluateCmd, exportCmd, report, start, trainCmd, trainScstCmd } from "./captioning";
import { evaluateMatchingCmd, retrieve, trainMatchingCmd } from "./matching";

const classify = defineCommand({
  name: "classify",
  summary: "ImageNet top-k of images with the full ResNet-50 (shows that the encoder's weights are real).",
  positionals: "IMAGE...",
  flags: {
    top: { type: "int", default: 5, help: "classes to show" },
    json: { type: "boolean", help: "print the result as JSON" },
  },
  async run(v, images) {
    if (images.length === 0) throw new Error("classify needs one or more image files (attend-tell classify --help)");
    ensureWeights();
    await initBackend({ quiet: v.json });
    const encoder = await EncoderCNN.load();
    const results = [];
    for (const image of images) {
      const [preds] = await encoder.classifyFiles([image], v.top);
      results.push({ image, top: preds.map((p) => ({ label: p.label, index: p.index, probability: p.probability })) });
    }
    if (v.json) return console.log(JSON.stringify(results, null, 1));
    for (const r of results) {
      console.log(
        `${r.image}\n${r.top.map((p) => `  ${(100 * p.probability).toFixed(1).padStart(5)}%  ${p.label}`).join("\n")}`,
      );
    }
  },
});

const backend = defineCommand({
  name: "backend",
  summary: "Print which TensorFlow.js backend is used and why.",
  flags: {},
  async run() {
    console.log(describeBackend(await initBackend({ quiet: true })));
  },
});

/** Every command, in the order of the method (help lists them so). */
export const COMMANDS: readonly Command[] = [
  start,
  synthetic,
  weights,
  classify,
  features,
  vocab,
  trainCmd,
  trainScstCmd,
  evaluateCmd,
  caption,
  report,
  exportCmd,
  trainMatchingCmd,
  evaluateMatchingCmd,
  retrieve,
  backend,
];

export function help(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    "attend-tell — attention for images and text (Show, Attend and Tell; SCAN)",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}${c.summary.split(/(?<=[a-z)][a-z)]\.) (?=[A-Z])/)[0]}`),
    "",
    "attend-tell <command> --help shows a command's flags and their defaults.",
    "Environment: ATTEND_TELL_BACKEND=node-gpu|webgpu|node|wasm|cpu, FLICKR8K_DIR, ATTEND_TELL_QUICK=1, ATTEND_TELL_WEIGHTS (see environment.md)",
  ].join("\n");
}

export async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") return console.log(help());
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd)
    throw new Error(
      `unknown command ${JSON.stringify(name)}; the commands are: ${COMMANDS.map((c) => c.name).join(", ")}`,
    );
  if (rest.includes("--help") || rest.includes("-h")) return console.log(usage(cmd));
  const { values, positionals, given } = parseCommand(cmd, rest);
  await cmd.run(values as never, positionals, given);
}
