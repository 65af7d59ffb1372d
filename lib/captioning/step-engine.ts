/**
 * Where a captioning training step runs, chosen once per run — as `DecodeRows` is for decoding. Cross-entropy
 * training, self-critical training and the dev loss call only this interface:
 *
 * - **onnx** (CPUs): the teacher-forced forward and hand-written backward as one compiled ONNX Runtime graph
 *   (lib/captioning/onnx-train.ts). The weights live as Float32Arrays that the graph reads and TypedAdam updates in
 *   place; the decoder's tfjs variables are refreshed from them by `sync()` only when something reads them.
 * - **tfjs** (GPUs: tfjs-node-gpu, WebGPU): tfjs autodiff through `DecoderRNN.forward` and tfjs's Adam, so the
 *   weights and the optimiser's moments stay on the device.
 *
 * Both compute the same loss and gradients (test/onnx-train.test.ts) and the same Adam (test/adam.test.ts); Adam's
 * state is stored in tfjs's layout, so a run resumes on either engine.
 */
import * as tf from "@tensorflow/tfjs";
import { TypedAdam } from "../engine/adam";
import { TrainEngine } from "../engine/backend";
import { DecoderRNN, captionLoss, paramNames, paramShape } from "./decoder";
import { OnnxDecoder } from "./onnx-decode";
import { OnnxTrainer } from "./onnx-train";

export interface StepOptions {
  /** Seeds the dropout masks. */
  seed: number;
  /** λ of the doubly stochastic attention term. */
  lambda: number;
  /** Dropout at the decoder's rate (cross-entropy training) or none (self-critical: the policy that sampled). */
  dropout: boolean;
  /** A weight per caption on its words' cross-entropy (self-critical training's advantages); λ must be 0. */
  captionWeights?: readonly number[];
}

/** One step's loss parts and gradients: tfjs tensors by variable name, or arrays by parameter name (ONNX). */
export interface CaptionStep {
  loss: number;
  crossEntropy: number;
  grads: tf.NamedTensorMap | Record<string, Float32Array>;
}

export interface StepEngine {
  /** For the log: where the step runs. */
  readonly description: string;
  /** What applies the gradients (`fit` clips and applies them; checkpoints store its state). */
  readonly optimizer: tf.Optimizer | TypedAdam;
  /** Decoding at the training weights on ONNX Runtime (self-critical sampling); undefined: tfjs, the decoder itself. */
  readonly decoding?: OnnxDecoder;
  /** Loss and gradients of a teacher-forced batch (`captions` `[B, T]` with `<SOS>`, padded) at the current weights. */
  step(features: tf.Tensor3D, captions: tf.Tensor2D, o: StepOptions): Promise<CaptionStep>;
  /** Loss parts without dropout and without gradients (the dev loss). */
  loss(features: tf.Tensor3D, captions: tf.Tensor2D, lambda: number): Promise<{ loss: number; crossEntropy: number }>;
  /** After the optimiser has changed the weights. */
  updated(): void;
  /** Makes the decoder's tfjs variables hold the current weights (before greedy samples, dev decoding, checkpoints). */
  sync(): void;
  dispose(): Promise<void>;
}

/**
 * The engine for `decoder` on features of `regions` regions, its optimiser at `lr`; `decoding`: also an ONNX
 * decoder that reads the training weights (self-critical training).
 */
export async function startStepEngine(
  decoder: DecoderRNN,
  o: { engine: TrainEngine; regions: number; lr: number; decoding?: boolean },
): Promise<StepEngine> {
  return o.engine === "onnx"
    ? OnnxStep.start(decoder, o.regions, o.lr, o.decoding ?? false)
    : new TfjsStep(decoder, o.lr);
}

class TfjsStep implements StepEngine {
  readonly optimizer: tf.Optimizer;
  readonly description = `tfjs on ${tf.getBackend()}`;
  constructor(
    private readonly decoder: DecoderRNN,
    lr: number,
  ) {
    this.optimizer = tf.train.adam(lr);
  }

