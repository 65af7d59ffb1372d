import { strict as assert } from "node:assert";
import { htmlTable, imageGridHtml, plotlyBundleHtml, plotlyHtml } from "../lib/util/display";

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
  });

  it("escapes table cells and captions", () => {
    const t = htmlTable(["word", "id"], [["<PAD>", 0]], { caption: "a & b" });
    assert.ok(t.includes("&lt;PAD&gt;") && t.includes("a &amp; b") && t.includes("<td"));
    const g = imageGridHtml([{ png: new Uint8Array([137, 80]), caption: "x<y" }], 100);
    assert.ok(g.includes("data:image/png;base64,iVA=") && g.includes("x&lt;y") && g.includes("width:100px"));
  });
});
