/**
 * Exclusive locks on files and folders, across processes: a lock file created with O_EXCL holding the owner's pid
 * and host. A lock whose process is gone (killed, crashed) on this host is stale and is taken over, so `kill -9`
 * never leaves a folder locked for ever; a live owner gets a clear error naming it.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

interface Owner {
  pid: number;
  host: string;
  started: string;
  what: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function readOwner(file: string): Owner | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as Owner;
  } catch {
    return undefined; // being written, or torn: treated as held until it can be read
  }
}

/** The lock is held by another live process. */
export class LockHeldError extends Error {}

/**
 * Takes the lock `file` for `what` (a sentence: "training into runs/x"), or throws naming the process that holds it.
 * Returns the release function; the lock is also released when this process exits normally.
 */
export function acquireLock(file: string, what: string, log?: (line: string) => void): () => void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const me: Owner = { pid: process.pid, host: os.hostname(), started: new Date().toISOString(), what };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(file, "wx");
      fs.writeSync(fd, JSON.stringify(me));
      fs.closeSync(fd);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        process.off("exit", release);
        const o = readOwner(file);
        if (o?.pid === me.pid && o.host === me.host) fs.rmSync(file, { force: true });
      };
      process.on("exit", release);
      return release;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const o = readOwner(file);
      if (o && o.host === me.host && o.pid !== me.pid && !alive(o.pid)) {
        log?.(`taking over the lock ${file}: its process ${o.pid} (${o.what}) is gone`);
        fs.rmSync(file, { force: true });
        continue;
      }
      const who = o ? `process ${o.pid} on ${o.host} (${o.what}, since ${o.started})` : "another process";
      throw new LockHeldError(
        `${path.dirname(file)} is in use by ${who}; wait for it to finish or use another folder (lock: ${file})`,
      );
    }
  }
  throw new Error(`could not take the lock ${file}`);
}

/**
 * Runs `fn` holding the lock `file`, released however `fn` ends. `wait`: while another live process holds it, wait
 * (saying so once) instead of failing — for work the second caller can then find done, such as a feature cache.
 */
export async function withLock<T>(
  file: string,
  what: string,
  fn: () => Promise<T>,
  o: { log?: (line: string) => void; wait?: boolean } = {},
): Promise<T> {
  let release: () => void;
  for (let said = false; ;) {
    try {
      release = acquireLock(file, what, o.log);
      break;
    } catch (e) {
      if (!(e instanceof LockHeldError) || !o.wait) throw e;
      if (!said) o.log?.(`${e.message.replace(/; wait for it.*$/, "")}: waiting for it`);
      said = true;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await fn();
  } finally {
    release();
  }
}

/**
 * A training run's folder, claimed for one run: locked while it trains, and a finished run is never replaced by
 * accident — an existing checkpoint needs `resume` (continue it) or `overwrite` (replace it).
 */
export function claimRunDir(
  runDir: string,
  checkpointDir: string,
  o: { resume?: boolean; overwrite?: boolean; log: (line: string) => void; what: string },
): () => void {
  if (o.resume && o.overwrite) throw new Error("--resume and --overwrite contradict each other: choose one");
  const release = acquireLock(path.join(runDir, ".lock"), o.what, o.log);
  try {
    const meta = path.join(checkpointDir, "checkpoint.json");
    if (fs.existsSync(meta)) {
      if (!o.resume && !o.overwrite) {
        let epoch = "";
        try {
          epoch = ` (epoch ${JSON.parse(fs.readFileSync(meta, "utf8")).epoch})`;
        } catch {
          /* the message stands without it */
        }
        throw new Error(
          `${runDir} already holds a checkpoint${epoch}: add --resume to continue it or --overwrite to replace it`,
        );
      }
      if (o.overwrite) o.log(`--overwrite: the checkpoint in ${checkpointDir} will be replaced`);
    } else if (o.resume) o.log(`--resume: no checkpoint in ${checkpointDir} yet, starting from scratch`);
    return release;
  } catch (e) {
    release();
    throw e;
  }
}
