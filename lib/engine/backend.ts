/**
 * Picks the fastest TensorFlow.js backend this machine has, once per process, and says which and why.
 *
 * Order (first that works wins):
 *   1. `node-gpu` — @tensorflow/tfjs-node-gpu (libtensorflow + CUDA 11.2/cuDNN 8.1; optional dependency)
 *   2. `webgpu`   — @tensorflow/tfjs-backend-webgpu over Dawn's Node binding (npm `webgpu`), only with a real
 *                   hardware adapter: a CPU/fallback adapter (SwiftShader, llvmpipe) is refused
 *   3. `node`     — @tensorflow/tfjs-node (libtensorflow on the CPU), if someone installed it
 *   4. `wasm`     — @tensorflow/tfjs-backend-wasm (SIMD, one thread per process): the default on a plain CPU
 *   5. `cpu`      — pure JavaScript, ~30× slower than wasm; always present
 * `ATTEND_TELL_BACKEND=node-gpu|webgpu|node|wasm|cpu` forces one (an error if it cannot start).
 * Kernels a backend lacks for training are registered here too (see kernels.ts).
 */
import * as tf from "@tensorflow/tfjs";
import { loadOrt } from "./onnx/session";
// Imported statically (not required on demand) so that a bundle holds one copy of tfjs-core shared by all
// backends. Importing the webgpu backend registers its kernels; its factory needs navigator.gpu, which
// exists only after hardwareAdapter() installs Dawn's globals, so we register the factory there.
import "@tensorflow/tfjs-backend-wasm";
import { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { registerGradients, registerKernelFixes, registerMissingKernels } from "./kernels";

export const BACKEND_ORDER = ["node-gpu", "webgpu", "node", "wasm", "cpu"] as const;
export type BackendKind = (typeof BACKEND_ORDER)[number];

export interface AdapterInfo {
  vendor: string;
  architecture: string;
  description: string;
}

export interface BackendChoice {
  /** Our name for it (BACKEND_ORDER). */
  kind: BackendKind;
  /** tfjs's name for it (`tf.getBackend()`): node-gpu and node both register as "tensorflow". */
  tfName: string;
  /** One line: why this one, and why not the ones before it. */
  reason: string;
  adapter?: AdapterInfo;
}

let chosen: Promise<BackendChoice> | undefined;
let active: BackendChoice | undefined;

/**
 * The backend initBackend chose, or, where tfjs was set up directly (tests, notebooks), what tfjs runs on;
 * "tensorflow" (libtensorflow) counts as node-gpu only when initBackend said so.
 */
export function activeBackend(): BackendKind {
  if (active && active.tfName === tf.getBackend()) return active.kind;
  const name = tf.getBackend();
  return name === "webgpu" || name === "wasm" || name === "cpu" ? name : "node";
}

/** Whether tensors live on a GPU: there, work stays in this process on tfjs instead of CPU-side runtimes. */
export function onGpu(): boolean {
  const kind = activeBackend();
  return kind === "webgpu" || kind === "node-gpu";
}

/**
 * Initialise the backend (idempotent: later calls return the first choice). Logs one line to stderr
 * unless `quiet`; stdout stays clean for `--json` output.
 */
export function initBackend(opts: { prefer?: BackendKind; quiet?: boolean } = {}): Promise<BackendChoice> {
  if (!chosen) {
    chosen = choose(opts.prefer ?? parseOverride(process.env.ATTEND_TELL_BACKEND)).then((c) => {
      registerMissingKernels(c.tfName);
      registerKernelFixes(c.tfName);
      registerGradients();
      active = c;
      if (!opts.quiet) console.error(`[attend-tell] backend: ${describeBackend(c)}`);
      return c;
    });
    chosen.catch(() => (chosen = undefined));
  }
  return chosen;
}

export function describeBackend(c: BackendChoice): string {
  const gpu = c.adapter ? ` on ${c.adapter.vendor} ${c.adapter.architecture} ${c.adapter.description}`.trimEnd() : "";
  return `${c.kind}${gpu} (${c.reason})`;
}

export function parseOverride(value: string | undefined): BackendKind | undefined {
  if (value === undefined || value === "" || value === "auto") return undefined;
  if ((BACKEND_ORDER as readonly string[]).includes(value)) return value as BackendKind;
  throw new Error(`ATTEND_TELL_BACKEND=${value} is not a backend; use one of auto, ${BACKEND_ORDER.join(", ")}`);
}

async function choose(forced: BackendKind | undefined): Promise<BackendChoice> {
  // Silence tfjs's "install tfjs-node" banner and debug checks: we choose deliberately.
  tf.env().set("PROD", true);
  const skipped: string[] = [];
  for (const kind of forced ? [forced] : BACKEND_ORDER) {
    try {
      const c = await TRY[kind]();
      const why = forced ? "forced by ATTEND_TELL_BACKEND" : skipped.length ? skipped.join("; ") : "best available";
      return { ...c, kind, reason: why };
    } catch (e) {
      // an optional package that is not installed is the normal case, not an error to show its loader's message for
      const missing = (e as NodeJS.ErrnoException).code === "MODULE_NOT_FOUND" || /^Cannot find module/.test(String(e));
      const msg = missing ? "not installed (optional)" : (e as Error).message.split("\n")[0];
      if (forced) throw new Error(`ATTEND_TELL_BACKEND=${forced} could not start: ${msg}`, { cause: e });
      skipped.push(`no ${kind}: ${msg}`);
    }
  }
  throw new Error(`no TensorFlow.js backend could start: ${skipped.join("; ")}`);
}

type Attempt = () => Promise<Omit<BackendChoice, "kind" | "reason">>;

async function activate(name: string): Promise<void> {
  if (!(await tf.setBackend(name))) throw new Error(`tf.setBackend("${name}") failed`);
  await tf.ready();
}

/** require() that is not resolved at bundle time, so optional packages stay optional. */
function optionalRequire(name: string): unknown {
  return module.require(name);
}

const TRY: Record<BackendKind, Attempt> = {
  "node-gpu": async () => {
    optionalRequire("@tensorflow/tfjs-node-gpu");
    await activate("tensorflow");
    return { tfName: "tensorflow" };
  },
  webgpu: async () => {
    const { info, gpu } = await hardwareAdapter();
    if (!tf.findBackendFactory("webgpu")) tf.registerBackend("webgpu", () => webgpuFactory(gpu), 3);
    await activate("webgpu");
    return { tfName: "webgpu", adapter: info };
  },
  node: async () => {
    optionalRequire("@tensorflow/tfjs-node");
    await activate("tensorflow");
    return { tfName: "tensorflow" };
  },
  wasm: async () => {
    await activate("wasm");
    return { tfName: "wasm" };
  },
  cpu: async () => {
    await activate("cpu");
    return { tfName: "cpu" };
  },
};

/** Software rasterisers that Dawn may offer as adapters: usable, but slower than wasm for our work. */
const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|softpipe|microsoft basic render/i;

/**
 * Installs WebGPU globals from Dawn's Node binding and returns the high-performance adapter's identity,
 * or throws when there is none or it is a CPU fallback.
 */
interface DawnAdapter {
  isFallbackAdapter?: boolean;
  info?: { vendor?: string; architecture?: string; description?: string; isFallbackAdapter?: boolean };
  features: Set<string>;
  limits: Record<string, number>;
  requestDevice(desc: unknown): Promise<unknown>;
}
interface DawnGPU {
  requestAdapter(opts: { powerPreference: string }): Promise<DawnAdapter | null>;
}

/** What tfjs-backend-webgpu's own factory does, once Dawn's navigator.gpu exists. */
async function webgpuFactory(gpu: DawnGPU): Promise<tf.KernelBackend> {
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new Error("the GPU adapter went away");
  const l = adapter.limits;
  const limits = [
    "maxComputeWorkgroupStorageSize",
    "maxComputeWorkgroupsPerDimension",
    "maxStorageBufferBindingSize",
    "maxBufferSize",
    "maxComputeWorkgroupSizeX",
    "maxComputeInvocationsPerWorkgroup",
  ];
  const device = await adapter.requestDevice({
    requiredFeatures: adapter.features.has("timestamp-query") ? ["timestamp-query"] : [],
    requiredLimits: Object.fromEntries(limits.map((k) => [k, l[k]])),
  });
  return new WebGPUBackend(device as never, adapter.info as never);
}

async function hardwareAdapter(): Promise<{ info: AdapterInfo; gpu: DawnGPU }> {
  // Without a Vulkan loader Dawn finds nothing on Linux, after printing warnings: say so quietly instead.
  if (process.platform === "linux" && !hasVulkanLoader()) throw new Error("no Vulkan loader (libvulkan.so.1)");
  if (process.platform === "linux") {
    const refused = dawnRefusal();
    if (refused) throw new Error(refused);
  }
  const dawn = optionalRequire("webgpu") as { create(flags: string[]): DawnGPU; globals: Record<string, unknown> };
  const g = globalThis as unknown as { navigator?: { gpu?: DawnGPU } };
  const gpu = dawn.create([]);
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new Error("Dawn found no GPU adapter (no Vulkan/Metal/D3D12 driver)");
  const info = adapter.info;
  const vendor = info?.vendor ?? "";
  const architecture = info?.architecture ?? "";
  const description = info?.description ?? "";
  const fallback = adapter.isFallbackAdapter || info?.isFallbackAdapter;
  if (fallback || SOFTWARE_ADAPTER.test(`${vendor} ${architecture} ${description}`)) {
    throw new Error(`only a software adapter (${vendor} ${architecture} ${description}`.trimEnd() + ")");
  }
  // tfjs-backend-webgpu looks for navigator.gpu and the GPU* constants (GPUBufferUsage, …) on globalThis.
  Object.assign(globalThis, dawn.globals);
  if (!g.navigator) Object.defineProperty(globalThis, "navigator", { value: {}, writable: true, configurable: true });
  Object.defineProperty(g.navigator, "gpu", { value: gpu, configurable: true });
  return { info: { vendor, architecture, description }, gpu };
}

/** Asks Dawn for the high-performance adapter; prints what it got as JSON. Run in a child process (dawnRefusal). */
const DAWN_PROBE = `
const gpu = require(process.argv[1]).create([]);
gpu.requestAdapter({ powerPreference: "high-performance" }).then((a) => {
  const i = (a && a.info) || {};
  const software = !a || a.isFallbackAdapter || i.isFallbackAdapter || ${SOFTWARE_ADAPTER}.test([i.vendor, i.architecture, i.description].join(" "));
  console.log(JSON.stringify({ adapter: !!a, software, name: [i.vendor, i.architecture, i.description].join(" ").trim() }));
  process.exit(0);
});`;

/**
 * Why Dawn has no hardware adapter here, or undefined when it has one. Asked in a child process: where Vulkan
 * drivers exist but drive no GPU (Mesa's on a desktop without one), Dawn prints warnings with stack traces on the
 * process's stderr while refusing them, which would reach the terminal of every command, the tests and notebooks.
 */
function dawnRefusal(): string | undefined {
  let webgpu: string;
  try {
    webgpu = require.resolve("webgpu");
  } catch {
    return "not installed (optional)";
  }
  const r = spawnSync(process.execPath, ["-e", DAWN_PROBE, webgpu], { encoding: "utf8", timeout: 60_000 });
  const line = r.stdout?.split("\n").find((l) => l.startsWith("{"));
  if (!line) return `Dawn could not be asked for an adapter (${r.error?.message ?? `exit ${r.status ?? r.signal}`})`;
  const probe = JSON.parse(line) as { adapter: boolean; software: boolean; name: string };
  if (probe.adapter && !probe.software) return undefined;
  if (probe.adapter) return `only a software adapter (${probe.name})`;
  const drivers = vulkanDrivers();
  if (drivers.length === 0) return "Dawn found no GPU adapter: libvulkan.so.1 is installed but no Vulkan driver";
  const software = drivers.filter((d) => d.startsWith("lvp"));
  return (
    `Dawn found no GPU adapter (Vulkan drivers: ${drivers.join(", ")} — none drives a GPU here` +
    (software.length ? `; ${software.join(", ")} is Mesa's software lavapipe, which Dawn refuses)` : ")")
  );
}

/** The installed Vulkan drivers (ICD manifests), by name: "lvp", "intel", "radeon", "nvidia", … */
function vulkanDrivers(): string[] {
  const dirs = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d"];
  const names = dirs.flatMap((d) => (fs.existsSync(d) ? fs.readdirSync(d) : []));
  return [...new Set(names.filter((n) => n.endsWith(".json")).map((n) => n.replace(/(_icd)?(\.[\w-]+)?\.json$/, "")))];
}

function hasVulkanLoader(): boolean {
  const dirs = [
    ...(process.env.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean),
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
    "/lib/x86_64-linux-gnu",
  ];
  return dirs.some((d) => fs.existsSync(path.join(d, "libvulkan.so.1")));
}

/** Where a training step runs: ONNX Runtime's compiled graphs (CPU) or tfjs on the active backend. */
export type TrainEngine = "onnx" | "tfjs";

/**
 * ONNX Runtime on CPU backends when the optional onnxruntime-node is installed (~6× tfjs-wasm on 2 cores);
 * tfjs on GPU backends (WebGPU, CUDA), where tfjs itself is fast.
 */
export function defaultEngine(backend = tf.getBackend()): TrainEngine {
  return (backend === "wasm" || backend === "cpu") && loadOrt() ? "onnx" : "tfjs";
}
