/**
 * The attention explorer (explore/): bundles the page with esbuild for the browser, beside it the files it loads —
 * the verified ResNet-50 weights, the shipped captioner's members, tfjs's wasm binaries — and manifest.json with
 * every file's sha256 and size, which the page checks. Then serves the folder (static files only).
 *   npm run explore [-- --port 8080] [--out build/explore] [--no-serve]
 */
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import * as esbuild from "esbuild";
import { ensureWeights, expectedSums } from "../lib/encoder/weights";
import { SHIPPED, projectRoot, shippedModel } from "../lib/util/paths";
import { readCheckpointMeta, verifyCheckpointFiles } from "../lib/util/checkpoint";
import { sha256File } from "../lib/util/io";
import { sha256Hex } from "../lib/util/sha256";
import { Rng } from "../lib/util/rng";
import { makeScene, renderSvg, sceneSvg } from "../lib/data/synthetic";
import type { ExploreManifest } from "../explore/page";

const ROOT = projectRoot();
/** Marks a folder this script made, so that it never writes into one it did not. */
const MARK = ".attend-tell-explore";

type Files = Record<string, { sha256: string; bytes: number }>;

/** Copies `from` to `to` (a hard link where the file system allows); returns its manifest entry. */
function place(from: string, to: string, sha256: string): Files[string] {
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.rmSync(to, { force: true });
  try {
    fs.linkSync(from, to);
  } catch {
    fs.copyFileSync(from, to);
  }
  return { sha256, bytes: fs.statSync(from).size };
}

/** Builds the explorer into `out` (a folder it made, or a new one); returns the manifest. */
export async function buildExplorer(out = path.join(ROOT, "build", "explore")): Promise<ExploreManifest> {
  if (fs.existsSync(out) && fs.readdirSync(out).length > 0 && !fs.existsSync(path.join(out, MARK)))
    throw new Error(`${out} exists and was not made by the explorer's build: give another --out`);
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, MARK), "made by scripts/explore.ts; rebuilt in place\n");
  await esbuild.build({
    entryPoints: [path.join(ROOT, "explore", "page.ts")],
    outfile: path.join(out, "explore.js"),
    bundle: true,
    platform: "browser",
    format: "iife",
    target: "es2022",
    minify: true,
    sourcemap: true,
    logLevel: "error",
  });
  fs.copyFileSync(path.join(ROOT, "explore", "index.html"), path.join(out, "index.html"));
  const wasm = path.join(ROOT, "node_modules", "@tensorflow", "tfjs-backend-wasm", "dist");
  fs.mkdirSync(path.join(out, "wasm"), { recursive: true });
  for (const f of fs.readdirSync(wasm).filter((f) => f.endsWith(".wasm")))
    fs.copyFileSync(path.join(wasm, f), path.join(out, "wasm", f));
  // ResNet-50: the verified files, their committed sums
  const weights = ensureWeights();
  const resnet: Files = {};
  for (const [rel, sum] of Object.entries(expectedSums()))
    if (rel.startsWith("ResNet50/")) {
      const to = `resnet50/${rel.slice("ResNet50/".length)}`;
      resnet[to] = place(path.join(weights, rel), path.join(out, to), sum);
    }
  // the shipped models: each member's checkpoint.json and the files it lists, verified against it
  const members = (names: readonly string[]) =>
    names.map((name) => {
      const dir = shippedModel(name);
      if (!dir) throw new Error(`the explorer needs the shipped model models/${name}`);
      const listed = { ...readCheckpointMeta(dir).files };
      delete listed["history.json"]; // not needed to caption or rank
      verifyCheckpointFiles(dir, listed);
      const sums = { "checkpoint.json": sha256File(path.join(dir, "checkpoint.json")), ...listed };
      const files = Object.fromEntries(
        Object.entries(sums).map(([rel, sum]) => [rel, place(path.join(dir, rel), path.join(out, name, rel), sum)]),
      );
      return { name, files };
    });
  const captioner = members(SHIPPED.captioner);
  const matching = members(SHIPPED.scan);
  const manifest: ExploreManifest = {
    resnet: { modelJson: "resnet50/model.json", files: resnet },
    captioner,
    matching,
    scenes: await writeScenes(out),
  };
  fs.writeFileSync(path.join(out, "manifest.json"), JSON.stringify(manifest, null, 1) + "\n");
  return manifest;
}

/**
 * A few synthetic scenes (the main job's world, seeded: the same files every build) to try the page without a
 * photo at hand; each listed with what it shows.
 */
async function writeScenes(out: string, count = 3): Promise<ExploreManifest["scenes"]> {
  const rng = new Rng(8);
  fs.mkdirSync(path.join(out, "scenes"), { recursive: true });
  const scenes: ExploreManifest["scenes"] = [];
  for (let i = 1; i <= count; i++) {
    const scene = makeScene(`scene-${i}.png`, rng);
    const png = await renderSvg(sceneSvg(scene));
    const file = `scenes/${scene.image}`;
    fs.writeFileSync(path.join(out, file), png);
    scenes.push({ file, sha256: sha256Hex(png), bytes: png.length, shows: scene.captions[0] });
  }
  return scenes;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".bin": "application/octet-stream",
  ".map": "application/json",
  ".png": "image/png",
  ".jpg": "image/jpeg",
};

/**
 * A static server of `dir` (nothing else is computed here) on `host` (default localhost only); resolves once it
 * listens.
 */
export function serve(dir: string, port = 0, host = "127.0.0.1"): Promise<http.Server> {
  const root = path.resolve(dir);
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent(new URL(req.url ?? "/", "http://localhost").pathname);
    const file = path.join(root, url.endsWith("/") ? `${url}index.html` : url);
    if (!file.startsWith(root + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404).end("not found");
      return;
    }
    res.writeHead(200, {
      "content-type": TYPES[path.extname(file)] ?? "application/octet-stream",
      "content-length": fs.statSync(file).size,
      "cache-control": "no-cache",
    });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(port, host, () => resolve(server)));
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const flag = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const out = path.resolve(flag("out") ?? path.join(ROOT, "build", "explore"));
  const t0 = performance.now();
  const manifest = await buildExplorer(out);
  const mib = (f: Files) => Object.values(f).reduce((a, x) => a + x.bytes, 0) / 2 ** 20;
  const total = (ms: { files: Files }[]) => ms.map((m) => mib(m.files)).reduce((a, b) => a + b, 0);
  console.log(
    `explorer built in ${out} in ${((performance.now() - t0) / 1000).toFixed(1)} s: the page loads ResNet-50 ` +
      `(${mib(manifest.resnet.files).toFixed(0)} MiB), the captioner (${total(manifest.captioner).toFixed(0)} MiB) ` +
      `and SCAN (${total(manifest.matching).toFixed(0)} MiB)`,
  );
  if (args.includes("--no-serve")) return;
  const server = await serve(out, Number(flag("port") ?? 8080));
  const { port } = server.address() as { port: number };
  console.log(`open http://localhost:${port}/ (Ctrl-C stops the server)`);
}

if (require.main === module)
  main().catch((e) => {
    console.error(`explore: ${(e as Error).message}`);
    process.exit(1);
  });
