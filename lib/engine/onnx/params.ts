/**
 * The plumbing between a model's tfjs variables and its compiled graphs, the same for every model: parameters
 * become graph inputs by their stable names, their values go in as float32 tensors, and the graph's
 * `grad/<name>` outputs come back as tfjs tensors keyed by variable name (what tfjs optimisers take).
 */
import * as tf from "@tensorflow/tfjs";
import { loadOrt } from "./session";
import type { OnnxGraph } from "./proto";

type OrtTensor = import("onnxruntime-node").Tensor;

/** Graph inputs for the parameters `names`, each with its shape. */
export function parameterInputs<N extends string>(
  g: OnnxGraph,
  names: readonly N[],
  shapeOf: (name: N) => number[],
): Record<N, string> {
  return Object.fromEntries(names.map((n) => [n, g.input(n, shapeOf(n))])) as Record<N, string>;
}

/** The current values of a model's parameters `names`, from its `namedVariables()`. */
export async function parameterValues(
  named: Record<string, tf.Variable>,
  names: readonly string[],
): Promise<Record<string, Float32Array>> {
  const out: Record<string, Float32Array> = {};
  for (const n of names) out[n] = (await named[n].data()) as Float32Array;
  return out;
}

/** Feeds for a session: each value with its shape (int64 for ids, float32 otherwise). */
export function graphFeeds(
  values: Record<string, [Float32Array | BigInt64Array, number[]]>,
): Record<string, OrtTensor> {
  const ort = loadOrt();
  if (!ort) throw new Error("graphFeeds: the optional package onnxruntime-node is not installed");
  const feeds: Record<string, OrtTensor> = {};
  for (const [k, [data, dims]] of Object.entries(values))
    feeds[k] =
      data instanceof BigInt64Array ? new ort.Tensor("int64", data, dims) : new ort.Tensor("float32", data, dims);
  return feeds;
}

/** Gradients by parameter name as tfjs tensors keyed by the variables' (scoped) names, shaped as the variables. */
export function gradientTensors(
  named: Record<string, tf.Variable>,
  names: readonly string[],
  grads: Record<string, Float32Array>,
): tf.NamedTensorMap {
  return Object.fromEntries(names.map((n) => [named[n].name, tf.tensor(grads[n], named[n].shape)]));
}

/** Ids as the int64 values ONNX Gather and the word inputs take. */
export function int64(ids: ArrayLike<number>): BigInt64Array {
  return BigInt64Array.from(Array.from(ids, (v) => BigInt(v)));
}
