/**
 * `runs/<name>/report.html`: one self-contained page (plotly.js inlined, images as data URLs; works offline)
 * with the training and validation loss charts, the metrics table, and a gallery of dev images with generated
 * vs reference captions and the per-word attention heatmaps. Written by `npm start` and `attend-tell report`.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { DataLayout, imagePath, imagesDirOf, resolveLayout } from "../data/captions";
import { escapeHtml, htmlTable, lossFigure, plotlyBundleHtml, plotlyHtml } from "../util/display";
import type { EvaluationReport, GeneratedCaption } from "./evaluate";
import { attentionFigure } from "./heatmap";
import { toPng } from "../data/image";
import { readJson, writeFileAtomic } from "../util/io";
import type { History } from "./train";
import { BOXES_FILE, readBoxes } from "../data/synthetic";
import { captionCorrect } from "./synthetic-eval";

/**
 * Writes `<runDir>/report.html` from `<runDir>/checkpoint/history.json`, `<runDir>/metrics-<split>.json` and
 * `<runDir>/captions-<split>-beam<k>.json` (the largest k present; from `attend-tell evaluate`). Returns its path.
 */
export async function writeReport(
  runDir: string,
  opts: { split?: string; gallery?: number; title?: string } = {},
): Promise<string> {
  const split = opts.split ?? "dev";
  const historyFile = path.join(runDir, "checkpoint", "history.json");
  if (!fs.existsSync(historyFile))
    throw new Error(`${runDir} has no checkpoint/history.json: train first (attend-tell train --out ${runDir})`);
  const history = readJson<History>(historyFile, "training history");
  const metricsFile = path.join(runDir, `metrics-${split}.json`);
  const metrics = fs.existsSync(metricsFile) ? readJson<EvaluationReport>(metricsFile, "metrics") : undefined;
  const parts: string[] = [plotlyBundleHtml()];
  parts.push(`<h1>${escapeHtml(opts.title ?? `attend-tell — ${path.basename(path.resolve(runDir))}`)}</h1>`);
  parts.push(
    `<p>Show, Attend and Tell: frozen ResNet-50 regions (7×7), Bahdanau attention, LSTM decoder. ${history.epoch.length} epochs; report written ${new Date().toISOString()}.</p>`,
  );
  parts.push("<h2>Training</h2>");
  parts.push(
    plotlyHtml(lossFigure(history, { title: "cross-entropy per batch, and per epoch on train and dev" }), {
      height: 420,
    }),
  );
  parts.push(trainingTable(history));
  if (!metrics) {
    parts.push(
      `<p>No <code>metrics-${escapeHtml(split)}.json</code> yet: run <code>attend-tell evaluate --checkpoint ${escapeHtml(path.join(runDir, "checkpoint"))} --data-dir DIR</code>.</p>`,
    );
  } else {
    parts.push(`<h2>Metrics (${escapeHtml(split)}, ${metrics.n_images} images)</h2>`);
    parts.push(metricsTable(metrics));
    parts.push(...(await gallery(runDir, split, metrics, opts.gallery ?? 6)));
  }
  const html =
    `<!doctype html><html><head><meta charset="utf-8"><title>attend-tell report</title>` +
    `<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 16px}td,th{font-size:13px}</style></head><body>${parts.join("\n")}</body></html>`;
  const out = path.join(runDir, "report.html");
  writeFileAtomic(out, html);
  return out;
}

/** Per-epoch losses and speed. */
function trainingTable(history: History): string {
  return htmlTable(
    ["epoch", "train loss", "train cross-entropy", "dev loss", "dev cross-entropy", "seconds", "captions/s"],
    history.epoch.map((e) => [
      e.epoch + 1,
      e.trainLoss.toFixed(4),
      e.trainCrossEntropy.toFixed(4),
      e.valLoss?.toFixed(4) ?? "",
      e.valCrossEntropy?.toFixed(4) ?? "",
      e.seconds.toFixed(0),
      e.captionsPerSecond.toFixed(1),
    ]),
  );
}

