import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { DecoderConfig, DecoderRNN, OnnxDecoder, beamSearchBatch, defaultInitializer } from "../lib/captioning";
import { OnnxTrainer, greedy, sampleCaptions } from "../lib/captioning";
import { loadOrt } from "../lib/engine";
import { setupBackend } from "./helpers";

/** Beam search's step on ONNX Runtime (lib/captioning/onnx-decode.ts) against the tfjs decoder. */
describe("decoding on ONNX Runtime", function () {
  before(async function () {
    if (!loadOrt()) this.skip(); // optional dependency
    await setupBackend();
  });
  const config = { vocabSize: 23, embedSize: 8, encoderDim: 16, attentionDim: 8, decoderDim: 16, dropout: 0 };
  /** A decoder with peaked output distributions (a trained model's are; random weights give near-ties). */
  function peaked(seed: number, variant: Partial<DecoderConfig> = {}): DecoderRNN {
    const d = new DecoderRNN({ ...config, ...variant }, defaultInitializer(seed));
    d.fcn.assign(d.fcn.mul(25));
    return d;
  }

  for (const [label, variant] of [
    ["the seed's decoder", {}],
    ["a region layer over the features", { regionLayer: true }],
    ["a narrower region layer (16 → 10)", { regionLayer: true, regionDim: 10 }],
  ] as const)
    it(`gives the tfjs step's state, α and k best words with their log-probabilities (${label})`, async () => {
      const d = peaked(2, variant);
      const N = 5;
      const f = tf.randomUniform([N, 49, 16], 0, 1, "float32", 4) as tf.Tensor3D;
      const words = [1, 4, 7, 9, 22];
      const ref = tf.tidy(() => {
        const start = d.start(f);
        const s = d.step(
          tf.gather(d.embedding, tf.tensor1d(words, "int32")) as tf.Tensor2D,
          start.projected,
          start.regions,
          start.state,
        );
        const top = tf.topk(tf.logSoftmax(d.output(s.h, false)), 3);
        return [s.h, s.c, s.alpha, top.values, top.indices];
      });
      const onnx = await OnnxDecoder.create(d, 49, 1);
      const fv = (await f.data()) as Float32Array;
      const r = await onnx.step(words, fv, await onnx.init(fv, N), 3);
      const [h, c, alpha, values, indices] = await Promise.all(ref.map((t) => t.data()));
      const close = (a: ArrayLike<number>, b: ArrayLike<number>, what: string) => {
        assert.equal(a.length, b.length, what);
        const worst = Math.max(...Array.from(a, (x, i) => Math.abs(x - b[i])));
        assert.ok(worst < 1e-5, `${what}: differs by ${worst}`);
      };
      close(r.h, h, "h");
      close(r.c, c, "c");
      close(r.alpha, alpha, "α");
      close(r.values, values, "top log-probabilities");
      assert.deepEqual(Array.from(r.indices), Array.from(indices as Int32Array), "top words");
      await onnx.dispose();
      tf.dispose([f, ...ref]);
      d.dispose();
    });

  it("beam search (k = 3, a batch of 7 images) finds tfjs's captions, α and log-probabilities (also with a region layer)", async () => {
    const runs: [number, Partial<DecoderConfig>][] = [
      [3, {}],
      [6, {}],
      [8, { regionLayer: true, regionDim: 12 }],
    ];
    for (const [seed, variant] of runs) {
      const d = peaked(seed, variant);
      const f = tf.randomUniform([7, 49, 16], 0, 1, "float32", seed) as tf.Tensor3D;
      const onnx = await OnnxDecoder.create(d, 49);
      const viaOnnx = await beamSearchBatch(d, f, 3, 12, 0, onnx);
      const viaTfjs = await beamSearchBatch(d, f, 3, 12, 0);
      assert.deepEqual(
        viaOnnx.map((g) => g.ids),
        viaTfjs.map((g) => g.ids),
      );
      viaOnnx.forEach((g, i) => {
        assert.ok(Math.abs(g.logProb - viaTfjs[i].logProb) < 1e-4, `image ${i}: ${g.logProb} vs ${viaTfjs[i].logProb}`);
        assert.equal(g.finished, viaTfjs[i].finished);
        g.alphas.forEach((a, t) => assert.ok(a.every((x, r) => Math.abs(x - viaTfjs[i].alphas[t][r]) < 1e-5)));
      });
      assert.ok(
        viaOnnx.some((g) => g.ids.length > 1),
        "captions of more than one word",
      );
      await onnx.dispose();
      f.dispose();
      d.dispose();
    }
  });

  it("an ensemble (a region layer in one member) decodes on ONNX Runtime as on tfjs", async () => {
    const members = [peaked(3), peaked(8, { regionLayer: true, regionDim: 12 })];
    const f = tf.randomUniform([6, 49, 16], 0, 1, "float32", 2) as tf.Tensor3D;
    const onnx = [await OnnxDecoder.create(members[0], 49), await OnnxDecoder.create(members[1], 49)];
    for (const k of [1, 3]) {
      const viaOnnx = k === 1 ? await greedy(members, f, 12, onnx) : await beamSearchBatch(members, f, k, 12, 0, onnx);
      const viaTfjs = k === 1 ? await greedy(members, f, 12) : await beamSearchBatch(members, f, k, 12, 0);
      assert.deepEqual(
        viaOnnx.map((g) => g.ids),
        viaTfjs.map((g) => g.ids),
        `k ${k}`,
      );
      viaOnnx.forEach((g, i) => assert.ok(Math.abs(g.logProb - viaTfjs[i].logProb) < 1e-4, `k ${k}, image ${i}`));
    }
    await assert.rejects(greedy(members, f, 12, onnx.slice(0, 1)), /2 decoders but 1 ONNX decoders/);
    for (const o of onnx) await o.dispose();
    f.dispose();
    members.forEach((m) => m.dispose());
  });

  it("greedy decoding and sampling (self-critical training's) draw tfjs's words; setParameters switches the weights", async () => {
    const d = peaked(5, { regionLayer: true });
    d.fcn.assign(d.fcn.div(10)); // flatter: samples differ from each other
    const f = tf.randomUniform([4, 49, 16], 0, 1, "float32", 9) as tf.Tensor3D;
    const onnx = await OnnxDecoder.create(d, 49);
    const same = (a: { ids: number[]; logProb: number; finished: boolean }[], b: typeof a, what: string) => {
      assert.deepEqual(
        a.map((g) => g.ids),
        b.map((g) => g.ids),
        what,
      );
      a.forEach((g, i) => assert.ok(Math.abs(g.logProb - b[i].logProb) < 1e-4, `${what} ${i}: ${g.logProb}`));
      assert.deepEqual(
        a.map((g) => g.finished),
        b.map((g) => g.finished),
      );
    };
    same(await greedy(d, f, 10, onnx), await greedy(d, f, 10), "greedy");
    const drawn = await sampleCaptions(d, f, { samples: 5, seed: 3, maxLen: 10, onnx });
    same(drawn, await sampleCaptions(d, f, { samples: 5, seed: 3, maxLen: 10 }), "samples");
    assert.ok(new Set(drawn.map((g) => g.ids.join(" "))).size > 10, "distinct samples");
    // new weights: the decoder's old ones no longer decode
    const other = peaked(6, { regionLayer: true });
    assert.notDeepEqual(
      (await greedy(d, f, 10)).map((g) => g.ids),
      (await greedy(other, f, 10)).map((g) => g.ids),
    );
    onnx.setParameters(await OnnxTrainer.parameters(other));
    same(await greedy(d, f, 10, onnx), await greedy(other, f, 10), "greedy after setParameters");
    await onnx.dispose();
    f.dispose();
    d.dispose();
    other.dispose();
  });
});
