/**
 * A frozen Keras CNN (as tfjs layers artifacts) → an ONNX model, so the encoder can also run on ONNX Runtime's
 * native CPU kernels (npm `onnxruntime-node`, optional): several times faster than wasm for ResNet-50's
 * convolutions on a CPU, with the same weights, the same graph and the same outputs to float32 rounding.
 *
 * Covers the layers of Keras' ResNet50 after lib/encoder/fold.ts: InputLayer, ZeroPadding2D, Conv2D (+ReLU),
 * MaxPooling2D, Activation (relu, softmax), Add, GlobalAveragePooling2D, Dense. Keras is NHWC, ONNX convs NCHW:
 * the graph transposes once at the input and once at each output. The ONNX protobuf is written by hand
 * (onnx.proto field numbers; opset 13, IR version 8) — a few dozen lines instead of a protobuf dependency.
 */
import * as tf from "@tensorflow/tfjs";

import { Attr, OnnxGraph } from "./proto";

// --- Keras → ONNX ---------------------------------------------------------------------------------------
interface KerasLayer {
  class_name: string;
  name: string;
  config: Record<string, unknown>;
  inbound_nodes: [string, number, number, unknown][][];
}

export interface OnnxOutput {
  /** Keras layer whose output becomes a graph output. */
  layer: string;
  /** Graph output name. */
  name: string;
  /** A 4-D output averaged over pool × pool cells (AveragePool, stride pool) first. */
  pool?: number;
}

/** What each layer's converter adds nodes with. */
interface Ctx {
  g: OnnxGraph;
  weights: tf.NamedTensorMap;
  node(op: string, inputs: string[], output: string, attrs?: Attr[]): void;
  /** A weight as an initializer, transposed by `perm`. */
  init(name: string, t: tf.Tensor, perm?: number[]): void;
  /** The names of the layer's inputs. */
  src(l: KerasLayer): string[];
  rank: Map<string, number>;
}

/** Converters by Keras class: each adds the layer's nodes (output named as the layer) and returns its rank. */
const CONVERTERS: Record<string, (l: KerasLayer, x: string, ctx: Ctx) => number> = {
  InputLayer: (l, _x, { node }) => {
    node("Transpose", ["input"], l.name, [{ name: "perm", ints: [0, 3, 1, 2] }]); // NHWC → NCHW
    return 4;
  },
  ZeroPadding2D: (l, x, { g, node }) => {
    const [[t, b], [le, r]] = l.config.padding as number[][];
    g.initializer(`${l.name}/pads`, [8], new BigInt64Array([0, 0, t, le, 0, 0, b, r].map(BigInt)));
    node("Pad", [x, `${l.name}/pads`], l.name);
    return 4;
  },
  Conv2D: (l, x, ctx) => {
    const c = l.config;
    if ((c.dilation_rate as number[]).some((d) => d !== 1) || c.data_format === "channels_first")
      throw new Error(`kerasToOnnx: ${l.name}: unsupported Conv2D config`);
    ctx.init(`${l.name}/W`, ctx.weights[`${l.name}/kernel`], [3, 2, 0, 1]); // HWIO → OIHW
    const attrs: Attr[] = [
      { name: "kernel_shape", ints: c.kernel_size as number[] },
      { name: "strides", ints: c.strides as number[] },
      c.padding === "same" ? { name: "auto_pad", s: "SAME_UPPER" } : { name: "pads", ints: [0, 0, 0, 0] },
    ];
    withActivation(l, ctx, "Conv", [x, `${l.name}/W`, ...bias(l, ctx)], attrs);
    return 4;
  },
  MaxPooling2D: (l, x, { node }) => {
    if (l.config.padding !== "valid") throw new Error(`kerasToOnnx: ${l.name}: padding ${l.config.padding}`);
    node("MaxPool", [x], l.name, [
      { name: "kernel_shape", ints: l.config.pool_size as number[] },
      { name: "strides", ints: l.config.strides as number[] },
    ]);
    return 4;
  },
  Activation: (l, x, { node, rank }) => {
    const act = l.config.activation;
    if (act === "relu") node("Relu", [x], l.name);
    else if (act === "softmax") node("Softmax", [x], l.name, [{ name: "axis", i: -1 }]);
    else throw new Error(`kerasToOnnx: ${l.name}: activation ${act}`);
    return rank.get(x)!;
  },
  Add: (l, _x, { node, src }) => {
    const ins = src(l);
    let acc = ins[0];
    ins.slice(1).forEach((other, k) => {
      const out = k === ins.length - 2 ? l.name : `${l.name}/${k}`;
      node("Add", [acc, other], out);
      acc = out;
    });
    return 4;
  },
  GlobalAveragePooling2D: (l, x, { node }) => {
    node("GlobalAveragePool", [x], `${l.name}/pool`);
    node("Flatten", [`${l.name}/pool`], l.name, [{ name: "axis", i: 1 }]);
    return 2;
  },
  Dense: (l, x, ctx) => {
    ctx.init(`${l.name}/W`, ctx.weights[`${l.name}/kernel`]);
    withActivation(l, ctx, "Gemm", [x, `${l.name}/W`, ...bias(l, ctx)]);
    return 2;
  },
};

