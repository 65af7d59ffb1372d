/**
 * Nothing a user owns is lost, nothing stored is read unverified, no lock lasts for ever: one rule per class of
 * failure, each checked as a careless user, a crashing machine or a full disk would meet it — with real processes
 * where the failure needs them (a dead writer's pid, two exports at once, a lock whose pid was reused).
 */
import { strict as assert } from "node:assert";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import {
  CHECKPOINT_VERSION,
  TORN_LOCK_MS,
  acquireLock,
  claimRunDir,
  quickMode,
  readCheckpoint,
  readCheckpointMeta,
  resumableVocabulary,
  startTicks,
  writeCheckpoint,
} from "../lib/util";
import { buildVocabulary, readSplitFile } from "../lib/data";
import { generateSynthetic } from "../lib/data/synthetic";
import { notAPhoto, sharp } from "../lib/data/image";
import { attentionPng, isHeatmapPng } from "../lib/captioning/heatmap";
import { heatmapFiles } from "../lib/cli/captioning";
import { refuseIgnoredFlags } from "../lib/cli/shared";
import { COMMANDS } from "../lib/cli";
import { parseCommand } from "../lib/cli/command";
import { CHECKPOINT_FORMAT, DecoderRNN, beamSearch, getDefaultConfig, loadCheckpoint } from "../lib/captioning";
import { bestScored, retrievalRecall } from "../lib/matching";
import { cacheHome } from "../lib/encoder/weights";
import { setupBackend, tinyFlickr, tmpDir } from "./helpers";

const root = path.resolve(__dirname, "..");
const cli = path.join(root, "bin", "attend-tell");
const FORMAT = "attend-tell/test-checkpoint";
const command = (name: string) => COMMANDS.find((c) => c.name === name)!;

async function smallCheckpoint(dir: string, config: object = { dim: 2 }): Promise<void> {
  const w = { "fc.weight": tf.tensor2d([[0.5, -1.25]]) };
  await writeCheckpoint(dir, {
    weights: w,
    vocab: buildVocabulary(["a dog runs", "a dog"], 1),
    history: { epoch: [] },
    meta: { format: FORMAT, version: 1, epoch: 1, config, weightsOnly: true },
  });
  tf.dispose(Object.values(w));
}

/** The pid of a process that has exited: what a killed writer leaves in its temporary folders' names. */
function deadPid(): number {
  const p = spawnSync(process.execPath, ["-e", "console.log(process.pid)"], { encoding: "utf8" });
  return Number(p.stdout.trim());
}

function run(args: string[], cwd = root): Promise<{ status: number; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cli, args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    p.stderr.on("data", (d) => (stderr += d));
    p.on("exit", (status) => resolve({ status: status ?? -1, stderr }));
  });
}

