#!/usr/bin/env bash
# Old versus new in one run: a bench script alternately on commit REV (a temporary worktree sharing this
# checkout's node_modules and data/features) and on the working tree, ROUNDS times each, so both are read on one machine at one time.
#   bash scripts/bench-ab.sh REV ROUNDS bench/train.ts 64 onnx 4
# AB_OLD_ENV / AB_NEW_ENV (arguments of env(1), e.g. "-u GLIBC_TUNABLES") run each side as its launcher did.
set -euo pipefail
rev=$1 rounds=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
old=$(mktemp -d /tmp/attend-tell-ab.XXXXXX)
git -C "$root" worktree add --detach --force "$old" "$rev" >/dev/null
trap 'git -C "$root" worktree remove --force "$old"' EXIT
ln -s "$root/node_modules" "$old/node_modules"
# the feature caches too (untracked): benches that read cached features find the same ones on both sides
[ -d "$root/data/features" ] && ln -s "$root/data/features" "$old/data/features"
for ((r = 1; r <= rounds; r++)); do
  for tree in "$old" "$root"; do
    echo "== $([ "$tree" = "$root" ] && echo "working tree" || echo "$rev"), round $r"
    side_env=${AB_NEW_ENV:-}
    [ "$tree" = "$root" ] || side_env=${AB_OLD_ENV:-}
    # shellcheck disable=SC2086 # the env arguments are words
    (cd "$tree" && env $side_env npx tsx "$@" 2>&1 | grep -v '^\[attend-tell\]')
  done
done
