/**
 * `npm run book`: executes every chapter (scripts/run-notebooks.ts: quick size, or the full size with `--full`) and
 * assembles build/book/: an index with the chapters in order and what each teaches, one page per chapter with its
 * outputs and working Plotly figures, navigation between them, and the scripts the pages load (MathJax, RequireJS)
 * copied beside them so that the book opens offline anywhere, and the attention explorer (scripts/explore.ts) in
 * build/book/explore/, linked from the index and chapters 06 and 08, for a teacher to host with the book on any static
 * server. Every page is checked in headless Chromium.
 *   npm run book [-- --full] [-- --skip-run]   (--skip-run: assemble from build/notebooks as it is)
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ROOT } from "./install-kernel";
import { chromium, renderedCharts } from "./chromium";
import { buildExplorer } from "./explore";

const EXECUTED = path.join(ROOT, "build", "notebooks");
const BOOK = path.join(ROOT, "build", "book");
/** What nbconvert's pages load from the system (Debian's libjs-mathjax, libjs-requirejs). */
const SYSTEM_JS = "/usr/share/javascript";
const ASSETS = [
  "mathjax/MathJax.js",
  "mathjax/config",
  "mathjax/extensions",
  "mathjax/fonts",
  "mathjax/jax",
  "mathjax/localization",
  "requirejs/require.min.js",
];

function fail(msg: string): never {
  console.error(`\nbook: ${msg}`);
  process.exit(1);
}

interface Chapter {
  file: string;
  title: string;
  teaches: string;
}

/** The chapter's title (its first heading) and its "what this chapter teaches" sentence, from the executed notebook. */
function chapterOf(ipynb: string): Chapter {
  const nb = JSON.parse(fs.readFileSync(ipynb, "utf8"));
  const intro = ([] as string[])
    .concat(nb.cells.find((c: { cell_type: string }) => c.cell_type === "markdown")?.source ?? [])
    .join("");
  const title = /^#\s+(.+)$/m.exec(intro)?.[1] ?? path.basename(ipynb);
  const teaches =
    /\*\*What this chapter teaches:\*\*\s*([\s\S]+?)(?:\n\n|$)/.exec(intro)?.[1].replace(/\s+/g, " ") ?? "";
  return { file: path.basename(ipynb).replace(/\.ipynb$/, ".html"), title, teaches };
}

const escape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const STYLE =
  "<style>.book-nav{font:14px sans-serif;padding:8px 16px;background:#f3f3f3;border-bottom:1px solid #ddd}" +
  ".book-nav a{margin-right:16px}</style>";

/** Chapters whose lesson the explorer lets a reader try on their own photos. */
const EXPLORER_CHAPTERS = /^0[68]-/;
const EXPLORER_LINK = `<a href="explore/index.html">Try it on your photos: the attention explorer</a>`;

function nav(chapters: Chapter[], i: number): string {
  const prev = i > 0 ? `<a href="${chapters[i - 1].file}">← ${escape(chapters[i - 1].title)}</a>` : "";
  const next =
    i < chapters.length - 1 ? `<a href="${chapters[i + 1].file}">${escape(chapters[i + 1].title)} →</a>` : "";
  const explore = EXPLORER_CHAPTERS.test(chapters[i].file) ? EXPLORER_LINK : "";
  return `<nav class="book-nav"><a href="index.html">Contents</a>${prev}${next}${explore}</nav>`;
}

function copyAssets(): void {
  for (const a of ASSETS) {
    const from = path.join(SYSTEM_JS, a);
    if (!fs.existsSync(from))
      fail(`${from} is missing (apt-get install libjs-mathjax libjs-requirejs; jupyter-notebook brings both)`);
    fs.cpSync(from, path.join(BOOK, "assets", a), { recursive: true, dereference: true });
  }
}

async function main(): Promise<void> {
  const full = process.argv.includes("--full");
  if (!process.argv.includes("--skip-run")) {
    const run = spawnSync("node", ["--import", "tsx", path.join(ROOT, "scripts", "run-notebooks.ts")], {
      stdio: "inherit",
      env: { ...process.env, ATTEND_TELL_QUICK: full ? "0" : (process.env.ATTEND_TELL_QUICK ?? "1") },
    });
    if (run.status !== 0) process.exit(run.status ?? 1);
  }
  const notebooks = fs.existsSync(EXECUTED)
    ? fs
        .readdirSync(EXECUTED)
        .filter((f) => /^\d\d-.*\.ipynb$/.test(f))
        .sort()
    : [];
  if (notebooks.length === 0) fail(`no executed chapters in ${EXECUTED}: run without --skip-run`);
  fs.rmSync(BOOK, { recursive: true, force: true });
  fs.mkdirSync(BOOK, { recursive: true });
  copyAssets();
  await buildExplorer(path.join(BOOK, "explore"));
  const chapters = notebooks.map((f) => chapterOf(path.join(EXECUTED, f)));
  chapters.forEach((c, i) => {
    const html = fs.readFileSync(path.join(EXECUTED, c.file), "utf8");
    const page = html
      .split(`file://${SYSTEM_JS}/`)
      .join("assets/")
      .replace(/<body([^>]*)>/, (m) => `${m}${STYLE}${nav(chapters, i)}`)
      .replace(/<\/body>/, `${nav(chapters, i)}</body>`);
    fs.writeFileSync(path.join(BOOK, c.file), page);
  });
  const items = chapters
    .map((c) => `<li><a href="${c.file}">${escape(c.title)}</a><br/><span>${escape(c.teaches)}</span></li>`)
    .join("\n");
  fs.writeFileSync(
    path.join(BOOK, "index.html"),
    `<!doctype html><html><head><meta charset="utf-8"><title>attend-tell — the book</title>` +
      `<style>body{font-family:sans-serif;max-width:900px;margin:auto;padding:0 16px}li{margin:12px 0}span{color:#555}</style></head>` +
      `<body><h1>attend-tell — the book</h1><p>The chapters executed ${full ? "at the full size" : "at the quick size"} on ` +
      `${new Date().toISOString().slice(0, 10)}: attention for images and text, step by step.</p><ol>${items}</ol>` +
      `<p>${EXPLORER_LINK}: ResNet-50 and the shipped captioner run in your browser (serve this folder with any ` +
      `static file server).</p></body></html>`,
  );
  const browser = chromium();
  for (const c of chapters) {
    if (!browser) break;
    const { expected, drawn } = renderedCharts(path.join(BOOK, c.file), browser);
    if (drawn < expected) fail(`${c.file}: ${drawn} of ${expected} Plotly charts rendered in headless Chromium`);
  }
  if (!browser && process.env.CI) fail("chromium is needed to check the book's pages (apt-get install chromium)");
  console.log(
    `book: ${chapters.length} chapters → ${path.relative(ROOT, path.join(BOOK, "index.html"))}${browser ? ", every page's charts rendered in Chromium" : ""}`,
  );
}

main().catch((e) => fail((e as Error).message));
