import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
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

  it("keeps Dawn's warnings out of the terminal where Vulkan drives no GPU, and says why there is no WebGPU", function () {
    // Mesa's Vulkan drivers without a GPU, as on many Linux desktops (CI installs them: .ci/run)
    if (!fs.existsSync("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json") || process.platform !== "linux") {
      if (process.env.CI) assert.fail("CI installs libvulkan1 and mesa-vulkan-drivers to test this");
      this.skip();
    }
    const r = spawnSync(process.execPath, ["--import", "tsx", "-e", `require("./lib/engine").initBackend()`], {
      encoding: "utf8",
      env: { ...process.env, ATTEND_TELL_BACKEND: "" },
    });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stderr.split("\n").filter((l) => l.trim());
    assert.equal(lines.length, 1, `one line, the backend's:\n${r.stderr}`);
    assert.match(lines[0], /^\[attend-tell\] backend: wasm \(/);
    assert.match(
      lines[0],
      /no webgpu: Dawn found no GPU adapter \(Vulkan drivers: [^)]*lvp[^)]*lvp is Mesa's software lavapipe, which Dawn refuses\)/,
    );
    assert.doesNotMatch(r.stderr, /XDG_RUNTIME_DIR|PhysicalDeviceVk|no Vulkan\/Metal\/D3D12 driver/);
  });
});