  async step(features: tf.Tensor3D, captions: tf.Tensor2D, o: StepOptions): Promise<CaptionStep> {
    const weights = o.captionWeights ? tf.tensor1d(Float32Array.from(o.captionWeights)) : undefined;
    let crossEntropy: tf.Scalar | undefined;
    const { value, grads } = tf.variableGrads(() => {
      const out = this.decoder.forward(features, captions, o.dropout ? { training: true, seed: o.seed } : undefined);
      const r = captionLoss(out, captions, { lambda: o.lambda, captionWeights: weights });
      crossEntropy = tf.keep(r.crossEntropy);
      return r.loss;
    }, this.decoder.variables);
    const [loss, ce] = [(await value.data())[0], (await crossEntropy!.data())[0]];
    tf.dispose([value, crossEntropy!, ...(weights ? [weights] : [])]);
    return { loss, crossEntropy: ce, grads };
  }

  async loss(features: tf.Tensor3D, captions: tf.Tensor2D, lambda: number) {
    const parts = tf.tidy(() => {
      const r = captionLoss(this.decoder.forward(features, captions), captions, { lambda });
      return tf.stack([r.loss, r.crossEntropy]);
    });
    const [loss, crossEntropy] = await parts.data();
    parts.dispose();
    return { loss, crossEntropy };
  }

  updated(): void {} // the optimiser updated the variables themselves
  sync(): void {}
  async dispose(): Promise<void> {
    this.optimizer.dispose();
  }
}

class OnnxStep implements StepEngine {
  readonly description = "ONNX Runtime (native CPU kernels, all cores; lib/captioning/onnx-train.ts)";
  private stale = false;
  private constructor(
    private readonly decoder: DecoderRNN,
    private readonly trainer: OnnxTrainer,
    private readonly params: Record<string, Float32Array>,
    readonly optimizer: TypedAdam,
    readonly decoding: OnnxDecoder | undefined,
  ) {}

  static async start(decoder: DecoderRNN, regions: number, lr: number, decoding: boolean): Promise<OnnxStep> {
    const values = await OnnxTrainer.parameters(decoder);
    const names = paramNames(decoder.config);
    const params = Object.fromEntries(names.map((n) => [n, values[n].slice()])); // owned copies, updated in place
    const shapes = Object.fromEntries(names.map((n) => [n, paramShape(decoder.config, n)]));
    const onnxDecoder = decoding ? await OnnxDecoder.create(decoder, regions) : undefined;
    onnxDecoder?.setParameters(params); // the same arrays: every step samples with the weights Adam just wrote
    const trainer = new OnnxTrainer(decoder.config, regions);
    return new OnnxStep(decoder, trainer, params, new TypedAdam(params, lr, { shapes }), onnxDecoder);
  }

  private async run(features: tf.Tensor3D, captions: tf.Tensor2D, o: Parameters<OnnxTrainer["step"]>[5]) {
    const [B, T] = captions.shape;
    const f = (await features.data()) as Float32Array;
    return this.trainer.step(this.params, f, (await captions.data()) as Int32Array, B, T, o);
  }

  async step(features: tf.Tensor3D, captions: tf.Tensor2D, o: StepOptions): Promise<CaptionStep> {
    const dropout = o.dropout ? this.decoder.config.dropout : 0;
    const r = await this.run(features, captions, { ...o, dropout });
    return { loss: r.loss, crossEntropy: r.crossEntropy, grads: r.grads };
  }

  async loss(features: tf.Tensor3D, captions: tf.Tensor2D, lambda: number) {
    const r = await this.run(features, captions, { seed: 0, lambda, dropout: 0, backward: false });
    return { loss: r.loss, crossEntropy: r.crossEntropy };
  }

  updated(): void {
    this.stale = true;
  }

  sync(): void {
    if (!this.stale) return;
    const named = this.decoder.namedVariables();
    for (const n of paramNames(this.decoder.config)) {
      const t = tf.tensor(this.params[n], named[n].shape);
      named[n].assign(t);
      t.dispose();
    }
    this.stale = false;
  }

  async dispose(): Promise<void> {
    await this.trainer.dispose();
    await this.decoding?.dispose();
  }
}
