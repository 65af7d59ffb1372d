/**
 * ONNX models written by hand: the protobuf wire format (onnx.proto field numbers) and a small graph builder —
 * a few dozen lines instead of a protobuf dependency. Every graph is built with OnnxGraph: the encoder
 * (keras.ts), the decoder's training step (captioning/onnx-train.ts) and SCAN's (matching/scan-onnx.ts).
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

// Field numbers of onnx.proto's messages, by message.
const ModelProto = { irVersion: 1, producerName: 2, graph: 7, opsetImport: 8 } as const;
const OperatorSetId = { domain: 1, version: 2 } as const;
const GraphProto = { node: 1, name: 2, initializer: 5, input: 11, output: 12 } as const;
const NodeProto = { input: 1, output: 2, name: 3, opType: 4, attribute: 5 } as const;
const AttributeProto = { name: 1, f: 2, i: 3, s: 4, ints: 8, type: 20 } as const;
const TensorProto = { dims: 1, dataType: 2, name: 8, rawData: 9 } as const;
const ValueInfoProto = { name: 1, type: 2 } as const;
const TypeProto = { tensorType: 1 } as const;
const TensorTypeProto = { elemType: 1, shape: 2 } as const;
const TensorShapeProto = { dim: 1 } as const;
const Dimension = { dimValue: 1, dimParam: 2 } as const;
/** IR version 8 (ONNX 1.10+): what ONNX Runtime 1.22 reads with opsets 13 and 17. */
const IR_VERSION = 8;

export type Attr = { name: string; i?: number; f?: number; ints?: number[]; s?: string };

export function attrPb(a: Attr): Pb {
  const A = AttributeProto;
  const p = new Pb().str(A.name, a.name);
  if (a.i !== undefined) p.int(A.i, a.i).int(A.type, ATTR_INT);
  else if (a.f !== undefined) p.float(A.f, a.f).int(A.type, ATTR_FLOAT);
  else if (a.ints) {
    for (const v of a.ints) p.int(A.ints, v);
    p.int(A.type, ATTR_INTS);
  } else p.str(A.s, a.s ?? "").int(A.type, ATTR_STRING);
  return p;
}

export function tensorPb(name: string, dims: number[], data: Float32Array | BigInt64Array, type = FLOAT): Pb {
  const p = new Pb();
  for (const d of dims) p.int(TensorProto.dims, d);
  p.int(TensorProto.dataType, type).str(TensorProto.name, name);
  return p.bytes(TensorProto.rawData, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

export function valueInfoPb(name: string, dims: (number | string)[], type = FLOAT): Pb {
  const shape = new Pb();
  for (const d of dims) {
    shape.msg(
      TensorShapeProto.dim,
      typeof d === "number" ? new Pb().int(Dimension.dimValue, d) : new Pb().str(Dimension.dimParam, d),
    );
  }
  const tensorType = new Pb().int(TensorTypeProto.elemType, type).msg(TensorTypeProto.shape, shape);
  return new Pb()
    .str(ValueInfoProto.name, name)
    .msg(ValueInfoProto.type, new Pb().msg(TypeProto.tensorType, tensorType));
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
  /** A named constant (weights): `values` with shape `dims`. */
  initializer(name: string, dims: number[], values: Float32Array | BigInt64Array): string {
    this.inits.push(tensorPb(name, dims, values, values instanceof BigInt64Array ? INT64 : FLOAT));
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
    for (const i of inputs) p.str(NodeProto.input, i);
    for (const o of outs) p.str(NodeProto.output, o);
    p.str(NodeProto.name, `n${this.count++}`).str(NodeProto.opType, type);
    for (const a of attrs) p.msg(NodeProto.attribute, attrPb(a));
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
    for (const n of this.nodes) g.msg(GraphProto.node, n);
    g.str(GraphProto.name, this.name);
    for (const i of this.inits) g.msg(GraphProto.initializer, i);
    for (const i of this.inputs) g.msg(GraphProto.input, i);
    for (const o of this.outputs) g.msg(GraphProto.output, o);
    const opsetId = new Pb().str(OperatorSetId.domain, "").int(OperatorSetId.version, opset);
    return new Pb()
      .int(ModelProto.irVersion, IR_VERSION)
      .str(ModelProto.producerName, "attend-tell")
      .msg(ModelProto.graph, g)
      .msg(ModelProto.opsetImport, opsetId)
      .finish();
  }
}
