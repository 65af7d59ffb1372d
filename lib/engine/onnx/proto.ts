/**
 * ONNX models written by hand: the protobuf wire format (onnx.proto field numbers) and a small graph builder —
 * a few dozen lines instead of a protobuf dependency. Used for the encoder (lib/onnx.ts) and the decoder's
 * training step (lib/onnx-train.ts), both run by ONNX Runtime's native CPU kernels.
 */
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
  float(field: number, v: number): this {
    this.key(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.parts.push(b);
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

export const FLOAT = 1,
  INT64 = 7; // TensorProto.DataType
const ATTR_FLOAT = 1,
  ATTR_INT = 2,
  ATTR_INTS = 7,
  ATTR_STRING = 3;

export type Attr = { name: string; i?: number; f?: number; ints?: number[]; s?: string };

export function attrPb(a: Attr): Pb {
  const p = new Pb().str(1, a.name);
  if (a.i !== undefined) p.int(3, a.i).int(20, ATTR_INT);
  else if (a.f !== undefined) p.float(2, a.f).int(20, ATTR_FLOAT);
  else if (a.ints) {
    for (const v of a.ints) p.int(8, v);
    p.int(20, ATTR_INTS);
  } else p.str(4, a.s ?? "").int(20, ATTR_STRING);
  return p;
}

export function tensorPb(name: string, dims: number[], data: Float32Array | BigInt64Array, type = FLOAT): Pb {
  const p = new Pb();
  for (const d of dims) p.int(1, d);
  p.int(2, type).str(8, name);
  return p.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

export function valueInfoPb(name: string, dims: (number | string)[], type = FLOAT): Pb {
  const shape = new Pb();
  for (const d of dims) shape.msg(1, typeof d === "number" ? new Pb().int(1, d) : new Pb().str(2, d));
  return new Pb().str(1, name).msg(2, new Pb().msg(1, new Pb().int(1, type).msg(2, shape)));
}

/** Builds an ONNX graph node by node; values are named automatically unless given a name. */
export class OnnxGraph {
  private nodes: Pb[] = [];
  private inits: Pb[] = [];
  private inputs: Pb[] = [];
  private outputs: Pb[] = [];
  private count = 0;
  constructor(readonly name: string) {}

  input(name: string, dims: (number | string)[], type = FLOAT): string {
    this.inputs.push(valueInfoPb(name, dims, type));
    return name;
  }
  /** Exposes `value` as the graph output `name`. */
  output(value: string, name: string, dims: (number | string)[], type = FLOAT): void {
    this.op("Identity", [value], [], [name]);
    this.outputs.push(valueInfoPb(name, dims, type));
  }
  constFloat(values: ArrayLike<number>, dims: number[]): string {
    const name = `const${this.count++}`;
    this.inits.push(tensorPb(name, dims, Float32Array.from(values)));
    return name;
  }
  constInt(values: number[], dims = [values.length]): string {
    const name = `const${this.count++}`;
    this.inits.push(tensorPb(name, dims, BigInt64Array.from(values.map(BigInt)), INT64));
    return name;
  }
  /** Adds a node; returns its output names (fresh ones unless `outputs` names them, or a count). */
  op(type: string, inputs: string[], attrs: Attr[] = [], outputs: string[] | number = 1): string[] {
    const outs =
      typeof outputs === "number" ? Array.from({ length: outputs }, (_, k) => `${type}${this.count++}_${k}`) : outputs;
    const p = new Pb();
    for (const i of inputs) p.str(1, i);
    for (const o of outs) p.str(2, o);
    p.str(3, `n${this.count++}`).str(4, type);
    for (const a of attrs) p.msg(5, attrPb(a));
    this.nodes.push(p);
    return outs;
  }
  /**
   * Σ of the rows of `updates [P, X]` into `[n, X]` by `indices [P]` (int64), as a one-hot matMul: ONNX
   * Runtime's ScatterND with reduction "add" loses updates to repeated indices when it runs on several threads
   * (measured), and repeated indices are the point here (word ids, images in several pairs).
   */
  scatterAddRows(indices: string, updates: string, n: number): string {
    const onehot = this.op(
      "OneHot",
      [indices, this.constInt([n], []), this.constFloat([0, 1], [2])],
      [{ name: "axis", i: -1 }],
    )[0]; // [P, n]
    return this.op("Gemm", [onehot, updates], [{ name: "transA", i: 1 }])[0];
  }
  toBytes(opset = 17): Uint8Array {
    const g = new Pb();
    for (const n of this.nodes) g.msg(1, n);
    g.str(2, this.name);
    for (const i of this.inits) g.msg(5, i);
    for (const i of this.inputs) g.msg(11, i);
    for (const o of this.outputs) g.msg(12, o);
    return new Pb().int(1, 8).str(2, "attend-tell").msg(7, g).msg(8, new Pb().str(1, "").int(2, opset)).finish();
  }
}