/** BLEU, CIDEr-D, ROUGE-L per beam width, and on the synthetic scenes the scene accuracy and attention figures. */
function metricsTable(metrics: EvaluationReport): string {
  const synthetic = Object.values(metrics.beam).some((m) => m.attention);
  return htmlTable(
    [
      "beam",
      "BLEU-1",
      "BLEU-2",
      "BLEU-3",
      "BLEU-4",
      "CIDEr-D",
      "ROUGE-L",
      ...(synthetic ? ["scenes right", "attention pointing", "attention mass in box"] : []),
    ],
    Object.entries(metrics.beam).map(([k, m]) => [
      k,
      m.bleu1.toFixed(1),
      m.bleu2.toFixed(1),
      m.bleu3.toFixed(1),
      m.bleu4.toFixed(1),
      m.cider.toFixed(3),
      m.rougeL.toFixed(1),
      ...(synthetic
        ? [
            `${(100 * m.sceneAccuracy!).toFixed(1)}%`,
            `${(100 * m.attention!.pointing).toFixed(1)}%`,
            `${m.attention!.massInBox.toFixed(3)} (uniform ${m.attention!.uniformMass.toFixed(3)})`,
          ]
        : []),
    ]),
    {
      caption:
        "BLEU and ROUGE-L ×100 (0–100); CIDEr-D as pycocoevalcap (×10 included). Captions and references tokenised by lib/data/tokenizer.ts.",
    },
  );
}

/**
 * On synthetic scenes, whether each caption names exactly its scene's objects (undefined elsewhere: photos have no
 * single right caption).
 */
function verdicts(dataDir: string): ((c: GeneratedCaption) => boolean | undefined) | undefined {
  if (!fs.existsSync(path.join(dataDir, BOXES_FILE))) return undefined;
  const boxes = readBoxes(dataDir);
  return (c) => (boxes[c.image] ? captionCorrect(c.words, boxes[c.image]) : undefined);
}

/**
 * `count` generated captions of the widest beam saved, each with its attention maps over the image. On synthetic
 * scenes each is marked right or wrong, and up to half the gallery shows wrong ones first: a report that only
 * showed right captions would hide what the model gets wrong.
 */
async function gallery(runDir: string, split: string, metrics: EvaluationReport, count: number): Promise<string[]> {
  const out: string[] = [];
  const beams = Object.keys(metrics.beam)
    .map(Number)
    .sort((a, b) => b - a);
  const k = beams.find((b) => fs.existsSync(path.join(runDir, `captions-${split}-beam${b}.json`)));
  if (k !== undefined) {
    const caps = readJson<GeneratedCaption[]>(
      path.join(runDir, `captions-${split}-beam${k}.json`),
      "generated captions",
    );
    out.push(`<h2>Gallery (${escapeHtml(split)}, beam ${k})</h2>`);
    // the data folder's layout finds COCO's sub-folders; a folder of images alone still shows them
    let layout: DataLayout | undefined;
    try {
      layout = resolveLayout(metrics.dataDir);
    } catch {
      layout = undefined;
    }
    const judge = verdicts(metrics.dataDir);
    let shown = caps.slice(0, count);
    if (judge) {
      const wrong = caps.filter((c) => judge(c) === false);
      const nWrong = Math.min(wrong.length, Math.ceil(count / 2));
      shown = [...wrong.slice(0, nWrong), ...caps.filter((c) => judge(c) !== false).slice(0, count - nWrong)];
      out.push(
        `<p>${wrong.length} of ${caps.length} captions name the wrong objects; the gallery shows ${nWrong} of them first.</p>`,
      );
    }
    for (const c of shown) {
      const file = layout ? imagePath(layout, c.image) : path.join(imagesDirOf(metrics.dataDir), c.image);
      const v = judge?.(c);
      const mark = v === undefined ? "" : v ? " — right" : ' — <span style="color:#b00">wrong</span>';
      out.push(
        `<h3>${escapeHtml(c.image)}${mark}</h3><p><b>generated:</b> ${escapeHtml(c.caption)}<br/><b>references:</b><br/>${c.references.map(escapeHtml).join("<br/>")}</p>`,
      );
      if (fs.existsSync(file) && c.words.length)
        out.push(
          plotlyHtml(attentionFigure(await toPng(file, 160), c.words, c.attention, { cols: 6 }), {
            height: 80 + Math.ceil((c.words.length + 1) / 6) * 190,
          }),
        );
    }
  }
  return out;
}
