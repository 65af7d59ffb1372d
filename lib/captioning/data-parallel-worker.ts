/**
 * One data-parallel replica (started by lib/captioning/data-parallel.ts in a worker thread): its own tfjs backend and
 * decoder; per step it copies the shared weights if they changed, computes the gradient of its share of the
 * batch and writes it to shared memory.
 */
import { parentPort } from "node:worker_threads";
import * as tf from "@tensorflow/tfjs";
import { BackendKind, initBackend } from "../engine/backend";
import { DecoderRNN } from "./decoder";
import type { FromWorker, ToWorker } from "./data-parallel";
import { captionGradients } from "./train-step";

let decoder: DecoderRNN | undefined;
let params: Float32Array;
let grads: Float32Array;
let offsets: number[] = [];
let version = -1;

function reply(m: FromWorker) {
  parentPort!.postMessage(m);
}

async function handle(m: ToWorker): Promise<FromWorker> {
  if (m.type === "init") {
    const backend = await initBackend({ quiet: true, prefer: m.backend as BackendKind | undefined });
    params = new Float32Array(m.params);
    grads = new Float32Array(m.grads);
    const sizes = m.shapes.map((s) => s.reduce((a, b) => a * b, 1));
    offsets = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
    decoder = new DecoderRNN(m.config, (_name, shape) => tf.zeros(shape));
    return { type: "ready", backend: backend.kind };
  }
  const d = decoder!;
  const vars = d.variables;
  if (m.version !== version) {
    vars.forEach((v, i) => v.assign(tf.tensor(params.subarray(offsets[i], offsets[i] + v.size), v.shape)));
    version = m.version;
  }
  const features = tf.tensor3d(m.features, m.featureShape as [number, number, number]);
  const captions = tf.tensor2d(m.captions, m.captionShape as [number, number], "int32");
  const r = captionGradients(d, features, captions, {
    seed: m.seed,
    lambda: m.lambda,
    normalizer: { tokens: m.tokens, captions: m.captions_ },
  });
  for (let i = 0; i < vars.length; i++) grads.set((await r.grads[vars[i].name].data()) as Float32Array, offsets[i]);
  const out: FromWorker = {
    type: "done",
    loss: (await r.loss.data())[0],
    crossEntropy: (await r.crossEntropy.data())[0],
  };
  tf.dispose([features, captions, r.loss, r.crossEntropy, ...Object.values(r.grads)]);
  return out;
}

parentPort!.on("message", (m: ToWorker) => {
  handle(m).then(reply, (e: Error) => reply({ type: "error", message: e?.stack ?? String(e) }));
});
