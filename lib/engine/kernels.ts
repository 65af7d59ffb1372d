/**
 * Kernels that a backend lacks for training, registered from JavaScript. Each is checked against the
 * cpu backend's kernel in test/kernels.test.ts.
 *
 * - `UnsortedSegmentSum` on wasm: the gradient of `tf.gather` (an embedding lookup) sums the incoming
 *   gradient rows into the embedding table with it; tfjs-backend-wasm 4.22 has no such kernel, so without
 *   this, training any embedding on wasm fails with "Kernel 'UnsortedSegmentSum' not registered".
 * - `AddN` on WebGPU: each input is bound as a storage buffer, and adapters allow as few as 8 per shader stage,
 *   so adding more than 7 tensors at once (e.g. the 18 squared gradient norms of a clipping step) fails
 *   validation ("The number of storage buffers (19) … exceeds the maximum per-stage limit (8)", seen on an
 *   H200 through Dawn/Vulkan) and returns garbage. The wrapper adds in chunks within the adapter's limit.
 * - The gradient of `BatchMatMul` (every matMul), for all backends: the stock one multiplies with
 *   transposeA/transposeB, which wasm runs ~8× slower than an explicit transpose + plain matMul (profiled:
 *   97 % of a decoder training step). Same values, computed the fast way.
 * - The gradient of `TopK`, which tfjs has on no backend: SCAN's warm-up loss sums each row's k largest
 *   violations. Without it the loss had to read the top-k places back to the CPU to build a constant mask, and a
 *   synchronous read fails on WebGPU in Node. The gradient of the values routes each dy to the place it came from.
 */
import * as tf from "@tensorflow/tfjs";

type TensorInfo = tf.TensorInfo;
type Values = Float32Array | Int32Array | Uint8Array;

/** The few backend methods our kernels use; every tfjs backend has readSync and one of the two writers. */
interface MinimalBackend {
  readSync(dataId: unknown): unknown;
  makeTensorInfo?(shape: number[], dtype: tf.DataType, values: Values): TensorInfo;
  makeOutput?(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: Values): TensorInfo;
}

function makeTensorInfo(backend: MinimalBackend, shape: number[], dtype: tf.DataType, values: Values): TensorInfo {
  if (backend.makeTensorInfo) return backend.makeTensorInfo(shape, dtype, values);
  if (backend.makeOutput) return backend.makeOutput(shape, dtype, undefined, values);
  throw new Error("kernels: backend can neither makeTensorInfo nor makeOutput");
}

/**
 * out[s, …] = Σ_{i: ids[i] = s} x[i, …] for s in [0, numSegments). `segmentIds` covers the leading
 * dimensions of x; ids outside [0, numSegments) are dropped, as TensorFlow does.
 */
export function unsortedSegmentSumValues(
  x: ArrayLike<number>,
  ids: ArrayLike<number>,
  numSegments: number,
  inner: number,
): Float32Array {
  const out = new Float32Array(numSegments * inner);
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue;
    const src = i * inner;
    const dst = s * inner;
    for (let j = 0; j < inner; j++) out[dst + j] += x[src + j];
  }
  return out;
}

const unsortedSegmentSum: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, segmentIds } = inputs as { x: TensorInfo; segmentIds: TensorInfo };
  const numSegments = (attrs as { numSegments: number }).numSegments;
  const b = backend as unknown as MinimalBackend;
  const outer = segmentIds.shape.reduce((a, d) => a * d, 1);
  const size = x.shape.reduce((a, d) => a * d, 1);
  const inner = outer === 0 ? 0 : size / outer;
  const values = unsortedSegmentSumValues(
    b.readSync(x.dataId) as Float32Array,
    b.readSync(segmentIds.dataId) as Int32Array,
    numSegments,
    inner,
  );
  const outShape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
  if (x.dtype === "int32") return makeTensorInfo(b, outShape, "int32", Int32Array.from(values));
  return makeTensorInfo(b, outShape, "float32", values);
};

/** JavaScript kernels per backend, registered only where the backend has none of its own. */
const FALLBACKS: Record<string, tf.KernelConfig[]> = {
  wasm: [{ kernelName: "UnsortedSegmentSum", backendName: "wasm", kernelFunc: unsortedSegmentSum }],
};

/** Registers what `backendName` lacks; safe to call more than once. Returns the kernel names added. */
export function registerMissingKernels(backendName: string): string[] {
  const added: string[] = [];
  for (const k of FALLBACKS[backendName] ?? []) {
    if (tf.getKernel(k.kernelName, backendName) === undefined) {
      tf.registerKernel(k);
      added.push(k.kernelName);
    }
  }
  return added;
}

/**
 * AddN that never adds more than `maxInputs` tensors in one kernel call: chunks are summed first, their partial
 * sums then (freed as soon as they are used).
 */
