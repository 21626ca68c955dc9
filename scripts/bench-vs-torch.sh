#!/usr/bin/env bash
# Training step time and peak memory against the PyTorch reference, the two
# alternating in one run, repeated; prints a markdown table of medians with
# their spread and the ratio of medians.
#
#   scripts/bench-vs-torch.sh [REPS] [SIZE...]
#
# SIZE is |S| = |Q| of the mnist-small configuration, or `cifar`. Defaults:
# 3 repetitions of 256 512 1024 2048 4096 cifar. Environment: PY (the
# reference's Python, see shared/tools/torch-reference/README.md), REF (its
# bench.py), OURS (our bench binary: cargo build --release --example bench),
# OUT (the JSON lines written, one per run).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$HOME/.venvs/torch-ref/bin/python}
REF=${REF:-../shared/tools/torch-reference/bench.py}
OURS=${OURS:-target/release/examples/bench}
OUT=${OUT:-target/bench-vs-torch.jsonl}
REPS=${1:-3}
shift || true
SIZES=${*:-256 512 1024 2048 4096 cifar}
for tool in "$PY" "$REF" "$OURS"; do
  [ -e "$tool" ] || { echo "missing: $tool" >&2; exit 1; }
done
mkdir -p "$(dirname "$OUT")"

# One run, its JSON line tagged with the side, size and repetition.
tagged() {
  local side=$1 size=$2 rep=$3
  shift 3
  "$@" 2>/dev/null | tail -1 | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
d.update(side=sys.argv[1], size=sys.argv[2], rep=int(sys.argv[3]))
print(json.dumps(d))' "$side" "$size" "$rep" >>"$OUT"
}

for size in $SIZES; do
  if [ "$size" = cifar ]; then
    ours=(--config cifar)
    ref=(--config cifar)
  else
    ours=(--config mnist-small --observed "$size" --queries "$size")
    ref=(--config mnist-small --ns "$size" --nq "$size")
  fi
  # Fewer timed steps where one takes a minute.
  case $size in
    4096) steps=1 ;;
    2048 | cifar) steps=2 ;;
    *) steps=3 ;;
  esac
  for rep in $(seq "$REPS"); do
    echo "size $size, repetition $rep" >&2
    tagged ours "$size" "$rep" "$OURS" "${ours[@]}" --steps $steps --warmup 1 --threads 2
    tagged torch "$size" "$rep" "$PY" "$REF" "${ref[@]}" --steps $steps --warmup 1 \
      --attn-dropout 0 --threads 2
  done
done

python3 - "$OUT" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
sizes = list(dict.fromkeys(r["size"] for r in runs))
print("| size | PyTorch ms/step: median (min–max) | ours | ratio | PyTorch peak MiB | ours |")
print("| --- | --- | --- | --- | --- | --- |")
for size in sizes:
    cell, med, peak = {}, {}, {}
    for side in ["torch", "ours"]:
        ms = [r["ms_per_train_step_median"] for r in runs if r["size"] == size and r["side"] == side]
        mib = [r["peak_rss_mib"] for r in runs if r["size"] == size and r["side"] == side]
        if not ms:
            cell[side], med[side], peak[side] = "–", float("nan"), float("nan")
            continue
        med[side] = statistics.median(ms)
        cell[side] = f"{med[side]:.0f} ({min(ms):.0f}–{max(ms):.0f}, n={len(ms)})"
        peak[side] = max(mib)
    print(f"| {size} | {cell['torch']} | {cell['ours']} | {med['ours'] / med['torch']:.2f} "
          f"| {peak['torch']:.0f} | {peak['ours']:.0f} |")
EOF
