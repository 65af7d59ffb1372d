/**
 * `Ops` (lib/engine/ops.ts) as ONNX graph nodes: each call adds nodes to `g` and returns the name of the value
 * it made. Code written against `Ops` builds the graph of the same math that `tfOps` computes eagerly. A few
 * helpers that only graphs need (constants, any op by type) come with it.
 */
import type { Ops } from "../ops";
import { Attr, OnnxGraph } from "./proto";

export interface GraphOps extends Ops<string> {
  readonly g: OnnxGraph;
  /** Any ONNX op with one output. */
  op1(type: string, inputs: string[], attrs?: Attr[]): string;
  /** A float scalar constant. */
  c(v: number): string;
}

export function graphOps(g: OnnxGraph): GraphOps {
  const op1 = (type: string, inputs: string[], attrs: Attr[] = []) => g.op(type, inputs, attrs)[0];
  const axes = (a: number[]) => g.constInt(a);
  // A value is transposed once however often the math asks (the weights in every step of a recurrence).
  const transposed = new Map<string, string>();
  const transpose = (a: string, perm: number[]) => {
    const key = `${a}|${perm.join(",")}`;
    let t = transposed.get(key);
    if (!t) transposed.set(key, (t = op1("Transpose", [a], [{ name: "perm", ints: perm }])));
    return t;
  };
  const unsqueeze = (a: string, axis: number) => op1("Unsqueeze", [a, axes([axis])]);
  const squeeze = (a: string, axis: number) => op1("Squeeze", [a, axes([axis])]);
  const ops: GraphOps = {
    g,
    op1,
    c: (v) => g.constFloat([v], []),
    matMul: (a, b) => op1("MatMul", [a, b]),
    add: (a, b) => op1("Add", [a, b]),
    sub: (a, b) => op1("Sub", [a, b]),
    mul: (a, b) => op1("Mul", [a, b]),
    div: (a, b) => op1("Div", [a, b]),
    maximum: (a, b) => op1("Max", [a, b]),
    tanh: (a) => op1("Tanh", [a]),
    sigmoid: (a) => op1("Sigmoid", [a]),
    exp: (a) => op1("Exp", [a]),
    log: (a) => op1("Log", [a]),
    sqrt: (a) => op1("Sqrt", [a]),
    leakyRelu: (a, slope) => op1("LeakyRelu", [a], [{ name: "alpha", f: slope }]),
    // ONNX Runtime's Softmax moves any other axis last and back (two transposes); reductions along it are cheaper
    softmax: (a, axis = -1) => {
      if (axis === -1) return op1("Softmax", [a], [{ name: "axis", i: -1 }]);
      const keep = [
        { name: "axes", ints: [axis] },
        { name: "keepdims", i: 1 },
      ];
      const e = op1("Exp", [op1("Sub", [a, op1("ReduceMax", [a], keep)])]);
      return op1("Div", [e, op1("ReduceSum", [e, g.constInt([axis])], [{ name: "keepdims", i: 1 }])]);
    },
    reshape: (a, shape) => op1("Reshape", [a, g.constInt(shape)]),
    transpose,
    concat: (xs, axis) => (xs.length === 1 ? xs[0] : op1("Concat", xs, [{ name: "axis", i: axis }])),
    split: (a, sizes, axis) =>
      sizes.length === 1 ? [a] : g.op("Split", [a, g.constInt(sizes)], [{ name: "axis", i: axis }], sizes.length),
    stack: (xs, axis) =>
      op1(
        "Concat",
        xs.map((x) => unsqueeze(x, axis)),
        [{ name: "axis", i: axis }],
      ),
    sum: (a, ax, keepDims = false) => op1("ReduceSum", [a, axes(ax)], [{ name: "keepdims", i: keepDims ? 1 : 0 }]),
    mean: (a, ax, keepDims = false) =>
      op1(
        "ReduceMean",
        [a],
        [
          { name: "axes", ints: ax },
          { name: "keepdims", i: keepDims ? 1 : 0 },
        ],
      ),
    gather: (x, indices) => op1("Gather", [x, indices], [{ name: "axis", i: 0 }]),
    scalar: (v) => g.constFloat([v], []),
    zeros: (shape) => op1("ConstantOfShape", [g.constInt(shape)]),
    weightedSum: (w, v) => squeeze(op1("MatMul", [unsqueeze(w, 1), v]), 1),
    weightedSums: (v) => (w) => ops.weightedSum(w, v),
    dots: (v, x) => squeeze(op1("MatMul", [unsqueeze(x, 1), transpose(v, [0, 2, 1])]), 1),
    scope: (fn) => fn(),
    release: () => {},
  };
  return ops;
}
