/**
 * Data-parallel training on the CPU's cores. tfjs's wasm backend runs one thread per process, so the trainer
 * splits each batch between itself and worker threads (lib/captioning/data-parallel-worker.ts), each with its own wasm
 * backend and its own copy of the decoder. Every replica computes the gradient of its share of the loss,
 * normalised by the whole batch's counts, so the shares' gradients sum to the whole batch's gradient. The
 * trainer adds them, clips, and steps Adam as usual; the new weights reach the workers through shared memory.
 * Only the dropout masks differ from a one-process step (each replica draws its own).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import * as tf from "@tensorflow/tfjs";
import { DecoderConfig, DecoderRNN } from "./decoder";
import { StepResult, captionGradients, lossNormalizer } from "./train-step";

/** Messages to and from lib/captioning/data-parallel-worker.ts. */
export type ToWorker =
  | {
      type: "init";
      config: DecoderConfig;
      shapes: number[][];
      params: SharedArrayBuffer;
      grads: SharedArrayBuffer;
      backend?: string;
    }
  | {
      type: "step";
      features: Float32Array;
      featureShape: number[];
      captions: Int32Array;
      captionShape: number[];
      seed: number;
      lambda: number;
      tokens: number;
      captions_: number;
      version: number;
    };
export type FromWorker =
  | { type: "ready"; backend: string }
  | { type: "done"; loss: number; crossEntropy: number }
  | { type: "error"; message: string };

/** Cores worth using: all of them on CPU backends, one process on GPUs (they parallelise inside). */
export function defaultReplicas(backend = tf.getBackend()): number {
  if (backend !== "wasm" && backend !== "cpu") return 1;
  return Math.max(1, typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length);
}

function workerSource(): string {
  const ts = path.join(__dirname, "data-parallel-worker.ts");
  if (fs.existsSync(ts) && __filename.endsWith(".ts")) return `require("tsx/cjs"); require(${JSON.stringify(ts)});`;
  return `require(${JSON.stringify(path.join(__dirname, "data-parallel-worker.js"))});`;
}

interface Pending {
  resolve: (m: FromWorker) => void;
  reject: (e: Error) => void;
}

class Replica {
  private pending?: Pending;
  constructor(readonly worker: Worker) {
    worker.on("message", (m: FromWorker) => {
      const p = this.pending;
      this.pending = undefined;
      if (!p) return;
      if (m.type === "error") p.reject(new Error(`data-parallel worker: ${m.message}`));
      else p.resolve(m);
    });
    worker.on("error", (e) => {
      this.pending?.reject(e);
      this.pending = undefined;
    });
    worker.on("exit", (code) => {
      this.pending?.reject(new Error(`data-parallel worker exited with code ${code}`));
      this.pending = undefined;
    });
  }
  request(m: ToWorker, transfer: ArrayBuffer[] = []): Promise<FromWorker> {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage(m, transfer);
    });
  }
}

export class DataParallel {
  private version = 0;
  private sent = -1;
  private constructor(
    readonly decoder: DecoderRNN,
    private readonly replicas: Replica[],
    private readonly params: Float32Array[],
    private readonly grads: Float32Array[],
    private readonly offsets: number[],
  ) {}

  /** Main thread + `replicas − 1` workers, each holding a copy of `decoder` (weights synced before each step). */
  static async start(decoder: DecoderRNN, replicas: number): Promise<DataParallel> {
    const vars = decoder.variables;
    const sizes = vars.map((v) => v.size);
    const offsets = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
    const total = sizes.reduce((a, b) => a + b, 0);
    const out: Replica[] = [];
    const params: Float32Array[] = [];
    const grads: Float32Array[] = [];
    try {
      for (let r = 1; r < replicas; r++) {
        const p = new SharedArrayBuffer(total * 4);
        const g = new SharedArrayBuffer(total * 4);
        const rep = new Replica(new Worker(workerSource(), { eval: true }));
        out.push(rep);
        await rep.request({
          type: "init",
          config: decoder.config,
          shapes: vars.map((v) => v.shape),
          params: p,
          grads: g,
          backend: tf.getBackend(),
        });
        params.push(new Float32Array(p));
        grads.push(new Float32Array(g));
      }
    } catch (e) {
      await Promise.all(out.map((r) => r.worker.terminate()));
      throw e;
    }
    return new DataParallel(decoder, out, params, grads, offsets);
  }

