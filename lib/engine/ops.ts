/**
 * The small set of tensor operations the models' math is written against, so that each model's forward and
 * hand-written backward exist once and run on two engines:
 *   - `tfOps`: tfjs tensors, computed eagerly on the active backend (wasm, WebGPU, node);
 *   - `graphOps(g)` (lib/engine/onnx/ops.ts): ONNX graph nodes, compiled once per shape and run by ONNX Runtime.
 * A value is a `T`: a `tf.Tensor` for the first, a graph value's name for the second. Shapes are always
 * explicit (`reshape` takes every dimension), so the same code builds a static graph.
 */
import * as tf from "@tensorflow/tfjs";

/** A model's parameter: its stable name, its shape, and the fan-in its initial values are drawn with. */
export interface ParamSpec<N extends string = string> {
  name: N;
  shape: number[];
  fanIn: number;
}

export interface Ops<T> {
  /** `[.., M, K] × [.., K, N]`, batch dimensions equal on both sides. */
  matMul(a: T, b: T): T;
  add(a: T, b: T): T;
  sub(a: T, b: T): T;
  mul(a: T, b: T): T;
  div(a: T, b: T): T;
  /** Elementwise larger of the two. */
  maximum(a: T, b: T): T;
  tanh(a: T): T;
  sigmoid(a: T): T;
  exp(a: T): T;
  log(a: T): T;
  sqrt(a: T): T;
  leakyRelu(a: T, slope: number): T;
  /** Softmax over `axis` (default the last). */
  softmax(a: T, axis?: number): T;
  reshape(a: T, shape: number[]): T;
  transpose(a: T, perm: number[]): T;
  concat(xs: T[], axis: number): T;
  split(a: T, sizes: number[], axis: number): T[];
  /** `xs` (equal shapes) stacked along a new axis. */
  stack(xs: T[], axis: number): T;
  sum(a: T, axes: number[], keepDims?: boolean): T;
  mean(a: T, axes: number[], keepDims?: boolean): T;
  /** Rows of `x` by int `indices` (any shape): `x[indices[...], :]`. */
  gather(x: T, indices: T): T;
  scalar(v: number): T;
  zeros(shape: number[]): T;
  /** `Σ_r w[b, r] · v[b, r, :]`: weights `[B, R]` over values `[B, R, E]` → `[B, E]`. */
  weightedSum(w: T, v: T): T;
  /**
   * `weightedSum` for many weights against the same values, prepared once (tfjs on wasm transposes the values
   * once and sums over the last axis, faster there than a batched `[1, R] × [R, E]` matMul).
   */
  weightedSums(v: T): (w: T) => T;
  /** `v[b, r, :] · x[b, :]`: values `[B, R, E]` against `[B, E]` → `[B, R]` (weightedSum's backward). */
  dots(v: T, x: T): T;
  /** Runs `fn`, releasing the intermediates it made but not those it returns (tf.tidy; nothing for a graph). */
  scope<R>(fn: () => R): R;
  /** Releases values no longer needed (tf.dispose; nothing for a graph). */
  release(xs: (T | null | undefined)[]): void;
}

/** tfjs, eager. */
export const tfOps: Ops<tf.Tensor> = {
  matMul: (a, b) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
  add: tf.add,
  sub: tf.sub,
  mul: tf.mul,
  div: tf.div,
  maximum: tf.maximum,
  tanh: tf.tanh,
  sigmoid: tf.sigmoid,
  exp: tf.exp,
  log: tf.log,
  sqrt: tf.sqrt,
  leakyRelu: (a, slope) => tf.leakyRelu(a, slope),
  softmax: (a, axis = -1) => {
    const last = a.rank - 1;
    if (axis === -1 || axis === last) return tf.softmax(a);
    // tf.softmax takes the last axis only: move `axis` there and back
    const perm = [...Array(a.rank).keys()];
    [perm[axis], perm[last]] = [last, axis];
    return tf.softmax(a.transpose(perm)).transpose(perm);
  },
  reshape: tf.reshape,
  transpose: (a, perm) => tf.transpose(a, perm),
  concat: (xs, axis) => tf.concat(xs, axis),
  split: (a, sizes, axis) => tf.split(a, sizes, axis),
  stack: (xs, axis) => tf.stack(xs, axis),
  sum: (a, axes, keepDims = false) => tf.sum(a, axes, keepDims),
  mean: (a, axes, keepDims = false) => tf.mean(a, axes, keepDims),
  gather: (x, indices) => tf.gather(x, indices),
  scalar: (v) => tf.scalar(v),
  zeros: (shape) => tf.zeros(shape),
  weightedSum: (w, v) => {
    const [B, R, E] = v.shape;
    return tf.matMul(w.reshape([B, 1, R]) as tf.Tensor3D, v as tf.Tensor3D).reshape([B, E]);
  },
  weightedSums: (v) => {
    const [B, R, E] = v.shape;
    const vT = tf.transpose(v, [0, 2, 1]); // [B, E, R]
    return (w) =>
      vT
        .mul(w.reshape([B, 1, R]))
        .sum(2)
        .reshape([B, E]);
  },
  // multiply and sum over the last axis: wasm sums other axes by transposing first
  dots: (v, x) => {
    const [B, , E] = v.shape;
    return x.reshape([B, 1, E]).mul(v).sum(2);
  },
  scope: (fn) => tf.tidy(fn as () => tf.TensorContainer) as ReturnType<typeof fn>,
  release: (xs) => tf.dispose(xs.filter((x): x is tf.Tensor => !!x)),
};
