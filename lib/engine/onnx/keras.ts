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
}

/** ONNX bytes for `artifacts`, with the given layers' outputs (NHWC, as Keras gives them) as graph outputs. */
export async function kerasToOnnx(artifacts: tf.io.ModelArtifacts, outputs: OnnxOutput[]): Promise<Uint8Array> {
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
  const rank = new Map<string, number>(); // tensor name → rank, to know which outputs are 4-D maps
  const node = (op: string, inputs: string[], output: string, attrs: Attr[] = []) =>
    void g.op(op, inputs, attrs, [output]);
  const init = (name: string, t: tf.Tensor, perm?: number[]) => {
    const v = perm ? tf.tidy(() => t.transpose(perm)) : t;
    g.initializer(name, v.shape, v.dataSync() as Float32Array);
    if (perm) v.dispose();
  };
  const src = (l: KerasLayer) => l.inbound_nodes[0].map((e) => e[0]);
  let inputName = "";
  for (const l of layers) {
    const c = l.config;
    const [x] = l.class_name === "InputLayer" ? [""] : src(l);
    switch (l.class_name) {
      case "InputLayer":
        inputName = l.name;
        node("Transpose", ["input"], l.name, [{ name: "perm", ints: [0, 3, 1, 2] }]);
        rank.set(l.name, 4);
        break;
      case "ZeroPadding2D": {
        const [[t, b], [le, r]] = c.padding as number[][];
        g.initializer(`${l.name}/pads`, [8], new BigInt64Array([0, 0, t, le, 0, 0, b, r].map(BigInt)));
        node("Pad", [x, `${l.name}/pads`], l.name);
        rank.set(l.name, 4);
        break;
      }
      case "Conv2D": {
        if ((c.dilation_rate as number[]).some((d) => d !== 1) || c.data_format === "channels_first")
          throw new Error(`kerasToOnnx: ${l.name}: unsupported Conv2D config`);
        init(`${l.name}/W`, weights[`${l.name}/kernel`], [3, 2, 0, 1]); // HWIO → OIHW
        const ins = [x, `${l.name}/W`];
        if (c.use_bias) {
          init(`${l.name}/B`, weights[`${l.name}/bias`]);
          ins.push(`${l.name}/B`);
        }
        const attrs: Attr[] = [
          { name: "kernel_shape", ints: c.kernel_size as number[] },
          { name: "strides", ints: c.strides as number[] },
        ];
        attrs.push(c.padding === "same" ? { name: "auto_pad", s: "SAME_UPPER" } : { name: "pads", ints: [0, 0, 0, 0] });
        const act = c.activation as string;
        if (act !== "linear" && act !== "relu") throw new Error(`kerasToOnnx: ${l.name}: activation ${act}`);
        node("Conv", ins, act === "relu" ? `${l.name}/conv` : l.name, attrs);
        if (act === "relu") node("Relu", [`${l.name}/conv`], l.name);
        rank.set(l.name, 4);
        break;
      }
      case "MaxPooling2D":
        if (c.padding !== "valid") throw new Error(`kerasToOnnx: ${l.name}: padding ${c.padding}`);
        node("MaxPool", [x], l.name, [
          { name: "kernel_shape", ints: c.pool_size as number[] },
          { name: "strides", ints: c.strides as number[] },
        ]);
        rank.set(l.name, 4);
        break;
      case "Activation":
        if (c.activation === "relu") node("Relu", [x], l.name);
        else if (c.activation === "softmax") node("Softmax", [x], l.name, [{ name: "axis", i: -1 }]);
        else throw new Error(`kerasToOnnx: ${l.name}: activation ${c.activation}`);
        rank.set(l.name, rank.get(x)!);
        break;
      case "Add": {
        const ins = src(l);
        let acc = ins[0];
        ins.slice(1).forEach((other, k) => {
          const out = k === ins.length - 2 ? l.name : `${l.name}/${k}`;
          node("Add", [acc, other], out);
          acc = out;
        });
        rank.set(l.name, 4);
        break;
      }
      case "GlobalAveragePooling2D":
        node("GlobalAveragePool", [x], `${l.name}/pool`);
        node("Flatten", [`${l.name}/pool`], l.name, [{ name: "axis", i: 1 }]);
        rank.set(l.name, 2);
        break;
      case "Dense": {
        init(`${l.name}/W`, weights[`${l.name}/kernel`]);
        const ins = [x, `${l.name}/W`];
        if (c.use_bias) {
          init(`${l.name}/B`, weights[`${l.name}/bias`]);
          ins.push(`${l.name}/B`);
        }
        const act = c.activation as string;
        node("Gemm", ins, act === "linear" ? l.name : `${l.name}/gemm`);
        if (act === "softmax") node("Softmax", [`${l.name}/gemm`], l.name, [{ name: "axis", i: -1 }]);
        else if (act === "relu") node("Relu", [`${l.name}/gemm`], l.name);
        else if (act !== "linear") throw new Error(`kerasToOnnx: ${l.name}: activation ${act}`);
        rank.set(l.name, 2);
        break;
      }
      default:
        throw new Error(`kerasToOnnx: layer ${l.name} of class ${l.class_name} is not supported`);
    }
  }
  tf.dispose(Object.values(weights));
  const inputLayer = layers.find((l) => l.name === inputName)!;
  const shape = (inputLayer.config.batch_input_shape as (number | null)[]).map((d, i) =>
    i === 0 || d === null ? "N" : d,
  );
  g.input("input", shape as (number | string)[]);
  // Outputs back to NHWC, as the tfjs model gives them.
  for (const o of outputs) {
    const r = rank.get(o.layer);
    if (r === undefined) throw new Error(`kerasToOnnx: no layer ${o.layer}`);
    if (r === 4)
      g.output(g.op("Transpose", [o.layer], [{ name: "perm", ints: [0, 2, 3, 1] }])[0], o.name, ["N", "H", "W", "C"]);
    else g.output(o.layer, o.name, ["N", "K"]);
  }
  return g.toBytes(13);
}
