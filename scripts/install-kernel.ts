/**
 * `npm run kernel`: compiles lib/ to dist/lib (what the notebooks import) and registers the tslab kernel
 * for this project only, under .jupyter/ (never globally). Prints the JUPYTER_PATH to use.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { HUGE_PAGES } from "../lib/engine/onnx/session";

export const ROOT = path.resolve(__dirname, "..");
export const JUPYTER_PATH = path.join(ROOT, ".jupyter", "share", "jupyter");

/** Python that has Jupyter: Debian's /usr/bin/python3 when present (a pyenv python3 may lack it). */
export function jupyterPython(): string {
  return process.env.JUPYTER_PYTHON ?? (fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
}

export function buildLib(): void {
  execFileSync(
    process.execPath,
    [path.join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", path.join(ROOT, "tsconfig.build.json")],
    {
      stdio: "inherit",
    },
  );
}

export function installKernel(): void {
  const tslab = path.join(ROOT, "node_modules", ".bin", "tslab");
  if (!fs.existsSync(tslab)) throw new Error(`${tslab} is missing: run npm ci first`);
  execFileSync(
    tslab,
    ["install", `--python=${jupyterPython()}`, `--binary=${tslab}`, `--prefix=${path.join(ROOT, ".jupyter")}`],
    {
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  const spec = path.join(JUPYTER_PATH, "kernels", "tslab", "kernel.json");
  if (!fs.existsSync(spec)) throw new Error(`tslab install did not write ${spec}`);
  // the kernel's ONNX Runtime graphs get huge pages as bin/attend-tell's do
  const kernel = JSON.parse(fs.readFileSync(spec, "utf8"));
  kernel.env = { ...kernel.env, GLIBC_TUNABLES: HUGE_PAGES };
  fs.writeFileSync(spec, JSON.stringify(kernel, null, 2));
}

if (require.main === module) {
  buildLib();
  installKernel();
  console.log(`compiled lib/ to dist/lib and registered the tslab kernel in ${JUPYTER_PATH}`);
  console.log(`open the notebooks with:  JUPYTER_PATH=${JUPYTER_PATH} jupyter notebook notebooks/   (or jupyter lab)`);
}
