/**
 * The attention explorer: the frozen ResNet-50, the shipped captioner and the shipped SCAN pair run in the page
 * with TensorFlow.js, on lib/'s own modules (the encoder's trunk, `DecoderRNN`, beam search, `ScanModel`,
 * `retrieveImages`, `alignment`, the vocabulary, the pixels' normalisation), bundled by scripts/explore.ts. Nothing is computed by the server; every file the page loads is checked against
 * the sha256 that manifest.json (written at build time from the verified files) lists.
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-webgpu";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { DecoderConfig, DecoderRNN } from "../lib/captioning/decoder";
import { CONSENSUS_FILE, beamSearchBatch, byConsensus, consensusCider } from "../lib/captioning/generate";
import { BeamStep, BeamTree, beamTree } from "../lib/captioning/beam-tree";
import type { CiderD } from "../lib/captioning/metrics";
import { Vocabulary } from "../lib/data/vocabulary";
import { normalizePixels } from "../lib/data/pixels";
import { foldBatchNorm } from "../lib/encoder/fold";
import { encodeRegions, resnetModels } from "../lib/encoder/resnet";
import { ENCODER_IDENTITY, FEATURE_MAP, mapShape } from "../lib/encoder/feature-maps";
import { ScanConfig, ScanModel, alignment } from "../lib/matching/scan";
import { checkQuery, retrieveImages } from "../lib/matching/rank";
import { tokenize } from "../lib/data/tokenizer";
import { sha256Hex } from "../lib/util/sha256";

/** What scripts/explore.ts serves: file paths (relative to the page) with their sha256 and size. */
export interface ExploreManifest {
  resnet: { modelJson: string; files: Files };
  captioner: ShippedModel[];
  /** SCAN's t2i and i2t models (the first gives the word–region alignments shown). */
  matching: ShippedModel[];
  /** Synthetic scenes to try the page with, and a caption of what each shows. */
  scenes: { file: string; sha256: string; bytes: number; shows: string }[];
}
type Files = Record<string, { sha256: string; bytes: number }>;
type ShippedModel = { name: string; files: Files };

/** A query's ranking of the photos captioned so far, as the tests read it (`#ranked`). */
export interface PageRanking {
  query: string;
  ranking: { image: string; score: number }[];
  /** The query's words and, per word, its attention over the best photo's regions. */
  words: string[];
  attention: number[][];
}

