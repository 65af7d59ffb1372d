import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { writeReport } from "../lib/captioning";
import { chromium, renderedCharts } from "../scripts/chromium";
import { tmpDir, writeImage } from "./helpers";

describe("report.html", function () {
  this.timeout(180_000);

  it("holds the loss chart, the metrics table and an attention gallery, and its charts render in headless Chromium", async () => {
    const run = tmpDir();
    const data = tmpDir();
    await writeImage(path.join(data, "Images", "x.png"), 64, 64);
    fs.mkdirSync(path.join(run, "checkpoint"));
    const batch = Array.from({ length: 10 }, (_, i) => ({
      epoch: i < 5 ? 0 : 1,
      step: i % 5,
      loss: 3 - i / 10,
      crossEntropy: 2.5 - i / 10,
    }));
    const epoch = [0, 1].map((e) => ({
      epoch: e,
      trainLoss: 2.8 - e,
      trainCrossEntropy: 2.3 - e,
      valLoss: 2.9 - e,
      valCrossEntropy: 2.4 - e,
      seconds: 10,
      captionsPerSecond: 50,
    }));
    fs.writeFileSync(path.join(run, "checkpoint", "history.json"), JSON.stringify({ batch, epoch }));
    const m = { bleu1: 60.1, bleu2: 40.2, bleu3: 28.3, bleu4: 19.4, cider: 0.512, rougeL: 45.6, seconds: 3 };
    fs.writeFileSync(
      path.join(run, "metrics-dev.json"),
      JSON.stringify({ split: "dev", dataDir: data, n_images: 1, skipped: 0, beam: { "1": m, "3": m } }),
    );
    const alpha = Array.from({ length: 49 }, (_, i) => (i === 10 ? 1 : 0));
    fs.writeFileSync(
      path.join(run, "captions-dev-beam3.json"),
      JSON.stringify([
        {
          image: "x.png",
          caption: "a red square",
          words: ["a", "red", "square"],
          attention: [alpha, alpha, alpha],
          references: ["a red square", "red box"],
        },
      ]),
    );
    const file = await writeReport(run);
    const html = fs.readFileSync(file, "utf8");
    assert.match(html, /<td[^>]*>19\.4<\/td>/, "BLEU-4 in the metrics table");
    assert.match(html, /a red square/);
    assert.equal((html.match(/<div id="attend-tell-plot-/g) ?? []).length, 2, "loss chart + one gallery figure");
    const browser = chromium();
    if (!browser) {
      if (process.env.CI) assert.fail("chromium is needed to check report.html (apt-get install chromium)");
      return;
    }
    assert.deepEqual(renderedCharts(file, browser), { expected: 2, drawn: 2 });
  });

  it("on synthetic scenes marks each gallery caption right or wrong and shows wrong ones first", async () => {
    const run = tmpDir();
    const data = tmpDir();
    for (const im of ["a.png", "b.png", "c.png"]) await writeImage(path.join(data, "Images", im), 64, 64);
    const obj = (color: string, shape: string) => ({ color, shape, size: "small", box: [0, 0, 10, 10] });
    fs.writeFileSync(
      path.join(data, "boxes.json"),
      JSON.stringify({
        format: "attend-tell/synthetic-boxes",
        version: 1,
        imageSize: 64,
        boxes: {
          "a.png": [obj("red", "square")],
          "b.png": [obj("blue", "circle")],
          "c.png": [obj("green", "diamond")],
        },
      }),
    );
    fs.mkdirSync(path.join(run, "checkpoint"));
    const epoch = [{ epoch: 0, trainLoss: 1, trainCrossEntropy: 1, seconds: 1, captionsPerSecond: 1 }];
    fs.writeFileSync(path.join(run, "checkpoint", "history.json"), JSON.stringify({ batch: [], epoch }));
    const m = { bleu1: 1, bleu2: 1, bleu3: 1, bleu4: 1, cider: 1, rougeL: 1, seconds: 1 };
    fs.writeFileSync(
      path.join(run, "metrics-dev.json"),
      JSON.stringify({ split: "dev", dataDir: data, n_images: 3, skipped: 0, beam: { "1": m } }),
    );
    const alpha = Array.from({ length: 49 }, () => 1 / 49);
    const cap = (image: string, caption: string) => {
      const words = caption.split(" ");
      return { image, caption, words, attention: words.map(() => alpha), references: [caption] };
    };
    fs.writeFileSync(
      path.join(run, "captions-dev-beam1.json"),
      JSON.stringify([cap("a.png", "a red square"), cap("b.png", "a red circle"), cap("c.png", "a green diamond")]),
    );
    const html = fs.readFileSync(await writeReport(run, { gallery: 2 }), "utf8");
    assert.match(html, /1 of 3 captions name the wrong objects; the gallery shows 1 of them first/);
    const shown = [...html.matchAll(/<h3>([^<]+?)( — (right|<span[^>]*>wrong<\/span>))?<\/h3>/g)].map((x) => [
      x[1],
      x[3]?.includes("wrong") ? "wrong" : x[3],
    ]);
    assert.deepEqual(shown, [
      ["b.png", "wrong"],
      ["a.png", "right"],
    ]);
  });

  it("says what is missing", async () => {
    await assert.rejects(writeReport(tmpDir()), /has no checkpoint\/history\.json: train first/);
  });
});
