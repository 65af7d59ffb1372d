import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { ScanModel, contrastiveLoss } from "../lib/matching/scan";
import { closeTo as close, deterministicWeights as det, setupBackend } from "./helpers";

/**
 * Reference: test/reference/scan_reference.py — SCAN's encoders, cross attention and loss after the authors'
 * PyTorch code, PyTorch's nn.GRU with packed sequences, float64; output pasted below.
 */
const REF = {"torch": "1.13.0a0", "img": [-0.24550882120781625, -0.5217056427195075, -0.6097211706998767, -0.47780785528565106, -0.1735473522918911, 0.19331236866889157, -0.2064164780969428, -0.5012532745070519, -0.6152860276795803, -0.5073826714841216, -0.21646437426262938, 0.15253348088706917, -0.16411604281627998, -0.4764466884515191, -0.6169211247803819, -0.5348696657349681, -0.2598885978703005, 0.10883531752490239, -0.2031157233506102, -0.4994141432787717, -0.6155719018942777, -0.5096904351792616, -0.21996160792468641, 0.14910824330411404, -0.1611184850940046, -0.4745899629394465, -0.6168749597313502, -0.5366507130651756, -0.26285442674711956, 0.10575449333480293, -0.13145713615304186, -0.4555447561745233, -0.6153155767236598, -0.5531396294474681, -0.2914440250131415, 0.07537659461760832, -0.15819290525228735, -0.4727656047514262, -0.6168098764277654, -0.5383683804516397, -0.26573527538797054, 0.10274959696489418, -0.13015518002335524, -0.4546813078261043, -0.615202085398759, -0.553817031916892, -0.29266797952073625, 0.0740475733148662, -0.1312117861077379, -0.4553822151064786, -0.6152944738404806, -0.5532675766427756, -0.29167487122636604, 0.07512611653072276], "cap": [0.571196121785299, 0.37233119687329347, 0.05495201222097765, -0.25297873623801476, -0.4542358342959081, -0.5116212066135594, 0.5364084754909467, 0.24581638310408555, -0.10610658718729865, -0.3781834575433268, -0.5077162828096966, -0.48967647171545986, 0.41280507243591746, 0.028889668716219383, -0.31580095071558434, -0.5102471598841635, -0.5424620866047781, -0.4176239784282843, 0.36126385509630976, -0.048641838591953465, -0.37912708543122653, -0.5410671279350334, -0.538769748864703, -0.37464451809569754, 0.5821772085153633, 0.37677011169331237, 0.056250158074326456, -0.2479809354631748, -0.4458927419294283, -0.5056035607740128, 0.5352693946502806, 0.2336713527010208, -0.11732593866798283, -0.3825771343374322, -0.5090833283322715, -0.4894771084189092, 0.41507931123719866, 0.009835411718386441, -0.3307697209164608, -0.5122784164580391, -0.5376125492867497, -0.408347071564342, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5714536116332424, 0.36087811521681734, 0.04155807652897082, -0.26002971277877207, -0.45722167266548014, -0.5146003477177218, 0.48748036610273426, 0.14543186575716993, -0.19818998976245664, -0.43496630477474, -0.5330595599021316, -0.4781055953177558, 0.4796497078565098, 0.16085790092482666, -0.17752665258426586, -0.42869489452305126, -0.5411636921616942, -0.48570327004095076, 0.5337224613898742, 0.28112924139924217, -0.05761575012823486, -0.34956496663532605, -0.5090794882627165, -0.5014274187110587], "t2i_lse": [0.5946841660640354, 0.4497281978118646, 0.3563211228852645, 0.6622058317970007, 0.5175009890049479, 0.42698218586544806, 0.7048368052395698, 0.5637446753728661, 0.472730970048038], "t2i_lse_loss": 1.5425022510922766, "t2i_mean": [0.21103872343074362, 0.12161981588321351, 0.07766431214003178, 0.2793939090406561, 0.1874262834762791, 0.14539691504370453, 0.31898872318335103, 0.2258860429120082, 0.18496009572044234], "t2i_mean_loss": 1.4434239239913542, "i2t_lse": [0.5417355393089197, 0.4723500568333514, 0.3410088354447299, 0.5971385717839506, 0.5222737031427391, 0.40525000756759316, 0.6357123230708014, 0.5596600401343554, 0.443177460430296], "i2t_lse_loss": 1.4914499166969437, "i2t_mean": [0.3551911770231588, 0.28771684485773785, 0.15424047047132347, 0.4139694739975523, 0.33907661658630833, 0.22061962915547448, 0.45258227001186996, 0.3764514466992354, 0.25970427828780535], "i2t_mean_loss": 1.4959777909391951};


describe("SCAN (stacked cross attention), against PyTorch", () => {
  before(setupBackend);
  const [V, M, d, E, R] = [9, 4, 6, 5, 3];
  const lengths = [4, 3, 4];
  const make = (direction: "t2i" | "i2t", aggregation: "lse" | "mean") =>
    new ScanModel({ vocabSize: V, embedSize: M, jointDim: d, regionDim: E, direction, aggregation, lambdaSoftmax: direction === "t2i" ? 9 : 4, lambdaLse: 6, margin: 0.2 }, det);
  const feats = () => tf.tensor3d(Array.from({ length: 3 * R * E }, (_, j) => 0.5 + 0.5 * Math.sin(0.13 * (j % (R * E)) + 0.7 * Math.floor(j / (R * E)))), [3, R, E]);
  const ids = () => tf.tensor2d([[1, 4, 5, 2], [1, 3, 2, 0], [1, 7, 8, 6]], [3, 4], "int32");

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
        assert.ok(Math.abs(loss - REF[`${direction}_${aggregation}_loss`]) < 1e-5, `loss ${loss} vs ${REF[`${direction}_${aggregation}_loss`]}`);
        m.dispose();
      });
    }
  }

  it("initialises from its seed: the same seed the same weights, another seed others", () => {
    const c = { vocabSize: V, embedSize: M, jointDim: d, regionDim: E, direction: "t2i" as const, aggregation: "lse" as const, lambdaSoftmax: 9, lambdaLse: 6, margin: 0.2 };
    const [a, b, other] = [new ScanModel(c, undefined, 1), new ScanModel(c, undefined, 1), new ScanModel(c, undefined, 2)];
    for (const [name, w] of Object.entries(a.namedVariables())) {
      assert.deepEqual(Array.from(w.dataSync()), Array.from(b.namedVariables()[name].dataSync()), name);
      assert.notDeepEqual(Array.from(w.dataSync()), Array.from(other.namedVariables()[name].dataSync()), name);
    }
    for (const m of [a, b, other]) m.dispose();
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
    const s = tf.tensor2d([[0.9, 0.85, 0.1], [0.2, 0.8, 0.3], [0.0, 0.1, 0.7]]);
    // rows: max(0.2 − 0.9 + 0.85, 0.2 − 0.9 + 0.1) = 0.15; 0.2 − 0.8 + 0.3 < 0 → 0; 0.2 − 0.7 + 0.1 < 0 → 0
    // columns: caption 1: max(0.2 − 0.8 + 0.85, 0.2 − 0.8 + 0.1) = 0.25; caption 0: 0.2 − 0.9 + 0.2 < 0; caption 2: 0.2 − 0.7 + 0.3 < 0
    assert.ok(Math.abs((await contrastiveLoss(s, 0.2).data())[0] - 0.4) < 1e-6);
  });
});