export function chunkedAddN(original: tf.KernelFunc, maxInputs: number): tf.KernelFunc {
  if (maxInputs < 2) throw new Error(`chunkedAddN: maxInputs must be ≥ 2, got ${maxInputs}`);
  return (args) => {
    let list = Object.values(args.inputs) as TensorInfo[];
    const made = new Set<TensorInfo>();
    const backend = args.backend as unknown as { disposeData(dataId: unknown): void };
    while (list.length > maxInputs) {
      const next: TensorInfo[] = [];
      for (let i = 0; i < list.length; i += maxInputs) {
        const chunk = list.slice(i, i + maxInputs);
        if (chunk.length === 1) {
          next.push(chunk[0]);
          continue;
        }
        const sum = original({ ...args, inputs: chunk as unknown as tf.NamedTensorInfoMap }) as TensorInfo;
        for (const c of chunk) if (made.delete(c)) backend.disposeData(c.dataId);
        made.add(sum);
        next.push(sum);
      }
      list = next;
    }
    const out = original({ ...args, inputs: list as unknown as tf.NamedTensorInfoMap }) as TensorInfo;
    for (const c of list) if (made.delete(c)) backend.disposeData(c.dataId);
    return out;
  };
}

const wrapped = new Set<string>();
/** Kernels replaced by a wrapper on some backends (see the module comment); idempotent. */
export function registerKernelFixes(backendName: string): string[] {
  if (backendName !== "webgpu" || wrapped.has(backendName)) return [];
  const addN = tf.getKernel("AddN", backendName);
  if (!addN) return [];
  const device = (tf.backend() as unknown as { device?: { limits?: { maxStorageBuffersPerShaderStage?: number } } })
    .device;
  const limit = device?.limits?.maxStorageBuffersPerShaderStage ?? 8;
  tf.unregisterKernel("AddN", backendName);
  tf.registerKernel({ ...addN, kernelFunc: chunkedAddN(addN.kernelFunc, Math.max(2, limit - 1)) });
  wrapped.add(backendName);
  return ["AddN"];
}

/** Swap the last two axes. */
function swapLast(x: tf.Tensor): tf.Tensor {
  const perm = x.shape.map((_, i) => i);
  [perm[x.rank - 2], perm[x.rank - 1]] = [perm[x.rank - 1], perm[x.rank - 2]];
  return tf.transpose(x, perm);
}

/** matMul(x, y) with optional transposes done as explicit transposes (fast on wasm). */
function mm(x: tf.Tensor, y: tf.Tensor, tx: boolean, ty: boolean): tf.Tensor {
  return tf.matMul(tx ? swapLast(x) : x, ty ? swapLast(y) : y);
}

const batchMatMulGrad: tf.GradConfig = {
  kernelName: "BatchMatMul",
  inputsToSave: ["a", "b"],
  gradFunc: (dy, saved, attrs) => {
    const [a, b] = saved;
    const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
    const g = dy as tf.Tensor;
    if (!transposeA && !transposeB) return { a: () => mm(g, b, false, true), b: () => mm(a, g, true, false) };
    if (!transposeA && transposeB) return { a: () => mm(g, b, false, false), b: () => mm(g, a, true, false) };
    if (transposeA && !transposeB) return { a: () => mm(b, g, false, true), b: () => mm(a, g, false, false) };
    return { a: () => mm(b, g, true, true), b: () => mm(g, a, true, true) };
  },
};

/** d values / d x: each row's dy scattered to the k places its values came from (indices get no gradient). */
const topKGrad: tf.GradConfig = {
  kernelName: "TopK",
  inputsToSave: ["x"],
  outputsToSave: [false, true],
  gradFunc: (dys, saved) => {
    const dValues = (dys as tf.Tensor[])[0];
    const [x, indices] = saved;
    const n = x.shape[x.rank - 1];
    const k = indices.shape[indices.rank - 1];
    return {
      x: () => {
        // [rows, k, n] one-hot places weighted by dy, summed over k: a scatter-add every backend has. Cast, not
        // oneHot(…, "float32"): wasm's OneHot writes int32 bits whatever the dtype (tfjs-backend-wasm 4.22).
        const places = tf.oneHot(indices.reshape([-1, k]) as tf.Tensor2D, n).cast("float32");
        return places
          .mul(dValues.reshape([-1, k, 1]))
          .sum(1)
          .reshape(x.shape);
      },
    };
  },
};

let gradientsRegistered = false;
/** Registers gradients that tfjs lacks or computes slowly (see the module comment); idempotent. */
export function registerGradients(): void {
  if (gradientsRegistered) return;
  tf.registerGradient(batchMatMulGrad);
  tf.registerGradient(topKGrad);
  gradientsRegistered = true;
}
