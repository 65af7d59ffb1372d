import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { loadOrt } from "../lib/engine";
import {
  ScanConfig,
  ScanModel,
  contrastiveLoss,
  scanParams,
  crossAttentionScores,
  l2norm,
  pairScores,
} from "../lib/matching";
import { LossPairs, OnnxScan, gradientPairs, hardestNegatives, pairGroups, sumPlan } from "../lib/matching";
import { matchingLoss } from "../lib/matching";
import { closeTo as close, deterministicWeights as det, setupBackend } from "./helpers";

/**
 * The batch loss as a function of the unit vectors through the pairs that hardestNegatives picked (tfjs, for
 * autodiff): Σ hinge of each negative pair against its own matching pair. What the ONNX backward differentiates.
 */
function pairedHingeLoss(
  images: tf.Tensor3D,
  captions: tf.Tensor3D,
  lengths: readonly number[],
  pairs: LossPairs,
  cfg: ScanConfig,
): tf.Scalar {
  return tf.tidy(() => {
    const B = pairs.own.findIndex((o, p) => o !== p); // the matching pairs come first (own[p] = p)
    const s = pairScores(
      tf.gather(images, pairs.imgIdx),
      tf.gather(captions, pairs.capIdx),
      pairs.capIdx.map((c) => lengths[c]),
      cfg,
    );
    return tf
      .relu(
        s
          .slice(B)
          .sub(tf.gather(s.slice(0, B), pairs.own.slice(B)))
          .add(cfg.margin),
      )
      .sum() as tf.Scalar;
  });
}

