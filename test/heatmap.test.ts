import { strict as assert } from "node:assert";
import sharp from "sharp";
import { attentionFigure, attentionPng, upsampleAttention } from "../lib/captioning";

const onehot = (r: number) => Array.from({ length: 49 }, (_, i) => (i === r ? 1 : 0));
const argmax = (a: ArrayLike<number>) => Array.from(a).reduce((best, v, i, arr) => (v > arr[best] ? i : best), 0);

describe("attention heatmaps (the seed's plot_attention)", () => {
  // region r = row·7 + col, row 0 at the top: row 1, column 5 is the upper right
  const r = 1 * 7 + 5;

  it("upsamples smoothly with the peak in the attended region's cell", () => {
    const up = upsampleAttention(onehot(r), 224);
    const p = argmax(up);
    const [y, x] = [Math.floor(p / 224), p % 224];
    assert.equal(Math.floor(y / 32), 1, `peak row ${y}`);
    assert.equal(Math.floor(x / 32), 5, `peak column ${x}`);
    assert.ok(Math.abs(up[(1 * 32 + 16) * 224 + 5 * 32 + 16] - 1) < 0.05, "≈ 1 at the cell's centre");
    assert.equal(up[(6 * 32 + 16) * 224 + 16], 0, "0 far away");
    assert.ok(
      up[(1 * 32 + 16) * 224 + 5 * 32 + 32] > 0.2 && up[(1 * 32 + 16) * 224 + 5 * 32 + 32] < 0.8,
      "smooth across the cell border",
    );
    assert.throws(() => upsampleAttention([1, 2, 3], 10), /3 values do not form a square grid/);
  });

  it("draws the bright spot at the right place of the PNG, one panel per word after the image", async () => {
    const grey = await sharp({
      create: { width: 100, height: 80, channels: 3, background: { r: 128, g: 128, b: 128 } },
    })
      .png()
      .toBuffer();
    const png = await attentionPng(grey, ["dog", "runs"], [onehot(r), onehot(6 * 7 + 0)], { size: 224, cols: 3 });
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height], [3 * 224, 224 + 24]);
    const px = (panel: number, x: number, y: number) => data[((24 + y) * info.width + panel * 224 + x) * info.channels];
    // panel 1 ("dog"): bright at row 1, col 5; dark at the opposite corner
    assert.ok(px(1, 5 * 32 + 16, 1 * 32 + 16) > 180, `bright: ${px(1, 5 * 32 + 16, 1 * 32 + 16)}`);
    assert.ok(px(1, 16, 6 * 32 + 16) < 60, `dark: ${px(1, 16, 6 * 32 + 16)}`);
    // panel 2 ("runs"): bright at the bottom left
    assert.ok(px(2, 16, 6 * 32 + 16) > 180);
    // panel 0 is the image itself
    assert.equal(px(0, 100, 100), 128);
  });

  it("builds a Plotly figure with the image and one titled heatmap per word", () => {
    const png = new Uint8Array([137, 80, 78, 71]);
    const fig = attentionFigure(png, ["a", "dog"], [onehot(0), onehot(r)], { grid: 28 });
    assert.equal(fig.data.length, 2);
    const z = fig.data[1].z as number[][];
    const flat = z.flat();
    const p = argmax(flat);
    assert.deepEqual(
      [Math.floor(Math.floor(p / 28) / 4), Math.floor((p % 28) / 4)],
      [1, 5],
      "peak in region row 1, column 5",
    );
    const titles = (fig.layout!.annotations as { text: string }[]).map((a) => a.text);
    assert.deepEqual(titles, ["<i>image</i>", "a", "dog"]);
    assert.equal((fig.layout!.images as unknown[]).length, 3);
    assert.throws(() => attentionFigure(png, ["a"], []), /1 words but 0 attention vectors/);
  });
});