describe("nothing lost: outputs never replace what they did not write", () => {
  before(setupBackend);

  it("export refuses a folder of the user's, the run folder it exports from and the checkpoint itself", async () => {
    const runDir = tmpDir();
    const ck = path.join(runDir, "checkpoint");
    await smallCheckpoint(ck);
    const photos = tmpDir();
    fs.writeFileSync(path.join(photos, "notes.txt"), "mine");
    let r = await run(["export", "--checkpoint", ck, "--out", photos]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /holds notes\.txt, which is not part of a checkpoint: nothing was replaced/);
    r = await run(["export", "--checkpoint", ck, "--out", photos, "--overwrite"]);
    assert.match(r.stderr, /holds no export to replace; choose a new folder/);
    assert.equal(fs.readFileSync(path.join(photos, "notes.txt"), "utf8"), "mine");
    for (const out of [runDir, ck, path.join(ck, "export")]) {
      r = await run(["export", "--checkpoint", ck, "--out", out, "--overwrite"]);
      assert.equal(r.status, 1, r.stderr);
    }
    assert.ok(readCheckpointMeta(ck).files, "the checkpoint is untouched");
    // "." and "DIR/" name the folder itself: the working directory is refused, a trailing slash is fine
    r = await run(["export", "--checkpoint", ck, "--out", "."], photos);
    assert.match(r.stderr, /holds notes\.txt/);
    r = await run(["export", "--checkpoint", ck, "--out", path.join(runDir, "exported") + "/"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readCheckpointMeta(path.join(runDir, "exported")).weightsOnly, true);
    assert.deepEqual(fs.readdirSync(runDir).sort(), ["checkpoint", "exported"], "no temporary folder left");
  });

  it("two exports into one new folder: one succeeds, the other says so and replaces nothing", async () => {
    const ck = path.join(tmpDir(), "checkpoint");
    await smallCheckpoint(ck);
    const out = path.join(tmpDir(), "model");
    const rs = await Promise.all([1, 2].map(() => run(["export", "--checkpoint", ck, "--out", out])));
    assert.deepEqual(rs.map((r) => r.status).sort(), [0, 1], rs.map((r) => r.stderr).join("\n"));
    assert.match(
      rs.find((r) => r.status === 1)!.stderr,
      /already (holds a checkpoint|exists)|created by another process/,
    );
    readCheckpointMeta(out);
  });

  it("synthetic refuses a folder that is not a synthetic set, and replaces its own", async () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, "holiday.jpg"), "a photo");
    await assert.rejects(generateSynthetic(dir, { n: 3 }), /holds holiday\.jpg, which is not part of a synthetic set/);
    assert.ok(fs.existsSync(path.join(dir, "holiday.jpg")));
    const own = path.join(tmpDir(), "scenes");
    await generateSynthetic(own, { n: 3 });
    await generateSynthetic(own, { n: 4, seed: 2 });
    assert.equal(fs.readdirSync(path.join(own, "Images")).length, 4);
  });

  it("vocab --out replaces a vocabulary file only", async () => {
    const data = await tinyFlickr();
    const notes = path.join(tmpDir(), "notes.txt");
    fs.writeFileSync(notes, "mine");
    const r = await run(["vocab", "--data-dir", data, "--out", notes]);
    assert.match(r.stderr, /notes\.txt exists and is not a vocabulary file: nothing was replaced/);
    assert.equal(fs.readFileSync(notes, "utf8"), "mine");
    const v = path.join(path.dirname(notes), "vocab.json");
    for (let i = 0; i < 2; i++) assert.equal((await run(["vocab", "--data-dir", data, "--out", v])).status, 0);
  });

  it("caption --heatmap never writes over an input photo or a file it did not write", async () => {
    const dir = tmpDir();
    const [a1, a2] = [path.join(dir, "A-1.png"), path.join(dir, "A-2.png")];
    fs.writeFileSync(a1, "photo 1");
    fs.writeFileSync(a2, "photo 2");
    assert.throws(() => heatmapFiles(path.join(dir, "A.png"), [a1, a2]), /would write .*A-1\.png over the input image/);
    const notes = path.join(dir, "notes.png");
    fs.writeFileSync(notes, "not a heatmap");
    assert.throws(() => heatmapFiles(notes, [a1]), /exists and is not an attention map written by caption/);
    const photo = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#888" } })
      .png()
      .toBuffer();
    const png = await attentionPng(new Uint8Array(photo), ["a"], [new Array(49).fill(1 / 49)]);
    const earlier = path.join(dir, "earlier.png");
    fs.writeFileSync(earlier, png);
    assert.ok(isHeatmapPng(earlier));
    const meta = await sharp(png).metadata();
    assert.equal(meta.format, "png", "the marked PNG still decodes");
    assert.deepEqual(heatmapFiles(earlier, [a1]), [earlier], "an earlier attention map is replaced");
  });
});

