/**
 * Decoding on ONNX Runtime's native CPU kernels, for beam search where tfjs runs on wasm: the same
 * `decoderStep` as `DecoderRNN.step` (lib/captioning/decoder.ts), built with graph ops, followed by the output
 * layer, log-softmax and top-k. One graph per row count (images × beam width), compiled once; the decoder's
 * weights are read once and fed to every step. Beam search itself (lib/captioning/generate.ts) is unchanged.
 */
import { INT64, OnnxGraph } from "../engine/onnx/proto";
import { graphOps } from "../engine/onnx/ops";
import { graphFeeds, int64, parameterInputs, parameterValues } from "../engine/onnx/params";
import { SessionCache } from "../engine/onnx/session";
import type { DecoderConfig, DecoderRNN } from "./decoder";
import { decoderStep, initWeights, initialState, regionFeatures, regionWidth, stepWeights } from "./decoder";
import { projectRegions } from "./attention";
import { ParamName as Param, paramNames, paramShape } from "./decoder";

const INIT: Param[] = [
  "attention/W",
  "attention/bW",
  "decoder/initH",
  "decoder/bInitH",
  "decoder/initC",
  "decoder/bInitC",
  "decoder/Wf",
  "decoder/bF",
];
const initParams = (c: DecoderConfig): Param[] => paramNames(c).filter((p) => INIT.includes(p));
const stepParams = (c: DecoderConfig): Param[] => paramNames(c).filter((p) => !INIT.includes(p));

/**
 * features `[N, R, encoderDim]` → projected `[N, R, K]`, h₀ and c₀ `[N, D]` (DecoderRNN.start), and with a region
 * layer the region vectors `[N, R, E]` the steps read.
 */
function initGraph(c: DecoderConfig, N: number, R: number): Uint8Array {
  const { attentionDim: K } = c;
  const E = regionWidth(c);
  const o = graphOps(new OnnxGraph(`attend_tell_decode_init_${N}`));
  const p = parameterInputs(o.g, initParams(c), (n) => paramShape(c, n)) as Record<Param, string>;
  const features = o.g.input("features", [N, R, c.encoderDim]);
  const layer = { Wf: p["decoder/Wf"], bF: p["decoder/bF"] };
  const regions = regionFeatures(o, { B: N, R, E: c.encoderDim, F: E }, features, layer);
  const projected = projectRegions(o, regions, p["attention/W"], p["attention/bW"], { B: N, R, E, K });
  const init = initialState(o, regions, initWeights(p));
  if (c.regionLayer) o.g.output(regions, "regions", [N, R, E]);
  o.g.output(projected, "projected", [N, R, K]);
  o.g.output(init.h, "h", [N, c.decoderDim]);
  o.g.output(init.c, "c", [N, c.decoderDim]);
  return o.g.toBytes(17);
}

/**
 * One step for N rows: `words [N]`, h, c → h, c, α `[N, R]`, and the k most probable next words per row (k = 0:
 * every word's log-probability `[N, V]`, what sampling draws from).
 */
function stepGraph(c: DecoderConfig, N: number, R: number, k: number): Uint8Array {
  const { attentionDim: K, decoderDim: D } = c;
  const E = regionWidth(c);
  const o = graphOps(new OnnxGraph(`attend_tell_decode_step_${N}_${k}`));
  const p = parameterInputs(o.g, stepParams(c), (n) => paramShape(c, n)) as Record<Param, string>;
  const words = o.g.input("words", [N], INT64);
  const state = { h: o.g.input("h", [N, D]), c: o.g.input("c", [N, D]) };
  const features = o.g.input("features", [N, R, E]);
  const projected = o.g.input("projected", [N, R, K]);
  const emb = o.gather(p["decoder/embedding"], words);
  const s = decoderStep(o, stepWeights(p), { B: N, R, K, D }, emb, projected, features, state);
  const logp = o.op1(
    "LogSoftmax",
    [o.add(o.matMul(s.h, p["decoder/fcn"]), p["decoder/bFcn"])],
    [{ name: "axis", i: 1 }],
  );
  o.g.output(s.h, "hNext", [N, D]);
  o.g.output(s.c, "cNext", [N, D]);
  o.g.output(s.alpha, "alpha", [N, R]);
  if (k === 0) o.g.output(logp, "values", [N, c.vocabSize]);
  else {
    const [values, indices] = o.g.op("TopK", [logp, o.g.constInt([k])], [{ name: "axis", i: -1 }], 2);
    o.g.output(values, "values", [N, k]);
    o.g.output(indices, "indices", [N, k], INT64);
  }
  return o.g.toBytes(17);
}

