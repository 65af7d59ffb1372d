import { strict as assert } from "node:assert";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { EncoderCNN } from "../lib/encoder";
import { OnnxEncoder, onnxAvailable } from "../lib/encoder";
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
