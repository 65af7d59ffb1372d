/**
 * ONNX Runtime, the engine under every compiled graph on CPUs (the encoder, the captioning step, SCAN): one loader
 * of the optional `onnxruntime-node` and one way to open a session, so that every graph runs with the same options.
 */
type Ort = typeof import("onnxruntime-node");
export type OrtSession = import("onnxruntime-node").InferenceSession;
let ortModule: Ort | null | undefined;

/** onnxruntime-node if installed (it is an optional dependency), else null. */
export function loadOrt(): Ort | null {
  if (ortModule === undefined) {
    try {
      ortModule = require("onnxruntime-node") as Ort;
    } catch {
      ortModule = null;
    }
  }
  return ortModule;
}

/** Whether onnxruntime-node is installed and loads on this platform. */
export function onnxAvailable(): boolean {
  return loadOrt() !== null;
}

/**
 * The glibc setting under which ONNX Runtime's fresh tensors come in transparent huge pages (bin/attend-tell sets
 * it, as GLIBC_TUNABLES is read only when a process starts): with 4-KiB pages, faulting in the intermediate tensors
 * that every run allocates cost ~40 % of a captioning training step and ~75 % of SCAN's warm-up backward.
 */
export const HUGE_PAGES = "glibc.malloc.hugetlb=1";

/** `env` with HUGE_PAGES added to its GLIBC_TUNABLES (for child processes). */
export function withHugePages(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const t = env.GLIBC_TUNABLES;
  return { ...env, GLIBC_TUNABLES: t ? (t.includes(HUGE_PAGES) ? t : `${t}:${HUGE_PAGES}`) : HUGE_PAGES };
}

/**
 * A session for a graph on `threads` threads. The memory arena is off unless asked for: with it on, the few dozen
 * per-shape graphs that a Flickr8k training run caches held 12 GB; the encoder, one graph run many times, keeps it.
 */
export function onnxSession(
  graph: Uint8Array,
  threads: number,
  opts: { memArena?: boolean } = {},
): Promise<OrtSession> {
  const ort = loadOrt();
  if (!ort)
    throw new Error(
      "this needs the optional package onnxruntime-node, which is not installed here (npm install onnxruntime-node)",
    );
  return ort.InferenceSession.create(graph, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
    enableCpuMemArena: opts.memArena ?? false,
  });
}

/**
 * The sessions of a family of graphs compiled once per shape (training steps: one per batch size and length),
 * built on first use and released together.
 */
export class SessionCache {
  private readonly sessions = new Map<string, Promise<OrtSession>>();
  constructor(private readonly threads: number) {}

  /** A cache for `owner`'s graphs, or a clear error when the optional onnxruntime-node is missing. */
  static require(owner: string, threads: number): SessionCache {
    if (!loadOrt())
      throw new Error(`${owner} needs the optional package onnxruntime-node (npm install onnxruntime-node)`);
    return new SessionCache(threads);
  }

  get(key: string, build: () => Uint8Array): Promise<OrtSession> {
    let s = this.sessions.get(key);
    if (!s) {
      s = onnxSession(build(), this.threads);
      this.sessions.set(key, s);
    }
    return s;
  }

  async release(): Promise<void> {
    for (const s of this.sessions.values()) await (await s).release();
    this.sessions.clear();
  }
}
