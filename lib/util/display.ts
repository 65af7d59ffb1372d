/**
 * HTML for notebooks (shown with `tslab.display.html`) and for reports. Plotly runs in the browser only,
 * so a notebook includes the plotly.js bundle once (`plotlyBundleHtml()`, first cell) and each chart is a
 * `<div>` plus a call to `Plotly.newPlot` (`plotlyHtml(figure)`). Everything is inlined: pages work offline.
 */
import * as fs from "node:fs";

export interface PlotlyFigure {
  data: Record<string, unknown>[];
  layout?: Record<string, unknown>;
  config?: Record<string, unknown>;
}

let bundle: string | undefined;

/** `<script>` with plotly.js-dist-min, defining `window.Plotly` whatever module loader the page has. */
export function plotlyBundleHtml(): string {
  bundle ??= fs.readFileSync(require.resolve("plotly.js-dist-min"), "utf8");
  // Shadow CommonJS/AMD names so the UMD wrapper takes its browser-global path, also under require.js
  // (classic Jupyter Notebook) — otherwise window.Plotly would never be set there.
  return `<script type="text/javascript">(function(module, exports, define){\n${bundle.replace(/<\/script/gi, "<\\/script")}\n})(undefined, undefined, undefined);</script>`;
}

let nextId = 0;

/** A chart: a div and the script that draws it (waits for the bundle if it is still loading). */
export function plotlyHtml(fig: PlotlyFigure, opts: { height?: number } = {}): string {
  const id = `attend-tell-plot-${process.pid}-${Date.now().toString(36)}-${nextId++}`;
  // a second y axis on the right needs room for its tick labels and title
  const right = fig.layout && "yaxis2" in fig.layout ? 70 : 20;
  const layout = { margin: { t: 40, r: right, b: 50, l: 60 }, ...(fig.layout ?? {}) };
  const json = JSON.stringify({
    data: fig.data,
    layout,
    config: { responsive: true, displaylogo: false, ...(fig.config ?? {}) },
  }).replace(/</g, "\\u003c");
  return (
    `<div id="${id}" class="attend-tell-plot" style="width:100%;height:${opts.height ?? 380}px"></div>` +
    `<script type="text/javascript">(function(){var f=${json};function draw(){window.Plotly.newPlot("${id}",f.data,f.layout,f.config);}` +
    `if(window.Plotly){draw();}else{var n=0,t=setInterval(function(){if(window.Plotly||++n>100){clearInterval(t);if(window.Plotly)draw();}},50);}})();</script>`
  );
}

/** Text made safe inside HTML (and SVG) markup. */
export const escapeHtml = (s: unknown) =>
  String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);

/** A plain HTML table; cells are escaped. */
export function htmlTable(
  header: readonly string[],
  rows: readonly (readonly unknown[])[],
  opts: { caption?: string } = {},
): string {
  const th = header.map((h) => `<th style="text-align:left;padding:2px 8px">${escapeHtml(h)}</th>`).join("");
  const tr = rows
    .map(
      (r) =>
        `<tr>${r.map((c) => `<td style="text-align:left;padding:2px 8px;font-family:monospace">${escapeHtml(c)}</td>`).join("")}</tr>`,
    )
    .join("");
  const cap = opts.caption ? `<caption style="text-align:left">${escapeHtml(opts.caption)}</caption>` : "";
  return `<table style="border-collapse:collapse">${cap}<thead><tr>${th}</tr></thead><tbody>${tr}</tbody></table>`;
}

/** Images (PNG bytes) in a row, each with a caption underneath (a "\n" in a caption starts a new line). */
export function imageGridHtml(items: readonly { png: Uint8Array; caption?: string }[], width = 224): string {
  const cells = items
    .map(
      ({ png, caption }) =>
        `<figure style="display:inline-block;margin:4px;width:${width}px;vertical-align:top">` +
        `<img src="data:image/png;base64,${Buffer.from(png).toString("base64")}" style="width:${width}px"/>` +
        (caption
          ? `<figcaption style="font-size:12px">${escapeHtml(caption).replace(/\n/g, "<br/>")}</figcaption>`
          : "") +
        `</figure>`,
    )
    .join("");
  return `<div>${cells}</div>`;
}