/** SCAN on ONNX Runtime (lib/matching/scan-onnx.ts) against the tfjs model of lib/matching/scan.ts (itself pinned to PyTorch). */
describe("SCAN on ONNX Runtime", function () {
  before(async function () {
    await setupBackend();
  });
  const [V, M, d, E, R] = [11, 4, 6, 5, 7];
  const cfg = (direction: "t2i" | "i2t", aggregation: "lse" | "mean"): ScanConfig => ({
    vocabSize: V,
    embedSize: M,
    jointDim: d,
    encoderDim: E,
    direction,
    aggregation,
    lambdaSoftmax: direction === "t2i" ? 9 : 4,
    lambdaLse: 6,
    margin: 0.2,
  });
  const unit = (shape: number[], phase: number) =>
    l2norm(
      tf.tensor(
        Array.from(
          { length: shape.reduce((a, b) => a * b) },
          (_, i) => Math.sin(0.71 * i + phase) + 0.3 * Math.cos(1.3 * i),
        ),
        shape,
      ),
    );
  const lengths = [5, 3, 4, 2];
  const T = 5;
  const zeroPadding = (x: tf.Tensor3D) =>
    x.mul(
      tf.tensor3d(
        Array.from({ length: 4 * T }, (_, i) => (i % T < lengths[Math.floor(i / T)] ? 1 : 0)),
        [4, T, 1],
      ),
    );

  for (const direction of ["t2i", "i2t"] as const) {
    for (const aggregation of ["lse", "mean"] as const) {
      it(`scores every image against every caption as lib/matching/scan.ts does (${direction}, ${aggregation}); paired scores agree`, async function () {
        if (!loadOrt()) this.skip();
        const c = cfg(direction, aggregation);
        const images = unit([3, R, d], 0) as tf.Tensor3D;
        const captions = zeroPadding(unit([4, T, d], 1) as tf.Tensor3D) as tf.Tensor3D;
        const ref = await crossAttentionScores(images, captions, lengths, c).data();
        const onnx = new OnnxScan(c, R, 1);
        const got = await onnx.scores(
          (await images.data()) as Float32Array,
          3,
          (await captions.data()) as Float32Array,
          lengths,
          T,
        );
        close(got, Array.from(ref), 1e-5, `scores ${direction} ${aggregation}`);
        // pairScores: image i with caption (i + 1) mod 4
        const pi = [0, 1, 2, 2],
          pc = [1, 2, 3, 0];
        const paired = await pairScores(
          tf.gather(images, pi),
          tf.gather(captions, pc),
          pc.map((k) => lengths[k]),
          c,
        ).data();
        close(
          paired,
          pi.map((i, k) => ref[i * 4 + pc[k]]),
          1e-5,
          "paired scores",
        );
        await onnx.dispose();
      });
    }
  }

  it("encodes regions and words as the tfjs model does", async function () {
    if (!loadOrt()) this.skip();
    const c = cfg("t2i", "lse");
    const m = new ScanModel(c, det);
    const f = Float32Array.from({ length: 2 * R * E }, (_, i) => 0.5 + 0.5 * Math.sin(0.37 * i));
    const ids = [1, 4, 5, 9, 2, 1, 3, 2, 0, 0];
    const onnx = new OnnxScan(c, R, 1);
    const params = await OnnxScan.parameters(m);
    close(
      await onnx.encodeImages(params, f, 2),
      Array.from(await m.encodeImages(tf.tensor3d(f, [2, R, E])).data()),
      1e-5,
      "region vectors",
    );
    close(
      await onnx.encodeCaptions(params, ids, [5, 3], 5),
      Array.from(await m.encodeCaptions(tf.tensor2d(ids, [2, 5], "int32"), [5, 3]).data()),
      1e-5,
      "word vectors",
    );
    await onnx.dispose();
    m.dispose();
  });

  for (const k of [1, 2]) {
    it(`the hinge loss through the pairs of the ${k} hardest negatives has the full batch loss's value and gradients`, async () => {
      const c = { ...cfg("t2i", "lse"), margin: 0.5 };
      const images = unit([4, R, d], 0.4) as tf.Tensor3D;
      const captions = zeroPadding(unit([4, T, d], 2) as tf.Tensor3D) as tf.Tensor3D;
      const full = (v: tf.Tensor, e: tf.Tensor) =>
        contrastiveLoss(crossAttentionScores(v as tf.Tensor3D, e as tf.Tensor3D, lengths, c), 0.5, k);
      const scores = (await crossAttentionScores(images, captions, lengths, c).data()) as Float32Array;
      const pairs = hardestNegatives(scores, 4, 0.5, k);
      assert.equal(pairs.imgIdx.length, 4 * (1 + 2 * k));
      assert.ok(Math.abs(pairs.loss - (await full(images, captions).data())[0]) < 1e-5, "loss from the score matrix");
      assert.ok(pairs.loss > 0, "the example violates the margin");
      const paired = (v: tf.Tensor, e: tf.Tensor) =>
        pairedHingeLoss(v as tf.Tensor3D, e as tf.Tensor3D, lengths, pairs, c);
      assert.ok(Math.abs((await paired(images, captions).data())[0] - pairs.loss) < 1e-5, "paired loss");
      const gFull = tf.grads(full)([images, captions]);
      const gPair = tf.grads(paired)([images, captions]);
      for (let j = 0; j < 2; j++)
        close(await gPair[j].data(), Array.from(await gFull[j].data()), 1e-5, `gradient ${j}`);
    });
  }

  it("the backward's pairs: a pair picked twice once with its dS summed, pairs without gradient left out, one stand-in pair when none is left", () => {
    // S(i, c) row-major; margin 0.2: image 0's hardest caption (1) violates, image 1's (0) does not, caption 0's
    // hardest image (1) does not, caption 1's (0) does — so (0, 1) is picked twice and (1, 0) carries no gradient
    const picked = hardestNegatives(Float32Array.from([0.9, 0.8, 0.2, 0.5]), 2, 0.2, 1);
    assert.deepEqual(
      [picked.imgIdx, picked.capIdx],
      [
        [0, 1, 0, 1, 1, 0],
        [0, 1, 1, 0, 0, 1],
      ],
    );
    assert.deepEqual(Array.from(picked.dS), [-1, -1, 1, 0, 0, 1]);
    const used = gradientPairs(picked);
    assert.deepEqual(
      [used.imgIdx, used.capIdx, Array.from(used.dS)],
      [
        [0, 1, 0],
        [0, 1, 1],
        [-1, -1, 2],
      ],
    );
    assert.deepEqual(gradientPairs(hardestNegatives(Float32Array.from([0.9, 0.1, 0.1, 0.9]), 2, 0.2, 1)), {
      imgIdx: [0],
      capIdx: [0],
      dS: Float32Array.from([0]),
    });
  });

  it("groups the pairs K at a time per image, and the sum plans add each group into its image and each slot into its caption once", () => {
    // image 0 is the hardest negative of many captions (a hub): 19 pairs, more than two chunks of the sums
    const imgIdx = [...Array(19).fill(0), 1, 2, 2, 4];
    const capIdx = imgIdx.map((_, p) => (p < 19 ? p % 2 : (p * 3) % 5)); // captions 0 and 1 in 10 and 9 slots
    const dS = Float32Array.from(imgIdx, (_, p) => p + 1);
    const K = 4;
    const gp = pairGroups({ imgIdx, capIdx, dS }, 5, K);
    assert.equal(gp.G, 5 + 1 + 1 + 1); // ⌈19/4⌉ groups for image 0, one each for images 1, 2, 4, none for 3
    assert.deepEqual(gp.groupImage, [0, 0, 0, 0, 0, 1, 2, 4]);
    // every pair once, in a group of its image, with its caption and dS; the rest padding at dS 0
    const seen = imgIdx.map((i, p) => {
      const at = Array.from(gp.dS).indexOf(p + 1);
      assert.ok(at >= 0, `pair ${p}`);
      assert.equal(gp.groupImage[Math.floor(at / K)], i);
      assert.equal(gp.slots[at], capIdx[p]);
      return at;
    });
    assert.equal(Array.from(gp.dS).filter((x) => x !== 0).length, imgIdx.length);
    // apply a plan as the graph does: chunks of rows (X = zero row), then each target's chunks (H = zero row)
    const apply = (q: ReturnType<typeof sumPlan>, X: number, targets: number) =>
      Array.from({ length: targets }, (_, t) =>
        q.second
          .slice(t * q.J, (t + 1) * q.J)
          .filter((h) => h !== q.H)
          .flatMap((h) => q.first.slice(h * 8, (h + 1) * 8).filter((r) => r !== X))
          .sort((a, b) => a - b),
      );
    assert.deepEqual(apply(gp.images, gp.G, 5), [[0, 1, 2, 3, 4], [5], [6], [], [7]]);
    const byCaption = Array.from({ length: 5 }, (_, c) => seen.filter((_, p) => capIdx[p] === c).sort((a, b) => a - b));
    assert.deepEqual(apply(gp.captions, gp.G * K, 5), byCaption);
    assert.ok(gp.captions.J > 1, "a caption's slots span several chunks");
  });

  for (const [direction, aggregation, k] of [
    ["t2i", "lse", 1],
    ["i2t", "lse", 1],
    ["t2i", "mean", 1],
    ["i2t", "mean", 1],
    ["t2i", "lse", 2],
    ["i2t", "mean", 2],
  ] as const) {
    it(`a training step gives tfjs autodiff's loss and gradient for every parameter (${direction}, ${aggregation}, ${k} hardest negatives, padded captions)`, async function () {
      if (!loadOrt()) this.skip();
      const c = { ...cfg(direction, aggregation), margin: 0.6 };
      const m = new ScanModel(c, det);
      const B = 4;
      const f = Float32Array.from({ length: B * R * E }, (_, i) => 0.5 + 0.5 * Math.sin(0.37 * i + 0.01 * i * i));
      const ids = Int32Array.from([1, 4, 5, 9, 2, 1, 3, 2, 0, 0, 1, 7, 10, 2, 0, 1, 6, 0, 0, 0]);
      const lens = [5, 3, 4, 2];
      const batch = {
        features: tf.tensor3d(f, [B, R, E]),
        captions: tf.tensor2d(ids, [B, 5], "int32"),
        imageNames: [],
      };
      const ref = tf.variableGrads(() => matchingLoss(m, batch, lens, k), m.variables);
      const onnx = new OnnxScan(c, R, 1);
      const got = await onnx.gradients(m, f, ids, lens, 5, { negatives: k });
      assert.ok(got.loss > 0.1, `the example has a loss (${got.loss})`);
      assert.ok(Math.abs(got.loss - ref.value.dataSync()[0]) < 1e-5, `loss ${got.loss} vs ${ref.value.dataSync()[0]}`);
      const named = m.namedVariables();
      for (const { name } of scanParams(c)) {
        const a = got.grads[named[name].name].dataSync();
        const b = ref.grads[named[name].name].dataSync();
        const scale = Math.max(1e-4, ...Array.from(b, Math.abs));
        let worst = 0;
        for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / scale);
        assert.ok(worst < 1e-4, `${name}: relative error ${worst}`);
      }
      if (k > 1) {
        // the warm-up differentiates only the pairs with a gradient (gradientPairs): the same as every picked pair;
        // and any group size gives the same gradients (3: images with 4–5 pairs fill a padded second group)
        const all = await onnx.gradients(m, f, ids, lens, 5, { negatives: k, allPairs: true });
        const threes = await onnx.gradients(m, f, ids, lens, 5, { negatives: k, groupSize: 3 });
        for (const [other, what] of [
          [all, "all pairs"],
          [threes, "groups of 3"],
        ] as const)
          for (const { name } of scanParams(c)) {
            const [a, b] = [got, other].map((r) => r.grads[named[name].name].dataSync());
            const scale = Math.max(1e-4, ...Array.from(b, Math.abs));
            assert.ok(
              a.every((x, i) => Math.abs(x - b[i]) < 1e-5 * scale),
              `${name}: ${what} differ`,
            );
          }
      }
      const val = await onnx.gradients(m, f, ids, lens, 5, { backward: false, negatives: k });
      assert.ok(Math.abs(val.loss - got.loss) < 1e-6);
      await onnx.dispose();
      m.dispose();
    });
  }
});
