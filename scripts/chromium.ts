/**
 * Headless Chromium (Debian `chromium`) as a checker of our HTML: loads a page, lets its scripts run, and counts
 * the Plotly charts that were drawn. Used for the executed notebooks and for report.html.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export function chromium(): string | undefined {
  return ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].find((c) => fs.existsSync(c));
}

/** Loads the HTML file in headless Chromium; returns how many charts the page holds and how many Plotly drew. */
export function renderedCharts(html: string, browser: string): { expected: number; drawn: number } {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "attend-tell-chromium-"));
  const r = spawnSync(
    browser,
    [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
      "--virtual-time-budget=15000",
      "--dump-dom",
      `file://${path.resolve(html)}`,
    ],
    { encoding: "utf8", maxBuffer: 512 * 1024 * 1024, timeout: 120_000 },
  );
  fs.rmSync(profile, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`chromium could not load ${html}: ${(r.stderr ?? String(r.error)).slice(-500)}`);
  const source = fs.readFileSync(html, "utf8");
  return {
    expected: (source.match(/<div id="attend-tell-plot-/g) ?? []).length,
    drawn: (r.stdout.match(/class="attend-tell-plot js-plotly-plot"/g) ?? []).length,
  };
}