/**
 * A 7×7 (or any square) grid of values drawn over a picture. Values are in region order r = row·G + col
 * (row 0 at the top), the encoder's order; the picture is stretched to the grid's extent.
 */
export function heatmapOverImage(
  png: Uint8Array,
  values: ArrayLike<number>,
  opts: { title?: string; opacity?: number; colorscale?: string } = {},
): PlotlyFigure {
  const g = Math.round(Math.sqrt(values.length));
  if (g * g !== values.length) throw new Error(`heatmapOverImage: ${values.length} values do not form a square grid`);
  const z = Array.from({ length: g }, (_, row) => Array.from({ length: g }, (_, col) => values[row * g + col]));
  return {
    data: [
      {
        type: "heatmap",
        z,
        x0: 0,
        dx: 1,
        y0: 0,
        dy: 1,
        opacity: opts.opacity ?? 0.55,
        colorscale: opts.colorscale ?? "Hot",
        reversescale: true,
        showscale: true,
      },
    ],
    layout: {
      // left-aligned: a centred title runs under the toolbar (modebar) of so narrow a chart
      title: { text: opts.title ?? "", x: 0, xref: "paper", xanchor: "left" },
      width: 480,
      height: 440,
      xaxis: { range: [-0.5, g - 0.5], showgrid: false, zeroline: false, dtick: 1 },
      yaxis: { range: [g - 0.5, -0.5], showgrid: false, zeroline: false, dtick: 1, scaleanchor: "x" },
      images: [
        {
          source: `data:image/png;base64,${Buffer.from(png).toString("base64")}`,
          xref: "x",
          yref: "y",
          x: -0.5,
          y: -0.5,
          sizex: g,
          sizey: g,
          sizing: "stretch",
          layer: "below",
        },
      ],
    },
  };
}

/** What a loss chart reads: per-batch and per-epoch losses (lib/captioning/train.ts History has this shape). */
export interface LossHistory {
  batch: readonly { epoch: number; step: number; loss: number; crossEntropy: number }[];
  epoch: readonly { epoch: number; trainCrossEntropy: number; valCrossEntropy?: number }[];
}

/**
 * Training curves against batches seen: the cross-entropy of every batch (and its running mean over `smooth`
 * batches), and at each epoch's end the epoch's mean train and dev cross-entropy. Redraw it with a longer
 * history for a live chart.
 */
export function lossFigure(h: LossHistory, opts: { title?: string; smooth?: number } = {}): PlotlyFigure {
  const x = h.batch.map((_, i) => i + 1);
  const ce = h.batch.map((b) => b.crossEntropy);
  const k = opts.smooth ?? 20;
  const smooth = ce.map((_, i) => {
    const lo = Math.max(0, i - k + 1);
    return ce.slice(lo, i + 1).reduce((a, b) => a + b, 0) / (i + 1 - lo);
  });
  // x of each epoch's end: the number of batches seen by then
  const ends = h.epoch.map((e) => h.batch.filter((b) => b.epoch <= e.epoch).length);
  const data: Record<string, unknown>[] = [
    {
      x,
      y: ce,
      type: "scatter",
      mode: "lines",
      name: "batch cross-entropy",
      line: { width: 1, color: "rgba(31,119,180,0.35)" },
    },
    {
      x,
      y: smooth,
      type: "scatter",
      mode: "lines",
      name: `mean of last ${k} batches`,
      line: { width: 2, color: "#1f77b4" },
    },
  ];
  if (h.epoch.length) {
    data.push({
      x: ends,
      y: h.epoch.map((e) => e.trainCrossEntropy),
      type: "scatter",
      mode: "lines+markers",
      name: "train (epoch mean)",
      line: { color: "#ff7f0e" },
    });
    if (h.epoch.some((e) => e.valCrossEntropy !== undefined)) {
      data.push({
        x: ends,
        y: h.epoch.map((e) => e.valCrossEntropy ?? null),
        type: "scatter",
        mode: "lines+markers",
        name: "dev",
        line: { color: "#2ca02c" },
      });
    }
  }
  return {
    data,
    layout: {
      title: { text: opts.title ?? "training loss" },
      xaxis: { title: { text: "batches" } },
      yaxis: { title: { text: "cross-entropy (nats per word)" } },
      legend: { orientation: "h", y: -0.25 },
    },
  };
}