  get size(): number {
    return this.replicas.length + 1;
  }

  /** Call after every optimiser step: the workers copy the weights before their next step. */
  weightsChanged(): void {
    this.version++;
  }

  private async publishWeights(): Promise<void> {
    if (this.sent === this.version) return;
    const vars = this.decoder.variables;
    for (let i = 0; i < vars.length; i++) {
      const values = (await vars[i].data()) as Float32Array;
      for (const p of this.params) p.set(values, this.offsets[i]);
    }
    this.sent = this.version;
  }

  /**
   * The whole batch's loss and gradients, computed in shares of about B / replicas captions each.
   * Features `[B, R, E]` and captions `[B, T]` stay owned by the caller.
   */
  async gradients(
    features: tf.Tensor3D,
    captions: tf.Tensor2D,
    opts: { seed: number; lambda: number },
  ): Promise<StepResult> {
    if (this.replicas.length === 0) {
      // One replica: the plain in-process step (no copies; on a GPU the features stay there).
      return tf.tidy(() => captionGradients(this.decoder, features, captions, opts));
    }
    const [B, T] = captions.shape;
    const ids = (await captions.data()) as Int32Array;
    const normalizer = lossNormalizer(ids, T);
    const n = Math.min(this.size, B);
    const share = Math.ceil(B / n);
    await this.publishWeights();
    const [, R, E] = features.shape;
    const fv = (await features.data()) as Float32Array;
    const jobs: Promise<FromWorker>[] = [];
    for (let r = 1; r < n; r++) {
      const lo = r * share,
        hi = Math.min(B, lo + share);
      if (lo >= hi) break;
      jobs.push(
        this.replicas[r - 1].request({
          type: "step",
          features: fv.slice(lo * R * E, hi * R * E),
          featureShape: [hi - lo, R, E],
          captions: ids.slice(lo * T, hi * T),
          captionShape: [hi - lo, T],
          seed: (opts.seed * 31 + r) >>> 0,
          lambda: opts.lambda,
          tokens: normalizer.tokens,
          captions_: normalizer.captions,
          version: this.version,
        }),
      );
    }
    // This thread's share while the workers compute theirs.
    const mine = tf.tidy(() => {
      const b0 = Math.min(B, share);
      const r = captionGradients(this.decoder, features.slice([0, 0, 0], [b0, R, E]), captions.slice([0, 0], [b0, T]), {
        ...opts,
        normalizer,
      });
      return { loss: r.loss, crossEntropy: r.crossEntropy, grads: r.grads };
    });
    const replies = await Promise.all(jobs);
    if (replies.length === 0) return mine;
    let loss = (await mine.loss.data())[0];
    let crossEntropy = (await mine.crossEntropy.data())[0];
    for (const m of replies)
      if (m.type === "done") {
        loss += m.loss;
        crossEntropy += m.crossEntropy;
      }
    const vars = this.decoder.variables;
    const grads = tf.tidy(() =>
      Object.fromEntries(
        vars.map((v, i) => {
          let g = mine.grads[v.name];
          for (let k = 0; k < replies.length; k++)
            g = g.add(tf.tensor(this.grads[k].subarray(this.offsets[i], this.offsets[i] + v.size), v.shape));
          return [v.name, g];
        }),
      ),
    );
    tf.dispose([mine.loss, mine.crossEntropy, ...Object.values(mine.grads)]);
    return { loss: tf.scalar(loss), crossEntropy: tf.scalar(crossEntropy), grads };
  }

  async close(): Promise<void> {
    await Promise.all(this.replicas.map((r) => r.worker.terminate()));
  }
}
