import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { ScanModel, contrastiveLoss } from "../lib/matching";
import { closeTo as close, deterministicWeights as det, readReference, setupBackend } from "./helpers";

/**
 * Reference: test/reference/scan_reference.py — SCAN's encoders, cross attention and loss after the authors'
 * PyTorch code, PyTorch's nn.GRU with packed sequences, float64; which writes test/reference/scan_reference.json.
 */
const REF = readReference("scan_reference.json");

describe("SCAN (stacked cross attention), against PyTorch", () => {
  before(setupBackend);
  const [V, M, d, E, R] = [9, 4, 6, 5, 3];
  const lengths = [4, 3, 4];
  const make = (direction: "t2i" | "i2t", aggregation: "lse" | "mean") =>
    new ScanModel(
      {
        vocabSize: V,
        embedSize: M,
        jointDim: d,
        encoderDim: E,
        direction,
        aggregation,
        lambdaSoftmax: direction === "t2i" ? 9 : 4,
        lambdaLse: 6,
        margin: 0.2,
      },
      det,
    );
  const feats = () =>
    tf.tensor3d(
      Array.from(
        { length: 3 * R * E },
        (_, j) => 0.5 + 0.5 * Math.sin(0.13 * (j % (R * E)) + 0.7 * Math.floor(j / (R * E))),
      ),
      [3, R, E],
    );
  const ids = () =>
    tf.tensor2d(
      [
        [1, 4, 5, 2],
        [1, 3, 2, 0],
        [1, 7, 8, 6],
      ],
      [3, 4],
      "int32",
    );

  it("embeds regions and words (bidirectional GRU from each caption's last real word) as PyTorch does", async () => {
    const m = make("t2i", "lse");
    close(await m.encodeImages(feats()).data(), REF.img, 1e-5, "region vectors");
    close(await m.encodeCaptions(ids(), lengths).data(), REF.cap, 1e-5, "word vectors");
    m.dispose();
  });

  for (const direction of ["t2i", "i2t"] as const) {
    for (const aggregation of ["lse", "mean"] as const) {
      it(`scores every image against every caption (${direction}, ${aggregation}) and gives the max-violation loss`, async () => {
        const m = make(direction, aggregation);
        const s = m.similarity(m.encodeImages(feats()), m.encodeCaptions(ids(), lengths), lengths);
        assert.deepEqual(s.shape, [3, 3]);
        close(await s.data(), REF[`${direction}_${aggregation}`], 1e-5, `scores ${direction} ${aggregation}`);
        const loss = (await contrastiveLoss(s, 0.2).data())[0];
        assert.ok(
          Math.abs(loss - REF[`${direction}_${aggregation}_loss`]) < 1e-5,
          `loss ${loss} vs ${REF[`${direction}_${aggregation}_loss`]}`,
        );
        m.dispose();
      });
    }
  }

  it("initialises from its seed: the same seed the same weights, another seed others", () => {
    const c = {
      vocabSize: V,
      embedSize: M,
      jointDim: d,
      encoderDim: E,
      direction: "t2i" as const,
      aggregation: "lse" as const,
      lambdaSoftmax: 9,
      lambdaLse: 6,
      margin: 0.2,
    };
    const [a, b, other] = [
      new ScanModel(c, undefined, 1),
      new ScanModel(c, undefined, 1),
      new ScanModel(c, undefined, 2),
    ];
    for (const [name, w] of Object.entries(a.namedVariables())) {
      assert.deepEqual(Array.from(w.dataSync()), Array.from(b.namedVariables()[name].dataSync()), name);
      assert.notDeepEqual(Array.from(w.dataSync()), Array.from(other.namedVariables()[name].dataSync()), name);
    }
    for (const m of [a, b, other]) m.dispose();
    // a config stored before the features' width was named encoderDim (regionDim) reads as the same model
    const { encoderDim, ...rest } = c;
    const stored = new ScanModel({ ...rest, regionDim: encoderDim }, undefined, 1);
    assert.deepEqual(stored.config, c);
    assert.deepEqual(stored.namedVariables()["img/W"].shape, [E, d]);
    stored.dispose();
  });

  it("ignores padding: a caption scores the same alone and padded in a batch", async () => {
    const m = make("t2i", "lse");
    const imgs = m.encodeImages(feats());
    const batch = m.similarity(imgs, m.encodeCaptions(ids(), lengths), lengths);
    const alone = m.similarity(imgs, m.encodeCaptions(tf.tensor2d([[1, 3, 2]], [1, 3], "int32"), [3]), [3]);
    close(await alone.data(), Array.from(await batch.slice([0, 1], [3, 1]).data()), 1e-6, "caption 1 alone vs padded");
    m.dispose();
  });

  it("hinge loss by hand: only violations of the margin by the hardest negative count", async () => {
    // rows images, columns captions; image 0's hardest negative caption scores 0.85 > 0.9 − 0.2
    const s = tf.tensor2d([
      [0.9, 0.85, 0.1],
      [0.2, 0.8, 0.3],
      [0.0, 0.1, 0.7],
    ]);
    // rows: max(0.2 − 0.9 + 0.85, 0.2 − 0.9 + 0.1) = 0.15; 0.2 − 0.8 + 0.3 < 0 → 0; 0.2 − 0.7 + 0.1 < 0 → 0
    // columns: caption 1: max(0.2 − 0.8 + 0.85, 0.2 − 0.8 + 0.1) = 0.25; caption 0: 0.2 − 0.9 + 0.2 < 0; caption 2: 0.2 − 0.7 + 0.3 < 0
    assert.ok(Math.abs((await contrastiveLoss(s, 0.2).data())[0] - 0.4) < 1e-6);
  });
});