describe("nothing lost: every stored byte verified, checkpoint.json included", () => {
  before(setupBackend);

  const damage = async (edit: (text: string) => string) => {
    const dir = path.join(tmpDir(), "checkpoint");
    await smallCheckpoint(dir);
    const file = path.join(dir, "checkpoint.json");
    fs.writeFileSync(file, edit(fs.readFileSync(file, "utf8")));
    return dir;
  };

  it("refuses a one-byte edit of a config value and a flipped bit in the key that lists the sums", async () => {
    let dir = await damage((t) => t.replace('"dim": 2', '"dim": 3'));
    await assert.rejects(
      readCheckpoint(dir, FORMAT, "test"),
      /checkpoint\.json is damaged \(its content does not match its sha256\)/,
    );
    dir = await damage((t) => t.replace('"files"', '"fhles"'));
    await assert.rejects(readCheckpoint(dir, FORMAT, "test"), /damaged \(unknown field "fhles"\)/);
    dir = await damage((t) => t.replace(`"version": ${CHECKPOINT_VERSION}`, `"version": ${CHECKPOINT_VERSION + 1}`));
    await assert.rejects(readCheckpoint(dir, FORMAT, "test"), /written by a newer attend-tell/);
  });

  it("refuses unknown values in a decoder's config by name", () => {
    const c = getDefaultConfig(10);
    assert.throws(
      () => new DecoderRNN({ ...c, initState: "lerned" as never }),
      /initState must be one of mean, got "lerned"/,
    );
    assert.throws(
      () => new DecoderRNN({ ...c, featureMap: "conv9" as never }),
      /featureMap must be one of .*got "conv9"/,
    );
    assert.throws(() => new DecoderRNN({ ...c, dropout: 5 }), /dropout must be a number in \[0, 1\)/);
    assert.throws(() => new DecoderRNN({ ...c, attnDim: 3 } as never), /unknown field "attnDim"/);
  });

  it("a checkpoint of a variant that was removed is refused in one line naming the variant", async () => {
    const config = { ...getDefaultConfig(10), embedSize: 4, attentionDim: 4, encoderDim: 6, decoderDim: 4 };
    const d = new DecoderRNN(config);
    for (const [field, value, name] of [
      ["gate", false, "no gate on the context"],
      ["initState", "learned", "a learned initial state"],
      ["deepOutput", true, "the deep output"],
    ] as const) {
      const dir = path.join(tmpDir(), "checkpoint");
      await writeCheckpoint(dir, {
        weights: d.namedVariables(),
        vocab: buildVocabulary(["a dog runs"], 1),
        history: { epoch: [] },
        meta: {
          format: CHECKPOINT_FORMAT,
          version: 1,
          epoch: 3,
          config: { decoder: { ...config, [field]: value } },
          weightsOnly: true,
        },
      });
      await assert.rejects(loadCheckpoint(dir), (e: Error) => {
        assert.match(e.message, new RegExp(`^checkpoint ${dir}: decoder config: ${name} .* no longer supported`));
        assert.ok(!e.message.includes("\n") && !/restore the folder/.test(e.message), e.message);
        return true;
      });
    }
    d.dispose();
  });

  it("a checkpoint whose writer was killed between its two renames is restored, and dead writers' copies removed", async () => {
    const parent = tmpDir();
    const dir = path.join(parent, "checkpoint");
    await smallCheckpoint(dir, { dim: 1 });
    const pid = deadPid();
    fs.renameSync(dir, `${dir}.old-${pid}`); // the old one moved aside …
    await smallCheckpoint(path.join(parent, "new"), { dim: 2 });
    fs.renameSync(path.join(parent, "new"), `${dir}.tmp-${pid}`); // … the new one complete, not yet moved in
    const said: string[] = [];
    claimRunDir(parent, dir, { resume: true, log: (l) => said.push(l), what: "t" })();
    assert.match(said.join("\n"), new RegExp(`restoring the checkpoint that process ${pid} was saving`));
    assert.deepEqual(readCheckpointMeta(dir).config, { dim: 2 });
    assert.deepEqual(fs.readdirSync(parent).sort(), ["checkpoint"], "the old copy removed");
    // a copy cut short (no checkpoint.json yet): the last good checkpoint stays, the copy goes
    fs.mkdirSync(`${dir}.tmp-${pid}/model`, { recursive: true });
    const c = await readCheckpoint(dir, FORMAT, "test");
    tf.dispose(Object.values(c.weights));
    assert.deepEqual(fs.readdirSync(parent).sort(), ["checkpoint"]);
  });
});

