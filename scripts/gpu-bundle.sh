#!/usr/bin/env bash
# Packs one or more of the project's scripts into a self-contained folder that runs on a Linux x64 GPU host
# with neither Node.js nor network access: the Node binary, the scripts bundled with esbuild, the tfjs wasm
# binaries, Dawn's WebGPU binding (npm package `webgpu`, linux-x64 only) and the Vulkan loader from Debian.
# About 35 MB. Run from the project root, after `npm ci`:
#   bash scripts/gpu-bundle.sh bench/train.ts [bench/encoder.ts ...]      -> .gpu-bundle/ (keep it git-ignored)
# On the GPU host, from the project root:
#   bash .gpu-bundle/run.sh train [args...]      (the entry's file name without extension)
# Data the scripts read (features, images) is not packed: pass paths that exist on the host.
set -euo pipefail
[ $# -ge 1 ] || { sed -n 2,10p "$0"; exit 2; }
OUT=${GPU_BUNDLE_DIR:-.gpu-bundle}
[ -d node_modules ] || { echo "run npm ci first" >&2; exit 1; }
# replaces only a bundle it made (its mark file), never another folder named by GPU_BUNDLE_DIR
if [ -e "$OUT" ] && [ ! -f "$OUT/.attend-tell-gpu-bundle" ]; then
  echo "$OUT exists and is not a GPU bundle: nothing was replaced; set GPU_BUNDLE_DIR to a new folder" >&2; exit 1
fi
rm -rf "$OUT"; mkdir -p "$OUT/bin" "$OUT/debs" "$OUT/node_modules"; touch "$OUT/.attend-tell-gpu-bundle"
ESBUILD="npx --yes esbuild@0.25"
for entry in "$@"; do
  name=$(basename "${entry%.*}")
  $ESBUILD "$entry" --bundle --platform=node --target=node20 --format=cjs --outfile="$OUT/bin/$name.js" \
    --external:webgpu --external:'*.node' --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu --log-level=warning
done
# tfjs-backend-wasm looks for its .wasm files next to the running script once bundled
cp node_modules/@tensorflow/tfjs-backend-wasm/dist/*.wasm "$OUT/bin/"
if [ -d node_modules/webgpu ]; then
  mkdir -p "$OUT/node_modules/webgpu/dist"
  (cd node_modules/webgpu && cp -r package.json index.js $(ls -d node_modules types.d.ts 2>/dev/null) "$OLDPWD/$OUT/node_modules/webgpu/")
  cp -r node_modules/webgpu/dist/linux-x64 "$OUT/node_modules/webgpu/dist/"
  xz -T0 -6 "$OUT/node_modules/webgpu/dist/linux-x64/dawn.node"
else
  echo "note: node_modules/webgpu is absent, so the bundle can only use wasm/cpu" >&2
fi
xz -T0 -6 -c "$(command -v node)" > "$OUT/node.xz"
lists=$(mktemp -d); mkdir -p "$lists/partial"
o="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=$lists"
apt-get $o update >/dev/null 2>&1 && (cd "$OUT/debs" && apt-get $o download libvulkan1 >/dev/null 2>&1) || echo "warning: could not download libvulkan1" >&2
cat > "$OUT/run.sh" <<'RUN'
#!/usr/bin/env bash
# Unpacks once, then runs bin/<name>.js with the packed Node. Prints the GPU and the backend tfjs chose.
set -euo pipefail
B=$(cd "$(dirname "$0")" && pwd); name=$1; shift
for f in "$B"/debs/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done; ldconfig 2>/dev/null || true
[ -x /tmp/gpu-bundle-node ] || { xz -d -c "$B/node.xz" > /tmp/gpu-bundle-node; chmod +x /tmp/gpu-bundle-node; }
d="$B/node_modules/webgpu/dist/linux-x64"; [ -f "$d/dawn.node.xz" ] && [ ! -f "$d/dawn.node" ] && xz -d -k "$d/dawn.node.xz"
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json; do
  [ -f "$icd" ] && { export VK_DRIVER_FILES=${VK_DRIVER_FILES:-$icd}; break; }; done
command -v nvidia-smi >/dev/null && nvidia-smi -L || true
export NODE_PATH="$B/node_modules"
exec /tmp/gpu-bundle-node "$B/bin/$name.js" "$@"
RUN
chmod +x "$OUT/run.sh"
du -sh "$OUT"
