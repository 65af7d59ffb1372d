import { strict as assert } from "node:assert";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { acquireLock, claimRunDir } from "../lib/util";
import { tmpDir } from "./helpers";

const root = path.resolve(__dirname, "..");
const tsx = path.join(root, "node_modules", "tsx", "dist", "loader.mjs");

/** A real second process that takes `file` and holds it until killed; resolves once it holds it. */
function holder(file: string): Promise<ReturnType<typeof spawn>> {
  const code = `require(${JSON.stringify(path.join(root, "lib", "util", "lock.ts"))}).acquireLock(${JSON.stringify(file)}, "the test holder"); console.log("held"); setInterval(() => {}, 1000);`;
  const p = spawn(process.execPath, ["--import", tsx, "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    p.stdout!.on("data", (d) => String(d).includes("held") && resolve(p));
    p.on("exit", (c) => reject(new Error(`holder exited ${c}`)));
  });
}

describe("locks and run folders: nothing replaced without a word", () => {
  it("refuses a lock held by a live process, naming it, and takes over one whose process was killed", async () => {
    const file = path.join(tmpDir(), "run", ".lock");
    const p = await holder(file);
    assert.throws(
      () => acquireLock(file, "a second run"),
      new RegExp(`in use by process ${p.pid} .*the test holder.*wait for it to finish or use another folder`),
    );
    p.kill("SIGKILL");
    await new Promise((r) => p.on("exit", r));
    const said: string[] = [];
    const release = acquireLock(file, "after the kill", (l) => said.push(l));
    assert.match(said.join(), new RegExp(`taking over the lock .*its process ${p.pid} \\(the test holder\\) is gone`));
    release();
    assert.ok(!fs.existsSync(file));
  });

  it("refuses to train over a finished run unless --resume or --overwrite, and says when --resume starts from scratch", () => {
    const run = tmpDir();
    const ck = path.join(run, "checkpoint");
    const said: string[] = [];
    const log = (l: string) => said.push(l);
    claimRunDir(run, ck, { resume: true, log, what: "t" })();
    assert.match(said.pop()!, /--resume: no checkpoint in .* yet, starting from scratch/);
    fs.mkdirSync(ck);
    fs.writeFileSync(path.join(ck, "checkpoint.json"), JSON.stringify({ epoch: 4 }));
    assert.throws(
      () => claimRunDir(run, ck, { log, what: "t" }),
      new RegExp(
        `${run} already holds a checkpoint \\(epoch 4\\): add --resume to continue it or --overwrite to replace it`,
      ),
    );
    assert.ok(!fs.existsSync(path.join(run, ".lock")), "a refused claim releases its lock");
    claimRunDir(run, ck, { resume: true, log, what: "t" })();
    claimRunDir(run, ck, { overwrite: true, log, what: "t" })();
    assert.match(said.pop()!, /--overwrite: the checkpoint in .* will be replaced/);
    const release = claimRunDir(run, ck, { resume: true, log, what: "first" });
    assert.throws(
      () => claimRunDir(run, ck, { resume: true, log, what: "second" }),
      /is in use by process \d+ .*\(first/,
    );
    release();
  });

  it("npm start's hint is what a user types through npm (npm keeps --resume for itself)", () => {
    const run = tmpDir();
    fs.mkdirSync(path.join(run, "checkpoint"), { recursive: true });
    fs.writeFileSync(path.join(run, "checkpoint", "checkpoint.json"), JSON.stringify({ epoch: 3 }));
    const r = spawnSync("npm", ["start", "--silent", "--", "--out", run], { cwd: root, encoding: "utf8" });
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /already holds a checkpoint \(epoch 3\): run npm start -- --resume to continue it or npm start -- --overwrite to replace it/,
    );
  });

  it("the CLI refuses a second training into a finished run folder", () => {
    const run = tmpDir();
    fs.mkdirSync(path.join(run, "checkpoint"), { recursive: true });
    fs.writeFileSync(path.join(run, "checkpoint", "checkpoint.json"), JSON.stringify({ epoch: 2 }));
    const r = spawnSync(path.join(root, "bin", "attend-tell"), ["train", "--data-dir", run, "--out", run], {
      encoding: "utf8",
    });
    assert.equal(r.status, 1);
    assert.equal(
      r.stderr.trim(),
      `attend-tell: ${run} already holds a checkpoint (epoch 2): add --resume to continue it or --overwrite to replace it`,
    );
  });
});