/** One caption as the page shows it, and as the tests read it (`#result`). */
export interface PageCaption {
  image: string;
  caption: string;
  words: string[];
  attention: number[][];
  candidates: { caption: string; logProb: number }[];
  /** The candidate consensus decoding picks (minimum Bayes risk with CIDEr-D), when a member stores its frequencies. */
  consensus?: string;
  /** The beam's tree as drawn: how many candidates the search weighed, and the returned caption's path. */
  tree: { candidates: number; path: string[] };
  seconds: { pixels: number; encoder: number; decoder: number };
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const SIZE = ENCODER_IDENTITY.imageSize;
const { grid: GRID } = mapShape(FEATURE_MAP);

/** The file's sha256: the browser's own where it has one (secure contexts: localhost, https), else lib's. */
async function sha256(buf: ArrayBuffer): Promise<string> {
  if (!globalThis.crypto?.subtle) return sha256Hex(new Uint8Array(buf));
  const d = await crypto.subtle.digest("SHA-256", buf);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A file of the manifest, its sha256 checked; the error names the file. */
async function fetchVerified(url: string, sum: string): Promise<ArrayBuffer> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status} ${r.statusText}`);
  const buf = await r.arrayBuffer();
  const got = await sha256(buf);
  if (got !== sum)
    throw new Error(`${url} is damaged: sha256 ${got.slice(0, 12)}…, the manifest says ${sum.slice(0, 12)}…`);
  return buf;
}

const json = (buf: ArrayBuffer) => JSON.parse(new TextDecoder().decode(buf));

/**
 * WebGL's renderer when it is software (SwiftShader, llvmpipe: a browser without a GPU), else undefined: there
 * ResNet-50 runs ~10× slower than on wasm, so WebGL is passed over.
 */
function softwareWebGL(): string | undefined {
  const gl = document.createElement("canvas").getContext("webgl2");
  const info = gl?.getExtension("WEBGL_debug_renderer_info");
  const renderer = info ? String(gl!.getParameter(info.UNMASKED_RENDERER_WEBGL)) : "";
  return /swiftshader|llvmpipe|software/i.test(renderer) ? renderer : undefined;
}

/** The first backend that starts: WebGPU, else WebGL on a GPU, else wasm (`?backend=` picks one); and why. */
async function pickBackend(): Promise<{ backend: string; why: string }> {
  setWasmPaths("./wasm/");
  const wanted = new URLSearchParams(location.search).get("backend");
  const skipped: string[] = [];
  for (const b of wanted ? [wanted] : ["webgpu", "webgl", "wasm"]) {
    const software = b === "webgl" && !wanted ? softwareWebGL() : undefined;
    if (software) {
      skipped.push(`WebGL is software here (${software})`);
      continue;
    }
    try {
      if (await tf.setBackend(b)) {
        await tf.ready();
        return { backend: b, why: skipped.join("; ") };
      }
    } catch {
      // the next one
    }
    skipped.push(`no ${b}`);
  }
  throw new Error("no TensorFlow.js backend starts in this browser (WebGPU, WebGL and wasm all failed)");
}

/** ResNet-50's trunk from its verified Keras artifacts, batch norms folded as `EncoderCNN` folds them. */
async function loadEncoder(m: ExploreManifest["resnet"]): Promise<tf.LayersModel> {
  const model = json(await fetchVerified(m.modelJson, m.files[m.modelJson].sha256));
  const dir = m.modelJson.slice(0, m.modelJson.lastIndexOf("/") + 1);
  const shards: ArrayBuffer[] = [];
  const specs: tf.io.WeightsManifestEntry[] = [];
  for (const group of model.weightsManifest as tf.io.WeightsManifestConfig) {
    for (const p of group.paths) shards.push(await fetchVerified(dir + p, m.files[dir + p].sha256));
    specs.push(...group.weights);
  }
  const artifacts = {
    modelTopology: model.modelTopology,
    weightSpecs: specs,
    weightData: tf.io.concatenateArrayBuffers(shards),
  };
  return (await resnetModels((await foldBatchNorm(artifacts)).artifacts, FEATURE_MAP)).trunk;
}

/** A shipped model's config, weights (by stable name) and vocabulary, each file verified against the manifest. */
async function loadShipped<Config>(m: ShippedModel) {
  const file = (rel: string) => fetchVerified(`${m.name}/${rel}`, m.files[rel].sha256);
  const meta = json(await file("checkpoint.json")) as { config: Config };
  const groups = json(await file("model/model.json")).weightsManifest as tf.io.WeightsManifestConfig;
  const bins = await Promise.all(groups.flatMap((g) => g.paths.map((p) => file(`model/${p}`))));
  const weights = tf.io.decodeWeights(
    tf.io.concatenateArrayBuffers(bins),
    groups.flatMap((g) => g.weights),
  );
  const init = (name: string) => {
    const w = weights[name];
    if (!w) throw new Error(`${m.name} has no weight ${name}`);
    return w;
  };
  const vocab = Vocabulary.fromJSON(json(await file("vocab.json")), `${m.name}/vocab.json`);
  return { config: meta.config, init, vocab, release: () => tf.dispose(Object.values(weights)) };
}

async function loadCaptioner(m: ShippedModel): Promise<{ decoder: DecoderRNN; vocab: Vocabulary }> {
  const c = await loadShipped<{ decoder: DecoderConfig }>(m);
  const decoder = new DecoderRNN(c.config.decoder, c.init);
  c.release();
  return { decoder, vocab: c.vocab };
}

async function loadScan(m: ShippedModel): Promise<{ model: ScanModel; vocab: Vocabulary }> {
  const c = await loadShipped<{ scan: ScanConfig }>(m);
  const model = new ScanModel(c.config.scan, c.init);
  c.release();
  return { model, vocab: c.vocab };
}

/** A photo as the encoder reads it: 224 × 224 RGB (aspect ratio not kept, as lib/data/image.ts resizes). */
async function photoPixels(blob: Blob): Promise<{ rgb: Uint8Array; canvas: HTMLCanvasElement }> {
  const bitmap = await createImageBitmap(blob, { imageOrientation: "from-image" });
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = SIZE;
  const ctx = canvas.getContext("2d", { willReadFrequently: true })!;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(bitmap, 0, 0, SIZE, SIZE);
  const rgba = ctx.getImageData(0, 0, SIZE, SIZE).data;
  const rgb = new Uint8Array(SIZE * SIZE * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) rgb.set(rgba.subarray(i, i + 3), j);
  return { rgb, canvas };
}

interface Models {
  trunk: tf.LayersModel;
  members: { decoder: DecoderRNN; vocab: Vocabulary }[];
  scan: { model: ScanModel; vocab: Vocabulary }[];
  /** The train captions' document frequencies a captioner member stores, for consensus decoding. */
  cider?: CiderD;
}

/** A photo's caption and its region features `[1, R, E]` (kept for ranking by typed queries). */
async function caption(models: Models, name: string, blob: Blob, beam: number) {
  let t = performance.now();
  const lap = () => {
    const s = (performance.now() - t) / 1000;
    t = performance.now();
    return s;
  };
  const { rgb, canvas } = await photoPixels(blob);
  const input = tf.tensor4d(normalizePixels({ data: rgb, width: SIZE, height: SIZE }, "caffe"), [1, SIZE, SIZE, 3]);
  const pixels = lap();
  const features = encodeRegions(models.trunk, input, FEATURE_MAP);
  input.dispose();
  await features.data(); // the encoder's time, not the decoder's
  const encoder = lap();
  const steps: BeamStep[] = [];
  const [g] = await beamSearchBatch(
    models.members.map((m) => m.decoder),
    features,
    beam,
    20,
    0,
    undefined,
    (_t, _image, candidates) => steps.push(candidates),
  );
  const decoder = lap();
  const vocab = models.members[0].vocab;
  const tree = beamTree(steps, g);
  const words = vocab.decode(g.ids);
  const result: PageCaption = {
    image: name,
    caption: words.join(" "),
    words,
    attention: g.alphas,
    candidates: (g.candidates ?? [g]).map((c) => ({ caption: vocab.decode(c.ids).join(" "), logProb: c.logProb })),
    consensus:
      models.cider && g.candidates ? vocab.decode(byConsensus(g, models.cider, vocab).ids).join(" ") : undefined,
    tree: { candidates: tree.nodes.length, path: tree.path.map((n) => vocab.itos[n.word]) },
    seconds: { pixels, encoder, decoder },
  };
  return { result, canvas, features, tree };
}

/** Jet-like colour of an attention weight relative to the map's largest. */
function heat(v: number): [number, number, number] {
  const x = Math.max(0, Math.min(1, v));
  return [255 * Math.min(1, 2 * x), 255 * (1 - Math.abs(2 * x - 1)), 255 * Math.min(1, 2 * (1 - x))];
}

/** Draws the photo and, for word `w`, its attention over the regions (grid cells upsampled smoothly). */
function draw(view: HTMLCanvasElement, photo: HTMLCanvasElement, alpha: number[] | undefined): void {
  const ctx = view.getContext("2d")!;
  ctx.clearRect(0, 0, view.width, view.height);
  ctx.drawImage(photo, 0, 0, view.width, view.height);
  if (!alpha) return;
  const cells = document.createElement("canvas");
  cells.width = cells.height = GRID;
  const c = cells.getContext("2d")!;
  const img = c.createImageData(GRID, GRID);
  // relative to the map's peak, but never to less than 3× uniform: a flat map stays cool, not all red
  const top = Math.max(...alpha, 3 / alpha.length);
  alpha.forEach((a, r) => {
    const [R, G, B] = heat(a / top);
    img.data.set([R, G, B, Math.round(90 + 110 * (a / top))], r * 4);
  });
  c.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(cells, 0, 0, view.width, view.height);
}

/**
 * A photo with one attention map per word: the words are buttons (click, or ← → between them) that draw their
 * map over the photo; `play` steps through them.
 */
function wordMaps(photo: HTMLCanvasElement, words: readonly string[], maps: number[][], label: string) {
  const box = document.createElement("div");
  const view = document.createElement("canvas");
  view.width = view.height = 336;
  view.setAttribute("role", "img");
  view.setAttribute("aria-label", label);
  const row = document.createElement("p");
  row.className = "words";
  const select = (i: number) => {
    draw(view, photo, maps[i]);
    view.dataset.word = String(i);
    row.querySelectorAll("button").forEach((b, j) => b.setAttribute("aria-pressed", String(j === i)));
  };
  words.forEach((w, i) => {
    const b = document.createElement("button");
    b.textContent = w;
    b.title = `where the model looked for "${w}"`;
    b.addEventListener("click", () => select(i));
    b.addEventListener("keydown", (e) => {
      const next = e.key === "ArrowRight" ? i + 1 : e.key === "ArrowLeft" ? i - 1 : -1;
      if (next >= 0 && next < words.length) {
        select(next);
        (row.children[next] as HTMLButtonElement).focus();
      }
    });
    row.append(b);
  });
  const play = document.createElement("button");
  play.textContent = "▶ play";
  play.className = "play";
  play.addEventListener("click", () => {
    let i = 0;
    const tick = () => {
      select(i++);
      if (i < words.length) setTimeout(tick, 800);
    };
    tick();
  });
  box.append(view, row, play);
  select(0);
  return { box, focus: () => (row.firstChild as HTMLButtonElement | null)?.focus() };
}

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element with attributes (and a tooltip, its `<title>`). */
function svgEl(tag: string, attrs: Record<string, string | number>, title = ""): SVGElement {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (title) e.append(Object.assign(document.createElementNS(SVG, "title"), { textContent: title }));
  return e;
}

const FATE_COLOUR = { kept: "#1f77b4", finished: "#2ca02c", dropped: "#bbbbbb" };

/**
 * The beam's tree as chapter 07 draws it: step across, total log-probability up; every candidate a dot (kept:
 * blue, finished with `<EOS>`: green, dropped: grey), linked to the beam it extends; the returned caption in red.
 */
function drawTree(tree: BeamTree, itos: readonly string[]): SVGSVGElement {
  const steps = Math.max(...tree.nodes.map((n) => n.step)) + 1;
  const low = Math.min(...tree.nodes.map((n) => n.score));
  const [W, H, pad] = [Math.max(560, 90 * (steps + 1)), 300, 28];
  const x = (step: number) => pad + ((step + 1) / steps) * (W - 2.5 * pad);
  const y = (score: number) => pad + (score / (low || -1)) * (H - 2 * pad);
  const svg = svgEl("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "tree" }) as SVGSVGElement;
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `beam search's tree: ${tree.nodes.length} candidates over ${steps} steps`);
  const at = (n?: BeamTree["nodes"][number]) => (n ? [x(n.step), y(n.score)] : [x(-1), y(0)]);
  for (const n of tree.nodes) {
    const [[x1, y1], [x2, y2]] = [at(n.parent), at(n)];
    svg.append(
      svgEl("line", { x1, y1, x2, y2, stroke: FATE_COLOUR[n.fate], "stroke-width": n.fate === "dropped" ? 0.6 : 1.5 }),
    );
  }
  const route = [at(), ...tree.path.map(at)].map(([px, py]) => `${px},${py}`).join(" ");
  svg.append(svgEl("polyline", { points: route, fill: "none", stroke: "#d62728", "stroke-width": 3, class: "path" }));
  for (const n of tree.nodes) {
    const [cx, cy] = at(n);
    const word = itos[n.word];
    svg.append(
      svgEl(
        "circle",
        { cx, cy, r: n.fate === "dropped" ? 2 : 3.5, fill: FATE_COLOUR[n.fate] },
        `${word}: log p ${n.score.toFixed(2)}, ${n.fate}`,
      ),
    );
    if (n.fate !== "dropped")
      svg.append(
        Object.assign(svgEl("text", { x: cx, y: cy - 6, "text-anchor": "middle", "font-size": 11 }), {
          textContent: word,
        }),
      );
  }
  return svg;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text = "", className = ""): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  e.textContent = text;
  if (className) e.className = className;
  return e;
}

