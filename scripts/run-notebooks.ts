/**
 * `npm run notebooks`: executes every notebooks/NN-*.ipynb in order, headless (nbconvert + the project's tslab
 * kernel), at the quick size (ATTEND_TELL_QUICK=1) unless ATTEND_TELL_QUICK=0. Executed copies and HTML go to
 * build/notebooks/ (git-ignored). Stops at the first failing notebook, naming it and the failing cell.
 * Then it opens each HTML in headless Chromium and fails when a Plotly chart did not render, and reruns the
 * chapter as a reader does in a live kernel (scripts/rerun-notebooks.py): in order, again from its configuration
 * cell, and its last cell alone.
 *   npm run notebooks [-- 02]   (only notebooks whose name contains "02")
 */
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { JUPYTER_PATH, ROOT, buildLib, installKernel, jupyterPython } from "./install-kernel";
import { chromium, renderedCharts } from "./chromium";

const NB_DIR = path.join(ROOT, "notebooks");
const OUT = path.join(ROOT, "build", "notebooks");

function fail(msg: string): never {
  console.error(`\nnotebooks: ${msg}`);
  process.exit(1);
}

/** Committed notebooks carry no outputs; the executed copies do. */
function checkClean(file: string): void {
  const nb = JSON.parse(fs.readFileSync(file, "utf8"));
  const dirty = nb.cells.filter((c: { outputs?: unknown[] }) => (c.outputs ?? []).length > 0).length;
  if (dirty) fail(`${path.basename(file)} is committed with outputs in ${dirty} cells; clear them before committing`);
}

/** The first cell with an error output, for the failure message. */
function firstError(executed: string): string | undefined {
  if (!fs.existsSync(executed)) return undefined;
  const nb = JSON.parse(fs.readFileSync(executed, "utf8"));
  for (const [i, c] of nb.cells.entries()) {
    for (const o of c.outputs ?? []) {
      if (o.output_type === "error")
        return `cell ${i + 1}: ${o.ename}: ${o.evalue}\n${[].concat(c.source).join("").slice(0, 400)}`;
      // tslab reports an exception thrown after a top-level await on stderr, not as an error output
      const text = [].concat(o.text ?? []).join("");
      // and a cell that does not compile as "line:column - message" on stderr (the rest of the cell never runs)
      const m =
        o.output_type === "stream" && o.name === "stderr" ? /^(\w*Error|Error): .*$|^\d+:\d+ - .*$/m.exec(text) : null;
      if (m) return `cell ${i + 1}: ${m[0]}\n${[].concat(c.source).join("").slice(0, 400)}`;
    }
  }
  return undefined;
}

function main(): void {
  const filter = process.argv[2];
  const notebooks = fs
    .readdirSync(NB_DIR)
    .filter((f) => /^\d\d-.*\.ipynb$/.test(f) && (!filter || f.includes(filter)))
    .sort();
  if (notebooks.length === 0) fail(`no notebooks${filter ? ` matching ${filter}` : ""} in ${NB_DIR}`);
  buildLib();
  installKernel();
  fs.mkdirSync(OUT, { recursive: true });
  const env = { ...process.env, JUPYTER_PATH, ATTEND_TELL_QUICK: process.env.ATTEND_TELL_QUICK ?? "1" };
  const python = jupyterPython();
  const browser = chromium();
  let passed = 0;
  for (const name of notebooks) {
    const src = path.join(NB_DIR, name);
    checkClean(src);
    const executed = path.join(OUT, name);
    fs.rmSync(executed, { force: true });
    const t0 = Date.now();
    const run = spawnSync(
      python,
      [
        "-m",
        "nbconvert",
        "--to",
        "notebook",
        "--execute",
        "--ExecutePreprocessor.kernel_name=tslab",
        "--ExecutePreprocessor.timeout=1200",
        "--allow-errors",
        "--output-dir",
        OUT,
        src,
      ],
      { env, cwd: NB_DIR, encoding: "utf8" },
    );
    const err = firstError(executed);
    if (run.status !== 0 || err) {
      console.error(run.stderr.slice(-3000));
      console.error(`notebooks: 0 passed, 1 failed`);
      fail(`${name} failed${err ? ` at ${err}` : ` (nbconvert exit ${run.status})`}`);
    }
    execFileSync(python, ["-m", "nbconvert", "--to", "html", "--output-dir", OUT, executed], {
      env,
      stdio: ["ignore", "ignore", "inherit"],
    });
    const html = executed.replace(/\.ipynb$/, ".html");
    let charts = "";
    if (browser) {
      let expected: number, drawn: number;
      try {
        ({ expected, drawn } = renderedCharts(html, browser));
      } catch (e) {
        fail((e as Error).message);
      }
      if (drawn < expected)
        fail(`${name}: ${drawn} of ${expected} Plotly charts rendered in headless Chromium (${html})`);
      charts = `, ${drawn}/${expected} charts rendered in Chromium`;
    } else if (process.env.CI) fail("chromium is needed to check the charts (apt-get install chromium)");
    // then as a reader reruns cells in a live kernel: in order, again from the configuration cell, the last alone
    const rerun = spawnSync(python, [path.join(ROOT, "scripts", "rerun-notebooks.py"), src], { env, encoding: "utf8" });
    if (rerun.status !== 0) fail(rerun.stderr.trim().split("\n").slice(-3).join("\n") || `rerun exit ${rerun.status}`);
    passed++;
    console.log(`✔ ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s${charts}) → ${path.relative(ROOT, html)}`);
  }
  console.log(`notebooks: ${passed} passed, 0 failed`);
}

main();
