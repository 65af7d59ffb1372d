/**
 * One feature-extraction process (forked by extractFeatures): loads the encoder once, then answers each
 * batch of files with their float16 features. One process per core, since wasm runs one thread per process.
 */
import * as path from "node:path";
import { initBackend } from "../engine/backend";
import { EncoderCNN, asFeatureMap } from "./encoder";
import { OnnxEncoder } from "./encoder-onnx";
import { encodeHalf } from "../util/float16";
import type { FromWorker, ToWorker } from "./features";

const send = (m: FromWorker) => process.send!(m);

// A worker never outlives its parent: if the parent dies, the IPC channel closes and we stop.
process.on("disconnect", () => process.exit(0));

async function main() {
  // The parent picks the runtime: "onnx" (native, multi-threaded, one worker) or "tfjs" (one worker per core).
  const runtime = process.env.ATTEND_TELL_ENCODER_RUNTIME ?? "tfjs";
  const map = asFeatureMap(process.env.ATTEND_TELL_ENCODER_MAP);
  const mirror = process.env.ATTEND_TELL_ENCODER_MIRROR === "1";
  await initBackend({ quiet: true });
  const onnx =
    runtime === "onnx"
      ? await OnnxEncoder.load({
          threads: Number(process.env.ATTEND_TELL_ENCODER_THREADS) || undefined,
          fetch: false,
          map,
        })
      : undefined;
  const encoder = onnx ? undefined : await EncoderCNN.load({ fetch: false, map });
  process.on("message", async (m: ToWorker) => {
    if ("done" in m) {
      process.disconnect();
      return;
    }
    try {
      const { batch: x, ok, bad } = await EncoderCNN.loadBatchSkipping(m.files, mirror);
      for (const b of bad) send({ bad: b });
      if (!x) return send({ names: [], data: "" });
      let features: Float32Array;
      if (onnx) features = await onnx.encode((await x.data()) as Float32Array, ok.length);
      else {
        const y = encoder!.encode(x);
        features = (await y.data()) as Float32Array;
        y.dispose();
      }
      x.dispose();
      const half = encodeHalf(features);
      send({
        names: ok.map((f) => path.basename(f)),
        data: Buffer.from(half.buffer, half.byteOffset, half.byteLength).toString("base64"),
      });
    } catch (e) {
      send({ error: (e as Error).stack ?? String(e) });
    }
  });
  send({ ready: true });
}

main().catch((e) => {
  send({ error: (e as Error).stack ?? String(e) });
  process.exit(1);
});
