/**
 * A frozen Keras CNN (as tfjs layers artifacts) → an ONNX model, so the encoder can also run on ONNX Runtime's
 * native CPU kernels (npm `onnxruntime-node`, optional): several times faster than wasm for ResNet-50's
 * convolutions on a CPU, with the same weights, the same graph and the same outputs to float32 rounding.
 *
 * Covers the layers of Keras' ResNet50 after lib/fold.ts: InputLayer, ZeroPadding2D, Conv2D (+ReLU),
 * MaxPooling2D, Activation (relu, softmax), Add, GlobalAveragePooling2D, Dense. Keras is NHWC, ONNX convs NCHW:
 * the graph transposes once at the input and once at each output. The ONNX protobuf is written by hand
 * (onnx.proto field numbers; opset 13, IR version 8) — a few dozen lines instead of a protobuf dependency.
 */
import * as tf from "@tensorflow/tfjs";

// --- protobuf wire format -------------------------------------------------------------------------------
export class Pb {
  private parts: Uint8Array[] = [];
  private static varint(n: number): number[] {
    const out: number[] = [];
    let v = BigInt.asUintN(64, BigInt(Math.trunc(n)));
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v > 0n) byte |= 0x80;
      out.push(byte);
    } while (v > 0n);
    return out;
  }
  private key(field: number, wire: number) {
    this.parts.push(Uint8Array.from(Pb.varint((field << 3) | wire)));
  }
  int(field: number, n: number): this {
    this.key(field, 0);
    this.parts.push(Uint8Array.from(Pb.varint(n)));
    return this;
  }
  bytes(field: number, b: Uint8Array): this {
    this.key(field, 2);
    this.parts.push(Uint8Array.from(Pb.varint(b.length)), b);
    return this;
  }
  str(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }
  msg(field: number, m: Pb): this {
    return this.bytes(field, m.finish());
  }
  finish(): Uint8Array {
    return Buffer.concat(this.parts);
  }
}

const FLOAT = 1, INT64 = 7; // TensorProto.DataType
const ATTR_INT = 2, ATTR_INTS = 7, ATTR_STRING = 3;

type Attr = { name: string; i?: number; ints?: number[]; s?: string };

function attrPb(a: Attr): Pb {
  const p = new Pb().str(1, a.name);
  if (a.i !== undefined) p.int(3, a.i).int(20, ATTR_INT);
  else if (a.ints) {
    for (const v of a.ints) p.int(8, v);
    p.int(20, ATTR_INTS);
  } else p.str(4, a.s ?? "").int(20, ATTR_STRING);
  return p;
}

function tensorPb(name: string, dims: number[], data: Float32Array | BigInt64Array, type = FLOAT): Pb {
  const p = new Pb();
  for (const d of dims) p.int(1, d);
  p.int(2, type).str(8, name);
  return p.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

export function valueInfoPb(name: string, dims: (number | string)[]): Pb {
  const shape = new Pb();
  for (const d of dims) shape.msg(1, typeof d === "number" ? new Pb().int(1, d) : new Pb().str(2, d));
  return new Pb().str(1, name).msg(2, new Pb().msg(1, new Pb().int(1, FLOAT).msg(2, shape)));
}

