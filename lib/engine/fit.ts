/**
 * The training loop both models share: epochs of batches, the learning rate set before every step, the step's
 * gradients clipped to a global norm and applied, a stop on a non-finite loss that keeps the last good checkpoint,
 * a progress bar, and whatever each model does after a step and after an epoch (history, validation, checkpoint).
 * Everything is released in `finally`, however the run ends. The model's own math lives in `step`.
 */
import * as tf from "@tensorflow/tfjs";
import { TypedAdam } from "./adam";
import { clipAndApply } from "./optimize";
import { Progress } from "../util/progress";

export interface FitStep {
  /** The batch's loss (what a non-finite stop checks). */
  loss: number;
  /** tfjs tensors by variable name (released by fit) for a tfjs optimiser; arrays by parameter name for TypedAdam. */
  grads: tf.NamedTensorMap | Record<string, Float32Array>;
}

export interface FitOptions<Batch, Step extends FitStep> {
  /** First epoch to run (0-based; a resumed run's checkpoint epoch) and the epoch to stop before. */
  from: number;
  epochs: number;
  /** tfjs's optimiser, or TypedAdam for gradients that arrive as arrays (ONNX Runtime's). */
  optimizer: tf.Optimizer | TypedAdam;
  clipNorm: number;
  /** The batches of an epoch, in an order that depends only on the epoch (so a resumed run repeats them). */
  batches(epoch: number): AsyncIterable<Batch>;
  /** Items (captions, pairs) in a batch, for the progress bar. */
  items(b: Batch): number;
  /** Releases a batch's tensors. */
  release(b: Batch): void;
  /** The learning rate of the next step, given the items already seen in this epoch. */
  lr(epoch: number, seenInEpoch: number): number;
  /** Loss and gradients of one batch. */
  step(b: Batch, at: { epoch: number; step: number }): Promise<Step>;
  /** After a finite step has been applied (e.g. the step engine marks its tfjs copy of the weights stale). */
  applied?(): void;
  /** Bookkeeping after a step: history, live charts, samples. */
  afterStep(b: Batch, r: Step, at: { epoch: number; step: number }): Promise<void> | void;
  /** After an epoch: validation, history, checkpoint. Returning true stops the run. */
  afterEpoch(epoch: number, seconds: number): Promise<boolean | void>;
  /** Released whatever happens (ONNX Runtime sessions, worker threads). */
  dispose(): Promise<void>;
  /** Named in the non-finite stop's message. */
  out: string;
  progress?: { total: number; unit: string };
}

export async function fit<Batch, Step extends FitStep>(o: FitOptions<Batch, Step>): Promise<void> {
  try {
    for (let epoch = o.from; epoch < o.epochs; epoch++) {
      const bar = o.progress
        ? new Progress(o.progress.total, `epoch ${epoch + 1}/${o.epochs}`, o.progress.unit)
        : undefined;
      const t0 = Date.now();
      let seen = 0;
      let step = 0;
      for await (const b of o.batches(epoch)) {
        // tfjs's Adam reads learningRate on every step; set in place, its moments are kept
        (o.optimizer as { learningRate: number }).learningRate = o.lr(epoch, seen);
        const r = await o.step(b, { epoch, step });
        const finite = Number.isFinite(r.loss);
        const typed = o.optimizer instanceof TypedAdam;
        if (finite) {
          if (o.optimizer instanceof TypedAdam) o.optimizer.update(r.grads as Record<string, Float32Array>, o.clipNorm);
          else clipAndApply(o.optimizer, r.grads as tf.NamedTensorMap, o.clipNorm);
          o.applied?.();
        }
        if (!typed) tf.dispose(Object.values(r.grads as tf.NamedTensorMap));
        const n = o.items(b);
        o.release(b);
        if (!finite) {
          throw new Error(
            `loss is ${r.loss} at epoch ${epoch + 1}, batch ${step + 1}: stopping; ` +
              `the last good checkpoint in ${o.out} is kept (lower --lr?)`,
          );
        }
        await o.afterStep(b, r, { epoch, step });
        seen += n;
        step++;
        bar?.tick(n, `loss ${r.loss.toFixed(3)}`);
      }
      if (await o.afterEpoch(epoch, (Date.now() - t0) / 1000)) break;
    }
  } finally {
    await o.dispose();
  }
}