/** Row-major arrays of N decoding rows. */
export interface DecodeState {
  projected: Float32Array;
  /** The region layer's output, which the steps read in place of the features (DecoderConfig.regionLayer). */
  regions?: Float32Array;
  h: Float32Array;
  c: Float32Array;
}

export class OnnxDecoder {
  private constructor(
    readonly config: DecoderConfig,
    readonly regions: number,
    private params: Record<string, Float32Array>,
    private readonly sessions: SessionCache,
  ) {}

  /**
   * The decoder's current weights, read once: a decoder trained further needs `setParameters` (self-critical
   * training samples with the weights of each step) or a new OnnxDecoder.
   */
  static async create(decoder: DecoderRNN, regions: number, threads = 0): Promise<OnnxDecoder> {
    const sessions = SessionCache.require("OnnxDecoder", threads);
    return new OnnxDecoder(
      decoder.config,
      regions,
      await parameterValues(decoder.namedVariables(), paramNames(decoder.config)),
      sessions,
    );
  }

  /** Weights by parameter name (`OnnxTrainer.parameters`), used from the next step on. */
  setParameters(values: Record<string, Float32Array>): void {
    this.params = values;
  }

  private feeds(names: readonly Param[], extra: Record<string, [Float32Array | BigInt64Array, number[]]>) {
    const values = { ...extra };
    for (const n of names) values[n] = [this.params[n], paramShape(this.config, n)];
    return graphFeeds(values);
  }

  /** The starting rows for `features [N, R, E]`. */
  async init(features: Float32Array, N: number): Promise<DecodeState> {
    const R = this.regions;
    const s = await this.sessions.get(`init${N}`, () => initGraph(this.config, N, R));
    const out = await s.run(
      this.feeds(initParams(this.config), { features: [features, [N, R, this.config.encoderDim]] }),
    );
    return {
      projected: out.projected.data as Float32Array,
      regions: out.regions?.data as Float32Array | undefined,
      h: out.h.data as Float32Array,
      c: out.c.data as Float32Array,
    };
  }

  /**
   * One step of N rows from their previous words: the next state, α, and each row's k best words with their
   * log-probabilities (k = 0: `values` holds every word's, `[N, V]`, and `indices` is empty). `features` are
   * what `init` was given; with a region layer the step reads `state.regions` instead.
   */
  async step(
    words: ArrayLike<number>,
    features: Float32Array,
    state: DecodeState,
    k: number,
  ): Promise<{ h: Float32Array; c: Float32Array; alpha: Float32Array; values: Float32Array; indices: Int32Array }> {
    const N = words.length;
    const { attentionDim: K, decoderDim: D } = this.config;
    const E = regionWidth(this.config);
    const R = this.regions;
    const s = await this.sessions.get(`step${N}x${k}`, () => stepGraph(this.config, N, R, k));
    const out = await s.run(
      this.feeds(stepParams(this.config), {
        words: [int64(words), [N]],
        h: [state.h, [N, D]],
        c: [state.c, [N, D]],
        features: [state.regions ?? features, [N, R, E]],
        projected: [state.projected, [N, R, K]],
      }),
    );
    return {
      h: out.hNext.data as Float32Array,
      c: out.cNext.data as Float32Array,
      alpha: out.alpha.data as Float32Array,
      values: out.values.data as Float32Array,
      indices: k === 0 ? new Int32Array(0) : Int32Array.from(out.indices.data as BigInt64Array, Number),
    };
  }

  async dispose(): Promise<void> {
    await this.sessions.release();
  }
}
