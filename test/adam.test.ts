import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { TypedAdam, clipAndApply, clipByGlobalNorm, globalNorm } from "../lib/engine";
import { Rng } from "../lib/util";
import { setupBackend } from "./helpers";

/** Adam over typed arrays against tfjs's tf.train.adam after clipAndApply: the same weights step by step. */
describe("TypedAdam (Adam with global-norm clipping over Float32Arrays)", () => {
  before(setupBackend);
  const shapes: Record<string, number[]> = { "a/W": [7, 5], "a/b": [5], "c/E": [11, 3] };
  const rng = new Rng(3);
  const values = (n: number, s: number) => Float32Array.from({ length: n }, () => s * (rng.next() - 0.5));
  const start = Object.fromEntries(Object.entries(shapes).map(([k, s]) => [k, values(s[0] * (s[1] ?? 1), 2)]));
  // gradients large enough that clipping at 1.5 acts on some steps and not on others
  const steps = Array.from({ length: 6 }, (_, t) =>
    Object.fromEntries(Object.entries(start).map(([k, v]) => [k, values(v.length, t % 2 ? 0.2 : 3)])),
  );
  let unique = 0;
  const lrs = [1e-2, 1e-2, 5e-3, 5e-3, 2e-3, 2e-3];

  function tfjsRun(from = 0, to = steps.length, opt?: tf.Optimizer, vars?: Record<string, tf.Variable>) {
    const v =
      vars ??
      Object.fromEntries(
        Object.entries(start).map(([k, x]) => [k, tf.variable(tf.tensor(x, shapes[k]), true, `adam-test-${unique++}`)]),
      );
    const o = opt ?? tf.train.adam(lrs[0]);
    for (let t = from; t < to; t++) {
      (o as unknown as { learningRate: number }).learningRate = lrs[t];
      const grads = Object.fromEntries(Object.entries(steps[t]).map(([k, g]) => [v[k].name, tf.tensor(g, shapes[k])]));
      clipAndApply(o, grads, 1.5);
      tf.dispose(Object.values(grads));
    }
    return { v, o };
  }
  function typedRun(adam: TypedAdam, from: number, to: number) {
    for (let t = from; t < to; t++) {
      adam.learningRate = lrs[t];
      adam.update(steps[t], 1.5);
    }
  }
  const copy = () => Object.fromEntries(Object.entries(start).map(([k, x]) => [k, Float32Array.from(x)]));
  function assertClose(typed: Record<string, Float32Array>, ref: Record<string, tf.Variable>, what: string) {
    for (const k of Object.keys(shapes)) {
      const r = ref[k].dataSync();
      const worst = Math.max(...Array.from(r, (x, i) => Math.abs(x - typed[k][i])));
      assert.ok(worst < 2e-6, `${what}: ${k} differs by ${worst}`);
    }
  }

  it("gives tfjs's weights after each of 6 steps, clipped or not, as the learning rate changes", () => {
    const ref = tfjsRun();
    const params = copy();
    typedRun(new TypedAdam(params, lrs[0]), 0, steps.length);
    assertClose(params, ref.v, "after 6 steps");
    assert.notDeepEqual(params["a/W"], start["a/W"], "the weights moved");
  });

  it("resumes from its own state and from tfjs Adam's (a checkpoint written by either) as if never stopped", async () => {
    const ref = tfjsRun();
    // its own state, through getWeights/setWeights
    const params = copy();
    const first = new TypedAdam(params, lrs[0], { shapes });
    typedRun(first, 0, 3);
    const resumed = new TypedAdam(params, lrs[3]);
    await resumed.setWeights(await first.getWeights());
    assert.equal(resumed.iterations, 3);
    typedRun(resumed, 3, steps.length);
    assertClose(params, ref.v, "resumed from TypedAdam");
    // tfjs Adam's state after 3 steps, continued by TypedAdam
    const half = tfjsRun(0, 3);
    const fromTfjs = Object.fromEntries(Object.entries(half.v).map(([k, x]) => [k, Float32Array.from(x.dataSync())]));
    const cont = new TypedAdam(fromTfjs, lrs[3]);
    await cont.setWeights(await half.o.getWeights());
    typedRun(cont, 3, steps.length);
    assertClose(fromTfjs, ref.v, "resumed from tfjs's Adam");
    // and the other way: TypedAdam's state continued by tfjs's Adam
    const back = tf.train.adam(lrs[3]);
    await back.setWeights(await first.getWeights());
    const vars = Object.fromEntries(
      Object.entries(shapes).map(([k, s]) => [
        k,
        tf.variable(tf.tensor(copyAfter3()[k], s), true, `adam-test-${unique++}`),
      ]),
    );
    const cont2 = tfjsRun(3, steps.length, back, vars);
    const refAll = copy();
    typedRun(new TypedAdam(refAll, lrs[0]), 0, steps.length);
    assertClose(refAll, cont2.v, "TypedAdam's state continued by tfjs");
  });

  function copyAfter3() {
    const p = copy();
    typedRun(new TypedAdam(p, lrs[0]), 0, 3);
    return p;
  }

  it("clips by the global norm over every gradient: ‖g‖ by hand, scaled to the limit only when above it", async () => {
    const g = { a: tf.tensor([3, 0]), b: tf.tensor([[0, 4]]) }; // ‖g‖ = 5
    assert.ok(Math.abs((await globalNorm(g).data())[0] - 5) < 1e-6);
    const clipped = clipByGlobalNorm(g, 2);
    assert.ok(Math.abs((await globalNorm(clipped).data())[0] - 2) < 1e-5);
    assert.deepEqual(
      Array.from(await clipped.b.data()).map((x) => +x.toFixed(5)),
      [0, 1.6],
    );
    const kept = clipByGlobalNorm(g, 10);
    assert.deepEqual(
      Array.from(await kept.a.data()).map((x) => +x.toFixed(5)),
      [3, 0],
    );
    tf.dispose([g.a, g.b, clipped.a, clipped.b, kept.a, kept.b]);
  });

  it("names a gradient of the wrong size and a state of the wrong parameters", async () => {
    const adam = new TypedAdam(copy(), 1e-3);
    assert.throws(
      () => adam.update({ ...steps[0], "a/b": new Float32Array(2) }, 1),
      /gradient of a\/b has 2 values, the parameter 5/,
    );
    const other = new TypedAdam({ x: new Float32Array(3) }, 1e-3);
    await assert.rejects(adam.setWeights(await other.getWeights()), /2 moments for 3 parameters/);
  });
});
