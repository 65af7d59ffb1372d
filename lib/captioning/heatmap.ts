/**
 * The seed's `plot_attention(img, result, attention_plot)`: the image, then one panel per generated word with
 * that word's attention over the 7×7 regions upsampled smoothly onto the picture (bright = attended, as the
 * seed's grey overlay). As a Plotly figure for notebooks and reports, and as a PNG (sharp) for the CLI.
 * Regions are in the encoder's order, r = row·7 + col with row 0 at the top (lib/encoder/encoder.ts).
 */
import * as fs from "node:fs";
import { sharp } from "../data/image";
import { PlotlyFigure, escapeHtml } from "../util/display";

/**
 * Bilinear upsampling of a G×G grid (region order) to size×size, each region's value sitting at its cell's
 * centre and held flat beyond the outer centres. Smooth, and its peak stays in the peak region's cell.
 */
export function upsampleAttention(alpha: ArrayLike<number>, size: number): Float32Array {
  const g = Math.round(Math.sqrt(alpha.length));
  if (g * g !== alpha.length) throw new Error(`upsampleAttention: ${alpha.length} values do not form a square grid`);
  const out = new Float32Array(size * size);
  const at = (r: number, c: number) => alpha[Math.min(g - 1, Math.max(0, r)) * g + Math.min(g - 1, Math.max(0, c))];
  for (let y = 0; y < size; y++) {
    const fy = Math.min(g - 1, Math.max(0, ((y + 0.5) * g) / size - 0.5));
    const r0 = Math.floor(fy),
      wy = fy - r0;
    for (let x = 0; x < size; x++) {
      const fx = Math.min(g - 1, Math.max(0, ((x + 0.5) * g) / size - 0.5));
      const c0 = Math.floor(fx),
        wx = fx - c0;
      out[y * size + x] =
        (1 - wy) * ((1 - wx) * at(r0, c0) + wx * at(r0, c0 + 1)) +
        wy * ((1 - wx) * at(r0 + 1, c0) + wx * at(r0 + 1, c0 + 1));
    }
  }
  return out;
}

const b64 = (png: Uint8Array) => `data:image/png;base64,${Buffer.from(png).toString("base64")}`;

/**
 * Plotly figure: the image, then one panel per word (title = the word) with its attention map (upsampled to
 * `grid`×`grid` cells, scaled to that word's maximum) over the picture.
 */
export function attentionFigure(
  png: Uint8Array,
  words: readonly string[],
  alphas: readonly ArrayLike<number>[],
  opts: { cols?: number; grid?: number; title?: string } = {},
): PlotlyFigure {
  if (words.length !== alphas.length)
    throw new Error(`attentionFigure: ${words.length} words but ${alphas.length} attention vectors`);
  const cols = opts.cols ?? 5;
  const n = words.length + 1;
  const rows = Math.ceil(n / cols);
  const G = opts.grid ?? 56;
  const data: Record<string, unknown>[] = [];
  const layout: Record<string, unknown> = {
    title: { text: opts.title ?? "" },
    showlegend: false,
    height: 60 + rows * 190,
    margin: { t: 50, r: 10, b: 10, l: 10 },
    images: [] as Record<string, unknown>[],
    annotations: [] as Record<string, unknown>[],
  };
  const gap = 0.02;
  for (let p = 0; p < n; p++) {
    const [row, col] = [Math.floor(p / cols), p % cols];
    const ax = p === 0 ? "" : String(p + 1);
    const x0 = col / cols + gap,
      x1 = (col + 1) / cols - gap;
    const y1 = 1 - row / rows - 0.08 / rows,
      y0 = 1 - (row + 1) / rows + gap;
    layout[`xaxis${ax}`] = { domain: [x0, x1], range: [0, G], visible: false, anchor: `y${ax}` };
    layout[`yaxis${ax}`] = { domain: [y0, y1], range: [G, 0], visible: false, anchor: `x${ax}`, scaleanchor: `x${ax}` };
    (layout.images as Record<string, unknown>[]).push({
      source: b64(png),
      xref: `x${ax}`,
      yref: `y${ax}`,
      x: 0,
      y: 0,
      sizex: G,
      sizey: G,
      sizing: "stretch",
      layer: "below",
    });
    (layout.annotations as Record<string, unknown>[]).push({
      text: p === 0 ? "<i>image</i>" : words[p - 1],
      xref: `x${ax} domain`,
      yref: `y${ax} domain`,
      x: 0.5,
      y: 1.0,
      yanchor: "bottom",
      showarrow: false,
      font: { size: 14 },
    });
    if (p === 0) continue;
    const up = upsampleAttention(alphas[p - 1], G);
    const max = Math.max(...up) || 1;
    const z = Array.from({ length: G }, (_, r) =>
      Array.from(up.subarray(r * G, (r + 1) * G), (v) => Number((v / max).toFixed(3))),
    );
    data.push({
      type: "heatmap",
      z,
      x0: 0.5,
      dx: 1,
      y0: 0.5,
      dy: 1,
      xaxis: `x${ax}`,
      yaxis: `y${ax}`,
      zmin: 0,
      zmax: 1,
      showscale: false,
      opacity: 0.6,
      colorscale: [
        [0, "black"],
        [1, "white"],
      ],
      hovertemplate: `${words[p - 1]}: %{z}<extra></extra>`,
    });
  }
  return { data, layout };
}