describe("nothing lost: rankings, resumes, locks, values and errors", () => {
  before(setupBackend);

  it("ties and NaN rank against the true match: a broken model scores no recall, not a perfect one", () => {
    const caps = [0, 1, 2];
    for (const s of [new Array(9).fill(0.5), new Array(9).fill(NaN)]) {
      const r = retrievalRecall(s, 3, caps);
      assert.deepEqual([r.i2t.r1, r.t2i.r1, r.i2t.r5], [0, 0, 100 * 1], JSON.stringify(r));
    }
    assert.throws(
      () => bestScored(["a.jpg", "b.jpg"], [0.3, NaN], 1),
      /the model scores "b\.jpg" as NaN: its weights are damaged or its training diverged/,
    );
    assert.deepEqual(bestScored(["a.jpg", "b.jpg"], [0.3, 0.4], 1), [{ item: "b.jpg", score: 0.4 }]);
    const right = retrievalRecall([1, 0, 0, 0, 1, 0, 0, 0, 1], 3, caps);
    assert.deepEqual([right.i2t.r1, right.t2i.r1], [100, 100]);
    assert.throws(
      () => parseCommand(command("evaluate-matching"), ["--querybank-beta", "0"]),
      /--querybank-beta must be a number > 0, got "0"/,
    );
  });

  it("resume refuses data whose vocabulary numbers the words differently, and flags it would ignore", async () => {
    const a = buildVocabulary(["a dog runs", "a cat"], 1);
    const b = buildVocabulary(["a dog walks", "a cat"], 1);
    assert.throws(
      () => resumableVocabulary("runs/x/checkpoint", a, b, "data/one"),
      /numbers the words differently .*\(id \d+ is "walks", not "runs"\).*data\/one/,
    );
    resumableVocabulary("runs/x/checkpoint", a, buildVocabulary(["a dog runs", "a cat"], 1));
    const ck = path.join(tmpDir(), "checkpoint");
    await smallCheckpoint(ck, { lr: 0.001, decoder: { decoderDim: 512 } });
    const paths = { lr: "lr", decoder: "decoder.decoderDim" };
    const fresh = { lr: 0.001, decoder: { decoderDim: 256 } };
    assert.throws(
      () => refuseIgnoredFlags({ resume: true, given: new Set(["decoder"]), checkpoint: ck }, fresh, paths),
      /--decoder \(256\) differs from its 512 and would be ignored; drop --decoder/,
    );
    refuseIgnoredFlags({ resume: true, given: new Set(["lr"]), checkpoint: ck }, fresh, paths); // the same value
    refuseIgnoredFlags({ resume: false, given: new Set(["decoder"]), checkpoint: ck }, fresh, paths);
  });

  it("takes over a lock that names no process once it is old, and one whose pid now belongs to another process", async () => {
    const file = path.join(tmpDir(), "run", ".lock");
    fs.mkdirSync(path.dirname(file));
    fs.writeFileSync(file, ""); // a full disk or a kill between create and write
    assert.throws(
      () => acquireLock(file, "second"),
      /in use by another process/,
      "a fresh empty lock may be being written",
    );
    const old = new Date(Date.now() - 2 * TORN_LOCK_MS);
    fs.utimesSync(file, old, old);
    const said: string[] = [];
    acquireLock(file, "after a torn lock", (l) => said.push(l))();
    assert.match(said.join(), /it names no process \(a write cut short \d+ s ago\)/);

    const other = spawn("sleep", ["30"]); // an unrelated live process that got the holder's pid
    try {
      await new Promise((r) => setTimeout(r, 100));
      const owner = { pid: other.pid, host: os.hostname(), started: "", what: "a run before the reboot" };
      const ticks = startTicks(other.pid!);
      if (ticks === undefined) return; // not Linux: pid reuse cannot be told apart
      fs.writeFileSync(file, JSON.stringify({ ...owner, ticks }));
      assert.throws(() => acquireLock(file, "second"), /in use by process/, "the holder itself is alive");
      fs.writeFileSync(file, JSON.stringify({ ...owner, ticks: ticks - 1 }));
      acquireLock(file, "after pid reuse", (l) => said.push(l))();
      assert.match(said.pop()!, /its process \d+ \(a run before the reboot\) is gone/);
    } finally {
      other.kill();
    }
  });

  it("a FIFO or a folder named like a photo is named at once, never read", function () {
    const dir = tmpDir();
    const fifo = path.join(dir, "pipe.jpg");
    if (spawnSync("mkfifo", [fifo]).status !== 0) this.skip();
    assert.throws(() => notAPhoto(fifo), /not a regular file \(a FIFO, socket or device\)/);
    fs.mkdirSync(path.join(dir, "album.jpg"));
    assert.throws(() => notAPhoto(path.join(dir, "album.jpg")), /it is a folder, not a photo/);
  });

  it("refuses values that mean nothing where the flags are declared", () => {
    const train = command("train");
    for (const [flag, value, why] of [
      ["dropout", "5", "a number ≥ 0 and < 1"],
      ["plateau-factor", "7", "a number > 0 and < 1"],
      ["lr", "0", "a number > 0"],
    ])
      assert.throws(
        () => parseCommand(train, [`--${flag}`, value]),
        new RegExp(`--${flag} must be ${why}, got "${value}"`),
      );
    assert.throws(
      () => parseCommand(command("caption"), ["--beam", "-1", "x.jpg"]),
      /--beam must be a positive integer, got "-1"/,
    );
    assert.deepEqual([...parseCommand(train, ["--lr", "0.01", "--epochs", "3"]).given].sort(), ["epochs", "lr"]);
    const env = { ...process.env };
    try {
      process.env.ATTEND_TELL_QUICK = "2";
      assert.throws(() => quickMode(), /ATTEND_TELL_QUICK=2 means nothing: set it to 1/);
      process.env.ATTEND_TELL_QUICK = "0";
      assert.equal(quickMode(), false);
      process.env.XDG_CACHE_HOME = "";
      assert.equal(cacheHome(), path.join(os.homedir(), ".cache"), "empty XDG_CACHE_HOME means the default");
      process.env.XDG_CACHE_HOME = "relative";
      assert.equal(cacheHome(), path.join(os.homedir(), ".cache"));
    } finally {
      process.env.ATTEND_TELL_QUICK = env.ATTEND_TELL_QUICK;
      if (env.ATTEND_TELL_QUICK === undefined) delete process.env.ATTEND_TELL_QUICK;
      if (env.XDG_CACHE_HOME === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = env.XDG_CACHE_HOME;
    }
  });

  it("says a read-only --out is read-only, not ENOENT (a real read-only mount, where this machine allows one)", async function () {
    const ro = tmpDir();
    if (spawnSync("mount", ["-t", "tmpfs", "-o", "ro", "tmpfs", ro]).status !== 0) this.skip();
    try {
      const r = await run(["synthetic", "--out", path.join(ro, "scenes"), "--n", "3"]);
      assert.equal(r.status, 1);
      assert.match(r.stderr, new RegExp(`cannot write .*: ${ro} is on a read-only file system; choose another folder`));
    } finally {
      spawnSync("umount", [ro]);
    }
  });

  it("names the file and line of an image listed twice, and a beam wider than the vocabulary", async () => {
    const file = path.join(tmpDir(), "Flickr_8k.devImages.txt");
    fs.writeFileSync(file, "a.jpg\nb.jpg\na.jpg\n");
    assert.throws(
      () => readSplitFile(file),
      new RegExp(`${file}:3: image a\\.jpg is listed twice \\(first on line 1\\)`),
    );
    const d = new DecoderRNN({ ...getDefaultConfig(12), embedSize: 4, attentionDim: 4, encoderDim: 6, decoderDim: 4 });
    const f = tf.zeros([1, 4, 6]);
    await assert.rejects(
      beamSearch(d, f, 13),
      /beam width 13 must be between 1 and the vocabulary's 12 words \(--beam\)/,
    );
    tf.dispose([f]);
    d.dispose();
  });
});

describe("nothing lost: a checkpoint read while training replaces it", function () {
  this.timeout(90_000);
  before(setupBackend);

  it("reads the old or the new checkpoint, never a false 'damaged' (a real writer process saving in a loop)", async () => {
    const dir = path.join(tmpDir(), "checkpoint");
    await smallCheckpoint(dir);
    const tsx = path.join(root, "node_modules", "tsx", "dist", "loader.mjs");
    const code = `
      const tf = require("@tensorflow/tfjs");
      const { writeCheckpoint } = require(${JSON.stringify(path.join(root, "lib", "util", "checkpoint.ts"))});
      const { buildVocabulary } = require(${JSON.stringify(path.join(root, "lib", "data", "vocabulary.ts"))});
      (async () => {
        const vocab = buildVocabulary(["a dog runs"], 1);
        for (let epoch = 2; ; epoch++) {
          const w = { "fc.weight": tf.fill([64, 64], epoch) };
          await writeCheckpoint(${JSON.stringify(dir)}, { weights: w, vocab, history: { epoch: [] },
            meta: { format: ${JSON.stringify(FORMAT)}, version: 1, epoch, config: {}, weightsOnly: true } });
          tf.dispose(Object.values(w));
          if (epoch === 2) console.log("writing");
        }
      })();`;
    const writer = spawn(process.execPath, ["--import", tsx, "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
    try {
      await new Promise((resolve) => writer.stdout!.on("data", resolve));
      const epochs = new Set<number>();
      // read until the writer has replaced the checkpoint several times under the reader (or 40 s have passed)
      const deadline = Date.now() + 40_000;
      for (let i = 0; epochs.size < 6 && Date.now() < deadline; i++) {
        const c = await readCheckpoint(dir, FORMAT, "test");
        const w = await c.weights["fc.weight"].data();
        assert.ok(
          w.every((x) => x === c.meta.epoch),
          "weights and checkpoint.json of one save",
        );
        epochs.add(c.meta.epoch);
        tf.dispose(Object.values(c.weights));
      }
      assert.ok(epochs.size >= 6, `read ${epochs.size} different saves`);
    } finally {
      writer.kill("SIGKILL");
    }
  });
});
