/**
 * The same frozen encoder on ONNX Runtime's native CPU kernels (optional dependency `onnxruntime-node`, which
 * ships its binaries in the npm package). The tfjs model is converted in memory (lib/engine/onnx/keras.ts) from the same
 * verified, folded weights, so features agree with EncoderCNN to float32 rounding (tested) and share its
 * identity in the feature cache. Used for feature extraction on CPUs, where it is several times faster than
 * wasm; EncoderCNN (tfjs) remains the encoder of the notebooks and of GPU backends.
 */
import * as os from "node:os";
import { GRID, Grid, gridShape, loadResNetArtifacts } from "./encoder";
import { kerasToOnnx } from "../engine/onnx/keras";
import { OrtSession, loadOrt, onnxSession } from "../engine/onnx/session";

export { onnxAvailable } from "../engine/onnx/session";

export class OnnxEncoder {
  private constructor(
    private readonly session: OrtSession,
    readonly threads: number,
    readonly grid: Grid,
  ) {}

  static async load(opts: { threads?: number; fetch?: boolean; grid?: Grid } = {}): Promise<OnnxEncoder> {
    const grid = opts.grid ?? GRID;
    const bytes = await kerasToOnnx(await loadResNetArtifacts({ fetch: opts.fetch }), [
      { layer: gridShape(grid).layer, name: "features" },
    ]);
    const threads = opts.threads ?? os.cpus().length;
    const session = await onnxSession(bytes, threads, { memArena: true });
    return new OnnxEncoder(session, threads, grid);
  }

  /** `[B, 224, 224, 3]` caffe-normalised pixels (row-major) → `[B, 49, 2048]` features (row-major; 196×1024 at grid 14). */
  async encode(pixels: Float32Array, batch: number): Promise<Float32Array> {
    const { Tensor } = loadOrt()!;
    const out = await this.session.run({ input: new Tensor("float32", pixels, [batch, 224, 224, 3]) });
    const f = out.features as unknown as { data: Float32Array; dims: readonly number[] };
    const { regions, featureDim } = gridShape(this.grid);
    if (f.data.length !== batch * regions * featureDim) throw new Error(`OnnxEncoder: got ${f.dims} features`);
    return f.data;
  }
}