/** The layer's bias as an initializer, when it has one. */
function bias(l: KerasLayer, ctx: Ctx): string[] {
  if (!l.config.use_bias) return [];
  ctx.init(`${l.name}/B`, ctx.weights[`${l.name}/bias`]);
  return [`${l.name}/B`];
}

/** `op`, then the layer's activation (linear, relu or softmax) under the layer's name. */
function withActivation(l: KerasLayer, ctx: Ctx, op: string, inputs: string[], attrs: Attr[] = []): void {
  const act = l.config.activation as string;
  if (act === "linear") return ctx.node(op, inputs, l.name, attrs);
  const pre = `${l.name}/${op.toLowerCase()}`;
  ctx.node(op, inputs, pre, attrs);
  if (act === "relu") ctx.node("Relu", [pre], l.name);
  else if (act === "softmax" && op === "Gemm") ctx.node("Softmax", [pre], l.name, [{ name: "axis", i: -1 }]);
  else throw new Error(`kerasToOnnx: ${l.name}: activation ${act}`);
}

/**
 * ONNX bytes for `artifacts`, with the given layers' outputs (NHWC, as Keras gives them) as graph outputs;
 * `inputSize` takes square pictures of that side instead of the model's own (convolutional layers only).
 */
export async function kerasToOnnx(
  artifacts: tf.io.ModelArtifacts,
  outputs: OnnxOutput[],
  opts: { inputSize?: number } = {},
): Promise<Uint8Array> {
  const topo = artifacts.modelTopology as {
    model_config?: { config: { layers: KerasLayer[] } };
    config?: { layers: KerasLayer[] };
  };
  const layers = (topo.model_config?.config ?? topo.config)!.layers;
  const wd = artifacts.weightData!;
  const weights = tf.io.decodeWeights(
    Array.isArray(wd) ? tf.io.concatenateArrayBuffers(wd) : wd,
    artifacts.weightSpecs!,
  );
  const g = new OnnxGraph("attend_tell_encoder");
  const ctx: Ctx = {
    g,
    weights,
    rank: new Map(), // tensor name → rank, to know which outputs are 4-D maps
    node: (op, inputs, output, attrs = []) => void g.op(op, inputs, attrs, [output]),
    init: (name, t, perm) => {
      const v = perm ? tf.tidy(() => t.transpose(perm)) : t;
      g.initializer(name, v.shape, v.dataSync() as Float32Array);
      if (perm) v.dispose();
    },
    src: (l) => l.inbound_nodes[0].map((e) => e[0]),
  };
  // Only the layers the outputs depend on: a cut at conv4 leaves conv5 and the classifier out of the graph.
  const byName = new Map(layers.map((l) => [l.name, l]));
  const needed = new Set<string>();
  const stack = outputs.map((o) => o.layer);
  while (stack.length) {
    const name = stack.pop()!;
    const l = byName.get(name);
    if (!l || needed.has(name)) continue;
    needed.add(name);
    if (l.class_name !== "InputLayer") stack.push(...ctx.src(l));
  }
  for (const l of layers.filter((k) => needed.has(k.name))) {
    const convert = CONVERTERS[l.class_name];
    if (!convert) throw new Error(`kerasToOnnx: layer ${l.name} of class ${l.class_name} is not supported`);
    ctx.rank.set(l.name, convert(l, l.class_name === "InputLayer" ? "" : ctx.src(l)[0], ctx));
  }
  tf.dispose(Object.values(weights));
  const inputLayer = layers.find((l) => l.class_name === "InputLayer")!;
  const shape = (inputLayer.config.batch_input_shape as (number | null)[]).map((d, i) =>
    i === 0 || d === null ? "N" : (i === 1 || i === 2) && opts.inputSize ? opts.inputSize : d,
  );
  g.input("input", shape as (number | string)[]);
  // Outputs back to NHWC, as the tfjs model gives them.
  for (const o of outputs) {
    const r = ctx.rank.get(o.layer);
    if (r === undefined) throw new Error(`kerasToOnnx: no layer ${o.layer}`);
    if (r === 4) {
      const k = o.pool ?? 1;
      const x =
        k === 1
          ? o.layer
          : g.op(
              "AveragePool",
              [o.layer],
              [
                { name: "kernel_shape", ints: [k, k] },
                { name: "strides", ints: [k, k] },
              ],
            )[0];
      g.output(g.op("Transpose", [x], [{ name: "perm", ints: [0, 2, 3, 1] }])[0], o.name, ["N", "H", "W", "C"]);
    } else g.output(o.layer, o.name, ["N", "K"]);
  }
  return g.toBytes(13);
}