function show(result: PageCaption, photo: HTMLCanvasElement, tree: BeamTree, itos: readonly string[]): void {
  const card = el("section", "", "card");
  const maps = wordMaps(photo, result.words, result.attention, `${result.image}: ${result.caption}`);
  const cands = el("ol", "", "candidates");
  for (const c of result.candidates)
    cands.append(
      el(
        "li",
        `${c.caption} — log p ${c.logProb.toFixed(2)}${c.caption === result.consensus ? " ← consensus decoding's pick" : ""}`,
      ),
    );
  const s = result.seconds;
  const times = `pixels ${s.pixels.toFixed(2)} s · ResNet-50 ${s.encoder.toFixed(2)} s · beam search ${s.decoder.toFixed(2)} s`;
  card.append(
    el("h2", result.image),
    maps.box,
    el("p", times, "times"),
    el("p", "The beam's captions, likeliest first:"),
    cands,
    el(
      "p",
      "What the search weighed (chapter 07): every step's candidates, linked to the beam each extends; the caption in red.",
    ),
    Object.assign(el("div", "", "tree-box"), { tabIndex: 0 }),
  );
  card.querySelector(".tree-box")!.append(drawTree(tree, itos));
  $("results").prepend(card);
  maps.focus();
}

/** The photos captioned so far, ranked for `query` by the SCAN pair; the best one's word–region alignment. */
async function rank(
  models: Models,
  photos: Map<string, { features: tf.Tensor3D; canvas: HTMLCanvasElement }>,
  query: string,
): Promise<PageRanking> {
  const [first, ...ensemble] = models.scan;
  const matchers = { ...first, ensemble };
  checkQuery(matchers, query);
  const images = [...photos.keys()];
  const cache = {
    tensor: (names: readonly string[]) => tf.concat(names.map((n) => photos.get(n)!.features)) as tf.Tensor3D,
  };
  const ranking = await retrieveImages({ ...matchers, query, images, cache, k: images.length });
  const ids = first.vocab.encode(query);
  const a = tf.tidy(() =>
    alignment(
      first.model,
      photos.get(ranking[0].image)!.features,
      tf.tensor2d([ids], [1, ids.length], "int32"),
      ids.length,
    ),
  );
  const rows = (await a.array()) as number[][];
  a.dispose();
  // the caption as SCAN reads it is <SOS> words <EOS>: the words' own rows are shown
  return { query, ranking, words: tokenize(query), attention: rows.slice(1, rows.length - 1) };
}

