/**
 * The same frozen encoder on ONNX Runtime's native CPU kernels (optional dependency `onnxruntime-node`, which
 * ships its binaries in the npm package). The tfjs model is converted in memory (lib/engine/onnx/keras.ts) from the same
 * verified, folded weights, so features agree with EncoderCNN to float32 rounding (tested) and share its
 * identity in the feature cache. Used for feature extraction on CPUs, where it is several times faster than
 * wasm; EncoderCNN (tfjs) remains the encoder of the notebooks and of GPU backends.
 */
import * as os from "node:os";
import { FEATURE_MAP, FeatureMap, loadResNetArtifacts, mapShape } from "./encoder";
import { kerasToOnnx } from "../engine/onnx/keras";
import { OrtSession, loadOrt, onnxSession } from "../engine/onnx/session";

export { onnxAvailable } from "../engine/onnx/session";

export class OnnxEncoder {
  private constructor(
    private readonly session: OrtSession,
    readonly threads: number,
    readonly map: FeatureMap,
  ) {}

  static async load(opts: { threads?: number; fetch?: boolean; map?: FeatureMap } = {}): Promise<OnnxEncoder> {
    const map = opts.map ?? FEATURE_MAP;
    const { layer, pool } = mapShape(map);
    const bytes = await kerasToOnnx(await loadResNetArtifacts({ fetch: opts.fetch }), [
      { layer, name: "features", pool },
    ]);
    const threads = opts.threads ?? os.cpus().length;
    const session = await onnxSession(bytes, threads, { memArena: true });
    return new OnnxEncoder(session, threads, map);
  }

  /** `[B, 224, 224, 3]` caffe-normalised pixels (row-major) → `[B, regions, featureDim]` features (row-major; mapShape). */
  async encode(pixels: Float32Array, batch: number): Promise<Float32Array> {
    const { Tensor } = loadOrt()!;
    const out = await this.session.run({ input: new Tensor("float32", pixels, [batch, 224, 224, 3]) });
    const f = out.features as unknown as { data: Float32Array; dims: readonly number[] };
    const { regions, featureDim } = mapShape(this.map);
    if (f.data.length !== batch * regions * featureDim) throw new Error(`OnnxEncoder: got ${f.dims} features`);
    return f.data;
  }
}
