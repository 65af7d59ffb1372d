import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { EncoderCNN } from "../lib/encoder";
import { OnnxEncoder, onnxAvailable } from "../lib/encoder";
import { HUGE_PAGES, withHugePages } from "../lib/engine";
import { projectRoot } from "../lib/util";
import { SHARED_FLICKR, setupBackend, tmpDir, writeImage } from "./helpers";

describe("OnnxEncoder (ResNet-50 converted to ONNX, run by onnxruntime-node)", function () {
  this.timeout(300_000);
  before(async function () {
    if (!onnxAvailable()) this.skip();
    await setupBackend();
  });

  it("gives the tfjs EncoderCNN's features to float32 rounding", async () => {
    const dir = tmpDir();
    const files = [path.join(dir, "a.png"), path.join(dir, "b.png")];
    await writeImage(files[0], 300, 200, { r: 220, g: 40, b: 90 });
    await writeImage(files[1], 64, 64, { r: 10, g: 200, b: 250 });
    if (SHARED_FLICKR) files.push(path.join(SHARED_FLICKR, "Images224", "1130369873_d80a1aa59c.jpg"));
    const x = await EncoderCNN.loadBatch(files);
    const tfjs = await EncoderCNN.load();
    const y = tfjs.encode(x);
    const ref = (await y.data()) as Float32Array;
    const onnx = await OnnxEncoder.load({ threads: 1 });
    const got = await onnx.encode((await x.data()) as Float32Array, files.length);
    assert.equal(got.length, files.length * 49 * 2048);
    let maxDiff = 0,
      maxVal = 0;
    for (let i = 0; i < ref.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(ref[i] - got[i]));
      maxVal = Math.max(maxVal, ref[i]);
    }
    assert.ok(maxVal > 1 && maxDiff < 1e-5 * maxVal, `max |diff| ${maxDiff} against max value ${maxVal}`);
    tf.dispose([x, y]);
    tfjs.dispose();
  });
});

describe("huge pages for ONNX Runtime's tensors (HUGE_PAGES, bin/attend-tell)", () => {
  it("adds the glibc setting once, after any the caller has", () => {
    assert.equal(withHugePages({}).GLIBC_TUNABLES, HUGE_PAGES);
    assert.equal(
      withHugePages({ GLIBC_TUNABLES: "glibc.malloc.arena_max=2" }).GLIBC_TUNABLES,
      `glibc.malloc.arena_max=2:${HUGE_PAGES}`,
    );
    assert.equal(withHugePages(withHugePages({ PATH: "/bin" })).GLIBC_TUNABLES, HUGE_PAGES);
    assert.equal(withHugePages({ PATH: "/bin" }).PATH, "/bin");
  });

  it("is what the CLI's launcher exports", () => {
    const launcher = fs.readFileSync(path.join(projectRoot(), "bin", "attend-tell"), "utf8");
    assert.match(launcher, new RegExp(`^export GLIBC_TUNABLES=.*[:}]${HUGE_PAGES.replace(/\./g, "\\.")}"$`, "m"));
  });
});
