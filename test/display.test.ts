import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { htmlTable, imageGridHtml, plotlyBundleHtml, plotlyHtml } from "../lib/util";
import { envCheckpoint, sceneCheckpoint, staleCompiled } from "../lib/notebook";
import { projectRoot } from "../lib/util";
import { tmpDir } from "./helpers";

describe("display HTML", () => {
  it("inlines the plotly bundle so that it sets window.Plotly even under require.js", () => {
    const html = plotlyBundleHtml();
    assert.ok(html.length > 1_000_000, "the whole bundle is inlined: pages work offline");
    assert.match(html, /^<script type="text\/javascript">\(function\(module, exports, define\)\{/);
    assert.ok(html.endsWith("})(undefined, undefined, undefined);</script>"));
    assert.equal((html.match(/<\/script/gi) ?? []).length, 1, "no stray </script> inside the bundle");
  });

  it("draws a figure into its own div and escapes data that could close the script", () => {
    const a = plotlyHtml({ data: [{ y: [1, 2], name: "</script><b>" }], layout: { title: { text: "loss" } } });
    const b = plotlyHtml({ data: [] });
    const id = a.match(/<div id="([^"]+)"/)![1];
    assert.ok(a.includes(`window.Plotly.newPlot("${id}"`));
    assert.notEqual(id, b.match(/<div id="([^"]+)"/)![1]);
    assert.ok(!a.includes("</script><b>"));
    assert.ok(a.includes('"title":{"text":"loss"}'));
    assert.ok(a.includes('"margin":{"t":40,"r":20,'));
    const twoAxes = plotlyHtml({ data: [], layout: { yaxis2: { overlaying: "y", side: "right" } } });
    assert.ok(twoAxes.includes('"margin":{"t":40,"r":70,'), "room for the right axis");
  });

  it("escapes table cells and captions", () => {
    const t = htmlTable(["word", "id"], [["<PAD>", 0]], { caption: "a & b" });
    assert.ok(t.includes("&lt;PAD&gt;") && t.includes("a &amp; b") && t.includes("<td"));
    const g = imageGridHtml([{ png: new Uint8Array([137, 80]), caption: "x<y" }], 100);
    assert.ok(g.includes("data:image/png;base64,iVA=") && g.includes("x&lt;y") && g.includes("width:100px"));
    const two = imageGridHtml([{ png: new Uint8Array([137, 80]), caption: "before: a\nafter: <b>" }]);
    assert.ok(
      two.includes("before: a<br/>after: &lt;b&gt;"),
      "a new line in a caption is a line break, the text still escaped",
    );
  });
});

describe("notebook prologue", () => {
  it("finds a compiled file older than its source, or missing", () => {
    const root = tmpDir();
    const src = path.join(root, "lib");
    const dist = path.join(root, "dist", "lib");
    fs.mkdirSync(path.join(src, "data"), { recursive: true });
    fs.mkdirSync(path.join(dist, "data"), { recursive: true });
    fs.writeFileSync(path.join(src, "data", "a.ts"), "");
    fs.writeFileSync(path.join(dist, "data", "a.js"), "");
    const past = new Date(Date.now() - 60_000);
    fs.utimesSync(path.join(src, "data", "a.ts"), past, past);
    assert.equal(staleCompiled(src, dist), undefined);
    fs.utimesSync(
      path.join(dist, "data", "a.js"),
      new Date(past.getTime() - 60_000),
      new Date(past.getTime() - 60_000),
    );
    assert.equal(staleCompiled(src, dist), path.join("data", "a.ts"));
    fs.writeFileSync(path.join(src, "b.ts"), "");
    fs.utimesSync(path.join(dist, "data", "a.js"), new Date(), new Date());
    assert.equal(staleCompiled(src, dist), "b.ts", "no compiled file at all");
  });

  it("ATTEND_TELL_CHECKPOINT: a path from the project root wherever the kernel runs; a folder without one refused", () => {
    const [before, cwd] = [process.env.ATTEND_TELL_CHECKPOINT, process.cwd()];
    try {
      process.chdir(tmpDir()); // as a chapter's kernel, which runs in notebooks/
      process.env.ATTEND_TELL_CHECKPOINT = "models/captioner-flickr8k";
      const shipped = path.join(projectRoot(), "models", "captioner-flickr8k");
      assert.equal(envCheckpoint(), shipped);
      assert.equal(sceneCheckpoint(true), shipped, "the chapter uses the one it was given");
      process.env.ATTEND_TELL_CHECKPOINT = "runs/no-such-run/checkpoint";
      assert.throws(
        () => sceneCheckpoint(true),
        /^Error: ATTEND_TELL_CHECKPOINT=runs\/no-such-run\/checkpoint: no checkpoint at \//,
      );
      delete process.env.ATTEND_TELL_CHECKPOINT;
      assert.equal(envCheckpoint(), undefined);
    } finally {
      process.chdir(cwd);
      if (before === undefined) delete process.env.ATTEND_TELL_CHECKPOINT;
      else process.env.ATTEND_TELL_CHECKPOINT = before;
    }
  });
});
