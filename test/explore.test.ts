import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Browser, Page } from "puppeteer-core";
import puppeteer from "puppeteer-core";
import type { Server } from "node:http";
import { buildExplorer, serve } from "../scripts/explore";
import { chromium } from "../scripts/chromium";
import type { PageCaption, PageRanking } from "../explore/page";
import { projectRoot } from "../lib/util";
import { SHARED_FLICKR, tmpDir, writeImage } from "./helpers";

/** Where the page's screenshots are kept for a person to look at. */
const SHOTS = path.join(projectRoot(), "build", "test-output");

/** The attention explorer in a real browser (headless Chromium): the library's models, run in the page. */
describe("attention explorer (npm run explore) in headless Chromium", function () {
  this.timeout(600_000);
  let server: Server;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];
  let url = "";
  let outDir = "";

  before(async function () {
    const exe = chromium();
    if (!exe) {
      if (process.env.CI) assert.fail("chromium is needed to test the explorer (apt-get install chromium)");
      this.skip();
    }
    outDir = path.join(tmpDir(), "explore");
    await buildExplorer(outDir);
    server = await serve(outDir);
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
    browser = await puppeteer.launch({ executablePath: exe, headless: true, args: ["--no-sandbox"] });
    page = await browser.newPage();
    await page.setViewport({ width: 1000, height: 900 });
    page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
    page.on("pageerror", (e) => problems.push(`page: ${String(e)}`));
    page.on("requestfailed", (r) => problems.push(`request: ${r.url()}`));
    fs.mkdirSync(SHOTS, { recursive: true });
  });

  /** Gives the page one more photo (`give`) and returns its caption once the page has it. */
  async function captionOneMore(give: () => Promise<unknown>): Promise<PageCaption> {
    const before = Number(await page.$eval("#result", (e) => (e as HTMLElement).dataset.count ?? "0"));
    await give();
    await page.waitForFunction(
      (n) => document.getElementById("result")!.dataset.count === String(n),
      { timeout: 300_000 },
      before + 1,
    );
    const got = JSON.parse(await page.$eval("#result", (e) => e.textContent!)) as PageCaption[];
    return got[got.length - 1];
  }

  after(async () => {
    await browser?.close();
    server?.close();
  });

  it("loads ResNet-50 and the shipped captioner with every file verified, and names its backend", async () => {
    const t0 = Date.now();
    await page.goto(url);
    await page.waitForFunction(() => document.body.dataset.ready || document.body.dataset.error, { timeout: 300_000 });
    const [backend, error, line] = await page.evaluate(() => [
      document.body.dataset.backend ?? "",
      document.body.dataset.error ?? "",
      document.getElementById("backend")!.textContent ?? "",
    ]);
    assert.equal(error, "", `the page failed: ${error}`);
    assert.ok(["webgpu", "webgl", "wasm"].includes(backend), `backend ${backend}`);
    assert.match(
      line,
      /ResNet-50 98 MiB in [\d.]+ s, captioner \d+ MiB in [\d.]+ s, SCAN \d+ MiB in [\d.]+ s; every file's sha256 checked/,
    );
    console.log(`      models loaded in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${line}`);
    assert.deepEqual(problems, []);
  });

  it("captions photos as `attend-tell caption` does (words and consensus pick equal, attention to 1e-3), and a word click redraws its map", async function () {
    if (!SHARED_FLICKR) this.skip(); // photos; FLICKR8K_DIR
    const dev = fs.readFileSync(path.join(SHARED_FLICKR!, "Flickr_8k.devImages.txt"), "utf8").split("\n");
    const photos = dev.slice(0, 3).map((f) => path.join(SHARED_FLICKR!, "Images224", f.trim()));
    const cli = spawnSync(
      path.join(projectRoot(), "bin", "attend-tell"),
      ["caption", "--json", "--beam", "3", ...photos],
      {
        encoding: "utf8",
      },
    );
    assert.equal(cli.status, 0, cli.stderr);
    const want = JSON.parse(cli.stdout) as { words: string[]; attention: number[][] }[] | { words: string[] };
    const expected = (Array.isArray(want) ? want : [want]) as { words: string[]; attention: number[][] }[];
    const args = ["caption", "--json", "--beam", "3", "--consensus", ...photos];
    const withConsensus = spawnSync(path.join(projectRoot(), "bin", "attend-tell"), args, { encoding: "utf8" });
    assert.equal(withConsensus.status, 0, withConsensus.stderr);
    const consensus = JSON.parse(withConsensus.stdout) as { words: string[] }[];
    await (await page.$("input#photos"))!.uploadFile(...photos);
    await page.waitForFunction(
      (n) => document.getElementById("result")!.dataset.count === String(n),
      { timeout: 300_000 },
      photos.length,
    );
    const got = JSON.parse(await page.$eval("#result", (e) => e.textContent!)) as PageCaption[];
    got.forEach((g, i) => {
      assert.deepEqual(g.words, expected[i].words, `${photos[i]}: the page's caption`);
      let worst = 0;
      g.attention.forEach((row, t) =>
        row.forEach((a, r) => (worst = Math.max(worst, Math.abs(a - expected[i].attention[t][r])))),
      );
      assert.ok(worst < 1e-3, `${photos[i]}: attention differs from the CLI's by ${worst}`);
      assert.ok(g.candidates.length >= 1 && g.candidates[0].caption === g.caption);
      assert.equal(g.consensus, consensus[i].words.join(" "), `${photos[i]}: consensus decoding's pick`);
      assert.deepEqual(g.tree.path, [...g.words, "<EOS>"], `${photos[i]}: the tree's path is the caption`);
    });
    // each card draws its beam's tree: one dot per candidate weighed, the caption's path in red
    const dots = await page.$$eval(".card svg.tree", (trees) => trees.map((t) => t.querySelectorAll("circle").length));
    assert.deepEqual(dots, got.map((g) => g.tree.candidates).reverse());
    assert.ok(
      got.every((g) => g.tree.candidates > 3 * g.words.length),
      "beam 3 weighs more than the words it keeps",
    );
    console.log(
      `      seconds a photo (pixels / ResNet-50 / beam 3): ${got.map((g) => `${g.seconds.pixels.toFixed(2)} / ${g.seconds.encoder.toFixed(2)} / ${g.seconds.decoder.toFixed(2)}`).join(", ")}`,
    );
    // the newest card is first: its words are buttons; a click draws that word's map
    const card = (await page.$(".card"))!;
    const view = (await card.$("canvas"))!;
    const pixels = () => view.evaluate((c) => (c as HTMLCanvasElement).toDataURL());
    const first = await pixels();
    const words = await card.$$(".words button");
    await words[2].click();
    assert.equal(await view.evaluate((c) => c.dataset.word), "2");
    assert.notEqual(await pixels(), first, "the map of the third word differs from the first's");
    // keyboard: → moves to the next word
    await words[2].focus();
    await page.keyboard.press("ArrowRight");
    assert.equal(await view.evaluate((c) => c.dataset.word), "3");
    await page.screenshot({ path: path.join(SHOTS, "explore-captions.png"), fullPage: true });
    assert.deepEqual(problems, []);
  });

  it("ranks the photos for a typed query as `attend-tell retrieve` does: a photo's own caption puts it first", async function () {
    if (!SHARED_FLICKR) this.skip();
    const dev = fs.readFileSync(path.join(SHARED_FLICKR!, "Flickr_8k.devImages.txt"), "utf8").split("\n");
    const names = dev.slice(0, 3).map((f) => f.trim());
    const own = fs
      .readFileSync(path.join(SHARED_FLICKR!, "Flickr8k.token.txt"), "utf8")
      .split("\n")
      .find((l) => l.startsWith(`${names[1]}#0\t`))!
      .split("\t")[1];
    const folder = path.join(tmpDir(), "photos");
    fs.mkdirSync(folder);
    for (const n of names) fs.copyFileSync(path.join(SHARED_FLICKR!, "Images224", n), path.join(folder, n));
    const args = ["retrieve", "--images", folder, "--features", path.join(tmpDir(), "features"), "--json", own];
    const cli = spawnSync(path.join(projectRoot(), "bin", "attend-tell"), args, { encoding: "utf8" });
    assert.equal(cli.status, 0, cli.stderr);
    const want = (JSON.parse(cli.stdout) as { image: string; score: number }[]).map((r) => ({
      image: path.basename(r.image),
      score: r.score,
    }));
    await page.type("#query", own);
    await page.click("#search button");
    await page.waitForFunction(() => document.getElementById("ranked")!.dataset.count === "1", { timeout: 120_000 });
    const got = JSON.parse(await page.$eval("#ranked", (e) => e.textContent!)) as PageRanking;
    assert.equal(got.ranking[0].image, names[1], `"${own}" ranks its own photo first`);
    assert.deepEqual(
      got.ranking.map((r) => r.image),
      want.map((r) => r.image),
    );
    got.ranking.forEach((r, i) =>
      assert.ok(Math.abs(r.score - want[i].score) < 1e-3, `${r.image}: ${r.score} vs ${want[i].score}`),
    );
    assert.equal(got.attention.length, got.words.length);
    assert.ok(got.attention.every((row) => row.length === 49 && Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-4));
    const best = await page.$("#ranking canvas");
    assert.equal(await best!.evaluate((c) => c.dataset.word), "0");
    await page.screenshot({ path: path.join(SHOTS, "explore-ranking.png"), fullPage: true });
    assert.deepEqual(problems, []);
  });

  it("checks the files with lib's sha256 where the page has no crypto.subtle (plain http from another address)", async function () {
    // a page is a secure context (and has crypto.subtle) only on localhost or https
    const lan = Object.values(os.networkInterfaces())
      .flat()
      .find((a) => a && a.family === "IPv4" && !a.internal)?.address;
    if (!lan) this.skip();
    const other = await serve(outDir, 0, lan);
    const tab = await browser.newPage();
    const errors: string[] = [];
    tab.on("pageerror", (e) => errors.push(String(e)));
    try {
      await tab.goto(`http://${lan}:${(other.address() as { port: number }).port}/`);
      await tab.waitForFunction(() => document.body.dataset.ready || document.body.dataset.error, { timeout: 300_000 });
      const [secure, subtle, error] = await tab.evaluate(() => [
        window.isSecureContext,
        !!globalThis.crypto?.subtle,
        document.body.dataset.error ?? "",
      ]);
      assert.deepEqual([secure, subtle], [false, false], "the page is not a secure context there");
      assert.equal(error, "", `the page failed: ${error}`);
      assert.match(await tab.$eval("#backend", (e) => e.textContent ?? ""), /every file's sha256 checked/);
      assert.deepEqual(errors, []);
    } finally {
      await tab.close();
      other.close();
    }
  });

  it("captions the bundled synthetic scenes, each file checked, on a click", async () => {
    const buttons = await page.$$("#scenes button");
    assert.equal(buttons.length, 3);
    const last = await captionOneMore(() => buttons[0].click());
    assert.equal(last.image, "scene-1.png");
    assert.ok(last.words.length > 0 && last.attention.length === last.words.length);
    assert.equal(await page.$eval(".card h2", (e) => e.textContent), "scene-1.png");
    assert.deepEqual(problems, []);
  });

  it("captions a photo of any size (resized to 224 × 224 in the page)", async () => {
    const file = path.join(tmpDir(), "wide.png");
    await writeImage(file, 640, 360, { r: 40, g: 120, b: 200 });
    const last = await captionOneMore(async () => (await page.$("input#photos"))!.uploadFile(file));
    assert.equal(last.image, "wide.png");
    assert.ok(last.words.length > 0 && last.attention.every((row) => row.length === 49));
    assert.ok(
      last.attention.every((row) => Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-4),
      "each map sums to 1",
    );
    await page.screenshot({ path: path.join(SHOTS, "explore-any-size.png"), fullPage: true });
    assert.deepEqual(problems, []);
  });
});
