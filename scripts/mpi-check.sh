#!/usr/bin/env bash
# The issue's acceptance check for data-parallel training, as a user runs it:
# build the polynomial program with the `mpi` feature, train the same run
# under `mpirun -n 2` (into A) and as one process (into B), and compare.
#
#   scripts/mpi-check.sh
#
# Needs Open MPI (apt-get install libopenmpi-dev openmpi-bin libclang-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

cargo build --release --features mpi --example polynomial
program=$root/target/release/examples/polynomial
# As root (CI), Open MPI wants to be told; more ranks than cores are fine.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
run=(train --preset tiny --steps 40 --batch-size 8 --seed 3 --checkpoint-every 20)
mpirun -n 2 "$program" "${run[@]}" --out A
"$program" "${run[@]}" --out B

checkpoints=$(find A -name '*.safetensors' | wc -l)
[ "$checkpoints" -eq 1 ] || { echo "FAILED: $checkpoints checkpoints under A, expected one"; exit 1; }
grep -q '"world_size": 2' A/checkpoint.json || { echo "FAILED: no \"world_size\": 2 in A/checkpoint.json"; exit 1; }
python3 - <<'PY'
import json
a = [json.loads(l)["loss"] for l in open("A/train.jsonl")]
b = [json.loads(l)["loss"] for l in open("B/train.jsonl")]
assert len(a) == len(b) == 40, (len(a), len(b))
worst = max(abs(x - y) / abs(y) for x, y in zip(a, b))
assert worst <= 1e-4, f"losses differ by {worst:.2e} relative"
print(f"mpi check passed: 40 losses of 2 ranks and of one process within {worst:.1e} relative; "
      "one checkpoint, world_size 2")
PY
