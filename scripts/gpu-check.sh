#!/usr/bin/env bash
# GPU check: build with CUDA, run the CUDA variants of the tests (CPU/GPU
# agreement at relative tolerance 1e-3), then measure the paper preset's
# training speed on image-shaped data and the speed of exact autoregressive
# sampling; then, where mpirun and NCCL are installed, the NCCL path of
# data-parallel training (one GPU; two processes on two GPUs). One command,
# meant to finish in under 8 minutes on an H200 (plus the NCCL build).
#
#   scripts/gpu-check.sh            # needs an NVIDIA GPU, its driver, and the CUDA toolkit
#
# Prints one JSON summary line at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

export CUDA_ROOT=${CUDA_ROOT:-/usr/local/cuda}
export PATH="$CUDA_ROOT/bin:$PATH"
# NVRTC (runtime kernel compilation) is loaded from the toolkit at run time.
export LD_LIBRARY_PATH="$CUDA_ROOT/lib64:$CUDA_ROOT/lib:${LD_LIBRARY_PATH:-}"

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
nvcc --version | tail -1

echo "== build"
cargo build --release --features cuda --example bench --example polynomial

echo "== CUDA tests"
cargo test --release --features cuda --test cuda -- --test-threads 1

echo "== end-to-end: a short polynomial training run on the GPU"
./target/release/examples/polynomial train --device cuda --steps 50 --out /tmp/pt-gpu-check --quiet

echo "== speed"
bench() { ./target/release/examples/bench --device cuda "$@"; }
mnist=$(bench --config mnist --steps 10 --warmup 3)
echo "$mnist"
cifar=$(bench --config cifar --steps 5 --warmup 2)
echo "$cifar"
sample=$(bench --config sample-mnist --steps 1 --warmup 1)
echo "$sample"

echo "== NCCL (feature nccl = cuda + mpi): one-GPU smoke test; two processes where there are two GPUs"
# Needs mpirun and libnccl: NVIDIA's libnccl2 + libnccl-dev packages, or
# PyPI's nvidia-nccl-cu13 wheel with NCCL_ROOT=<site-packages>/nvidia/nccl.
nccl=skipped
if [ -n "${NCCL_ROOT:-}" ]; then
  # The wheel ships only the versioned library; the linker wants libnccl.so.
  [ -e "$NCCL_ROOT/lib/libnccl.so" ] || ln -sf libnccl.so.2 "$NCCL_ROOT/lib/libnccl.so"
  export RUSTFLAGS="${RUSTFLAGS:-} -L native=$NCCL_ROOT/lib"
  export LD_LIBRARY_PATH="$NCCL_ROOT/lib:$LD_LIBRARY_PATH"
fi
if ! command -v mpirun >/dev/null; then
  echo "SKIPPED: no mpirun (apt-get install libopenmpi-dev openmpi-bin libclang-dev)"
elif [ -z "${NCCL_ROOT:-}" ] && ! ldconfig -p | grep 'libnccl\.so' >/dev/null; then
  echo "SKIPPED: no libnccl (see above for where to get it)"
else
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  cargo test --release --features nccl --test nccl
  nccl=one-gpu
  if [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
    cargo build --release --features nccl --example polynomial
    run=(train --device cuda --preset small --steps 30 --batch-size 16 --seed 3 --quiet --overwrite)
    mpirun -n 2 --bind-to none ./target/release/examples/polynomial "${run[@]}" --out /tmp/pt-nccl-2
    ./target/release/examples/polynomial "${run[@]}" --out /tmp/pt-nccl-1
    grep -q '"world_size": 2' /tmp/pt-nccl-2/checkpoint.json
    python3 - <<'PY'
import json
a = [json.loads(l)["loss"] for l in open("/tmp/pt-nccl-2/train.jsonl")]
b = [json.loads(l)["loss"] for l in open("/tmp/pt-nccl-1/train.jsonl")]
worst = max(abs(x - y) / abs(y) for x, y in zip(a, b))
print(f"2 GPUs (NCCL) vs 1 GPU, 30 steps: losses within {worst:.1e} relative")
assert len(a) == len(b) == 30 and worst <= 1e-3, worst
PY
    nccl=two-gpus
  else
    echo "two-process NCCL run skipped: one GPU here"
  fi
fi

python3 - "$mnist" "$cifar" "$sample" "$nccl" <<'PY'
import json, sys
m, c, s = (json.loads(a) for a in sys.argv[1:4])
print(json.dumps({
    "gpu_check": "passed",
    "nccl": sys.argv[4],
    "paper_mnist_train_steps_per_s": round(1000 / m["ms_per_train_step_median"], 3),
    "paper_cifar_train_steps_per_s": round(1000 / c["ms_per_train_step_median"], 3),
    "sample_mnist_ms_per_value": round(s["ms_per_sample_value"], 3),
    "sample_mnist_s_per_784_pixel_image": round(s["ms_per_sample_value"] * 784 / 1000, 3),
}))
PY
