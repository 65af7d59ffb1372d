import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { BACKEND_ORDER, describeBackend, initBackend, parseOverride } from "../lib/engine";

describe("backend selection", () => {
  it("parses ATTEND_TELL_BACKEND and rejects unknown names with the valid ones", () => {
    assert.equal(parseOverride(undefined), undefined);
    assert.equal(parseOverride("auto"), undefined);
    assert.equal(parseOverride("wasm"), "wasm");
    assert.throws(
      () => parseOverride("cuda"),
      /ATTEND_TELL_BACKEND=cuda is not a backend; use one of auto, node-gpu, webgpu, node, wasm, cpu/,
    );
  });

  it("tries GPUs first and pure JS last", () => {
    assert.deepEqual([...BACKEND_ORDER], ["node-gpu", "webgpu", "node", "wasm", "cpu"]);
  });

  it("picks an accelerated backend when one is present (wasm on a CPU-only machine) and says why", async function () {
    if (process.env.ATTEND_TELL_BACKEND) this.skip();
    const c = await initBackend({ quiet: true });
    assert.notEqual(
      c.kind,
      "cpu",
      "wasm ships with the project, so the pure-JS cpu backend must never be the automatic choice",
    );
    assert.equal(tf.getBackend(), c.tfName);
    if (c.kind === "wasm") assert.match(c.reason, /no webgpu: .+/);
    // an optional package that is absent reads as such, not as a loader's error
    assert.doesNotMatch(c.reason, /Cannot find module/);
    assert.ok(describeBackend(c).startsWith(c.kind));
    assert.equal(await initBackend(), c, "initialised once per process");
  });
});
