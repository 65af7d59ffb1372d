/**
 * Exclusive locks on files and folders, across processes: a lock file created with O_EXCL holding the owner's pid,
 * host, boot and process start time. A lock is taken over when its holder is gone, whatever it holds: its process
 * died (killed, crashed), its pid now names another process (pid reuse after a reboot or in a container), or the
 * file never got its owner written (a full disk or a kill between create and write) — so no lock lasts for ever;
 * a live owner gets a clear error naming it.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { settleCheckpoint } from "./checkpoint";
import { pidAlive } from "./io";

interface Owner {
  pid: number;
  host: string;
  started: string;
  what: string;
  /** Linux: the kernel's boot id and the process's start time in clock ticks — together they name one process. */
  boot?: string;
  ticks?: number;
}

/** A lock file with no owner in it is being written for at most this long; older, it was torn. */
export const TORN_LOCK_MS = 5000;

function bootId(): string | undefined {
  try {
    return fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return undefined;
  }
}

/** Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot (Linux only). */
export function startTicks(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // the command name (field 2) may hold spaces and parentheses: count from the last ")"
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  } catch {
    return undefined;
  }
}

/** Whether the process that wrote `o` still runs: the pid answers, and on Linux it is the same process. */
function alive(o: Owner): boolean {
  if (o.boot && o.boot !== bootId()) return false; // written before a reboot
  if (!pidAlive(o.pid)) return false;
  const ticks = o.ticks === undefined ? undefined : startTicks(o.pid);
  return ticks === undefined || ticks === o.ticks;
}

function readOwner(file: string): Owner | undefined {
  try {
    const o = JSON.parse(fs.readFileSync(file, "utf8")) as Owner;
    return Number.isInteger(o?.pid) ? o : undefined;
  } catch {
    return undefined; // being written, or torn: held until TORN_LOCK_MS has passed
  }
}

/** Why the lock `file` can be taken over, or undefined while its holder may be alive. */
function staleness(file: string, host: string): string | undefined {
  const o = readOwner(file);
  if (o) {
    if (o.host !== host || o.pid === process.pid) return undefined;
    return alive(o) ? undefined : `its process ${o.pid} (${o.what}) is gone`;
  }
  try {
    const age = Date.now() - fs.statSync(file).mtimeMs;
    return age > TORN_LOCK_MS ? `it names no process (a write cut short ${Math.round(age / 1000)} s ago)` : undefined;
  } catch {
    return "it is gone"; // removed meanwhile: try again
  }
}

/**
 * Removes the stale lock `file`, unless another process replaced it meanwhile: it is first moved aside under a
 * name of this process's own, so two processes taking over one lock never remove each other's fresh lock.
 */
function takeOver(file: string): void {
  let ino: number;
  try {
    ino = fs.statSync(file).ino;
  } catch {
    return;
  }
  const aside = `${file}.stale-${process.pid}`;
  try {
    fs.renameSync(file, aside);
  } catch {
    return; // someone else took it over first
  }
  if (fs.statSync(aside).ino !== ino) {
    try {
      fs.linkSync(aside, file); // a fresh lock moved by mistake: put it back (fails if a newer one is there)
    } catch {
      /* the newer lock stands */
    }
  }
  fs.rmSync(aside, { force: true });
}

/** The lock is held by another live process. */
export class LockHeldError extends Error {}

/**
 * Takes the lock `file` for `what` (a sentence: "training into runs/x"), or throws naming the process that holds it.
 * Returns the release function; the lock is also released when this process exits normally.
 */
export function acquireLock(file: string, what: string, log?: (line: string) => void): () => void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const me: Owner = {
    pid: process.pid,
    host: os.hostname(),
    started: new Date().toISOString(),
    what,
    boot: bootId(),
    ticks: startTicks(process.pid),
  };
  for (let attempt = 0; attempt < 5; attempt++) {
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
      const stale = staleness(file, me.host);
      if (stale) {
        log?.(`taking over the lock ${file}: ${stale}`);
        takeOver(file);
        continue;
      }
      const o = readOwner(file);
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
  o: {
    resume?: boolean;
    overwrite?: boolean;
    log: (line: string) => void;
    what: string;
    /** How the user passes a flag: `--resume`, or through npm `npm start -- --resume` (npm keeps `--resume` itself). */
    flag?: (name: string) => string;
  },
): () => void {
  const flag = o.flag ?? ((name: string) => `--${name}`);
  if (o.resume && o.overwrite) throw new Error("--resume and --overwrite contradict each other: choose one");
  const release = acquireLock(path.join(runDir, ".lock"), o.what, o.log);
  try {
    // a run killed while saving: its last checkpoint is put back, the temporary copies removed (checkpoint.ts; other
    // checkpoint folders of the run, such as best/, are settled when they are next read or written)
    settleCheckpoint(checkpointDir, o.log);
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
          `${runDir} already holds a checkpoint${epoch}: ${flag("resume").startsWith("--") ? "add" : "run"} ${flag("resume")} to continue it or ${flag("overwrite")} to replace it`,
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