/** The same as a PNG: panels of `size` pixels, `cols` per row, the word above each. */
export async function attentionPng(
  image: string | Uint8Array,
  words: readonly string[],
  alphas: readonly ArrayLike<number>[],
  opts: { cols?: number; size?: number } = {},
): Promise<Buffer> {
  if (words.length !== alphas.length)
    throw new Error(`attentionPng: ${words.length} words but ${alphas.length} attention vectors`);
  const size = opts.size ?? 224;
  const cols = opts.cols ?? 5;
  const label = 24;
  const src = typeof image === "string" ? sharp(image) : sharp(Buffer.from(image));
  const rgb = await src.removeAlpha().resize(size, size, { fit: "fill" }).raw().toBuffer();
  const panels: { input: Buffer; left: number; top: number }[] = [];
  const n = words.length + 1;
  const rows = Math.ceil(n / cols);
  for (let p = 0; p < n; p++) {
    const px = Buffer.from(rgb);
    if (p > 0) {
      // seed style: 0.4 · image + 0.6 · (attention scaled to [0, 255]) in grey
      const up = upsampleAttention(alphas[p - 1], size);
      const max = Math.max(...up) || 1;
      for (let i = 0; i < size * size; i++) {
        const a = (255 * up[i]) / max;
        for (let ch = 0; ch < 3; ch++) px[3 * i + ch] = Math.round(0.4 * rgb[3 * i + ch] + 0.6 * a);
      }
    }
    const left = (p % cols) * size,
      top = Math.floor(p / cols) * (size + label);
    panels.push({
      input: await sharp(px, { raw: { width: size, height: size, channels: 3 } })
        .png()
        .toBuffer(),
      left,
      top: top + label,
    });
    const text = p === 0 ? "image" : words[p - 1];
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${label}"><text x="${size / 2}" y="${label - 6}" font-family="sans-serif" font-size="16" text-anchor="middle" fill="#000">${escapeHtml(text)}</text></svg>`;
    panels.push({ input: Buffer.from(svg), left, top });
  }
  const png = await sharp({
    create: { width: cols * size, height: rows * (size + label), channels: 3, background: "#ffffff" },
  })
    .composite(panels)
    .png()
    .toBuffer();
  return withTextChunk(png, "Software", HEATMAP_MARK);
}

/** What a heatmap PNG says of itself (a tEXt chunk): the proof that `caption --heatmap` may replace the file. */
const HEATMAP_MARK = "attend-tell caption --heatmap";

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** `png` with a tEXt chunk `key: text` after its IHDR (PNG's 8-byte signature, then IHDR's 25 bytes). */
function withTextChunk(png: Buffer, key: string, text: string): Buffer {
  const body = Buffer.from(`${key}\0${text}`, "latin1");
  const chunk = Buffer.alloc(12 + body.length);
  chunk.writeUInt32BE(body.length, 0);
  chunk.write("tEXt", 4, "latin1");
  body.copy(chunk, 8);
  chunk.writeUInt32BE(crc32(chunk.subarray(4, 8 + body.length)), 8 + body.length);
  return Buffer.concat([png.subarray(0, 33), chunk, png.subarray(33)]);
}

/** Whether `file` is an attention map that `caption --heatmap` wrote (its tEXt chunk says so). */
export function isHeatmapPng(file: string): boolean {
  let head: Buffer;
  try {
    const fd = fs.openSync(file, "r");
    try {
      head = Buffer.alloc(33 + 12 + 64);
      fs.readSync(fd, head, 0, head.length, 0);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
  return head.subarray(33).toString("latin1").includes(`tEXtSoftware\0${HEATMAP_MARK}`);
}