function showRanking(r: PageRanking, photos: Map<string, { canvas: HTMLCanvasElement }>): void {
  const out = $("ranking");
  out.replaceChildren();
  const list = el("ol", "", "ranked");
  for (const { image, score } of r.ranking) list.append(el("li", `${image} — score ${score.toFixed(3)}`));
  const best = r.ranking[0].image;
  const maps = wordMaps(photos.get(best)!.canvas, r.words, r.attention, `${best}, the best match for "${r.query}"`);
  out.append(
    el("h2", `"${r.query}": the photos, best match first`),
    list,
    el("p", `Where each word of the query finds its match in ${best}:`),
    maps.box,
  );
}

async function main(): Promise<void> {
  const status = $("status");
  const say = (s: string) => (status.textContent = s);
  try {
    const { backend, why } = await pickBackend();
    say(`loading the models on ${backend}…`);
    const manifest = (await (await fetch("manifest.json")).json()) as ExploreManifest;
    const mib = (ms: { files: Files }[]) =>
      ms.flatMap((m) => Object.values(m.files)).reduce((a, f) => a + f.bytes, 0) / 2 ** 20;
    const timed = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
      const t = performance.now();
      const r = await f();
      return [r, (performance.now() - t) / 1000];
    };
    const [trunk, encoderSeconds] = await timed(() => loadEncoder(manifest.resnet));
    const [members, decoderSeconds] = await timed(() => Promise.all(manifest.captioner.map(loadCaptioner)));
    const [scan, scanSeconds] = await timed(() => Promise.all(manifest.matching.map(loadScan)));
    const stored = manifest.captioner.find((m) => CONSENSUS_FILE in m.files);
    const cider = stored
      ? consensusCider(
          json(await fetchVerified(`${stored.name}/${CONSENSUS_FILE}`, stored.files[CONSENSUS_FILE].sha256)),
          `${stored.name}/${CONSENSUS_FILE}`,
        )
      : undefined;
    const models: Models = { trunk, members, scan, cider };
    const sizes =
      `ResNet-50 ${mib([manifest.resnet]).toFixed(0)} MiB in ${encoderSeconds.toFixed(1)} s, ` +
      `captioner ${mib(manifest.captioner).toFixed(0)} MiB in ${decoderSeconds.toFixed(1)} s, ` +
      `SCAN ${mib(manifest.matching).toFixed(0)} MiB in ${scanSeconds.toFixed(1)} s`;
    $("backend").textContent =
      `TensorFlow.js on ${backend}${why ? ` (${why})` : ""}; ${sizes}; every file's sha256 checked`;
    document.body.dataset.backend = backend;
    say("ready: choose or drop photos");
    const results: PageCaption[] = [];
    const photos = new Map<string, { features: tf.Tensor3D; canvas: HTMLCanvasElement }>();
    const run = async (files: FileList | File[]) => {
      for (const f of Array.from(files)) {
        say(`captioning ${f.name}…`);
        try {
          const { result, canvas, features, tree } = await caption(
            models,
            f.name,
            f,
            Number(($("beam") as HTMLSelectElement).value),
          );
          photos.get(f.name)?.features.dispose();
          photos.set(f.name, { features, canvas });
          results.push(result);
          show(result, canvas, tree, models.members[0].vocab.itos);
        } catch (e) {
          say(`${f.name}: ${(e as Error).message}`);
          continue;
        }
      }
      $("result").textContent = JSON.stringify(results);
      $("result").dataset.count = String(results.length);
      ($("query") as HTMLInputElement).disabled = photos.size === 0;
      say(`ready: ${results.length} photo${results.length === 1 ? "" : "s"} captioned`);
    };
    ($("photos") as HTMLInputElement).addEventListener("change", (e) => run((e.target as HTMLInputElement).files!));
    const drop = $("drop");
    drop.addEventListener("dragover", (e) => e.preventDefault());
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      if (e.dataTransfer?.files.length) run(e.dataTransfer.files);
    });
    for (const scene of manifest.scenes) {
      const b = el("button", scene.file.slice(scene.file.lastIndexOf("/") + 1), "scene");
      b.type = "button";
      b.title = `a synthetic scene: ${scene.shows}`;
      b.addEventListener("click", () =>
        fetchVerified(scene.file, scene.sha256)
          .then((buf) => run([new File([buf], b.textContent!, { type: "image/png" })]))
          .catch((e) => say(`${scene.file}: ${(e as Error).message}`)),
      );
      $("scenes").append(b);
    }
    let ranked = 0;
    $("search").addEventListener("submit", async (e) => {
      e.preventDefault();
      const query = ($("query") as HTMLInputElement).value.trim();
      if (!query || photos.size === 0) return;
      try {
        const r = await rank(models, photos, query);
        showRanking(r, photos);
        $("ranked").textContent = JSON.stringify(r);
        say(`ranked ${photos.size} photos for "${query}"`);
      } catch (err) {
        say((err as Error).message);
        $("ranked").textContent = JSON.stringify({ query, error: (err as Error).message });
      }
      $("ranked").dataset.count = String(++ranked);
    });
    document.body.dataset.ready = "1";
  } catch (e) {
    say(`error: ${(e as Error).message}`);
    document.body.dataset.error = (e as Error).message;
  }
}

main();
