#!/usr/bin/env bash
# GPU check: build with CUDA, run the CUDA variants of the tests (CPU/GPU
# agreement at relative tolerance 1e-3), then measure the paper preset's
# training speed on image-shaped data and the speed of exact autoregressive
# sampling. One command, meant to finish in under 8 minutes on an H200.
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

python3 - "$mnist" "$cifar" "$sample" <<'PY'
import json, sys
m, c, s = (json.loads(a) for a in sys.argv[1:])
print(json.dumps({
    "gpu_check": "passed",
    "paper_mnist_train_steps_per_s": round(1000 / m["ms_per_train_step_median"], 3),
    "paper_cifar_train_steps_per_s": round(1000 / c["ms_per_train_step_median"], 3),
    "sample_mnist_ms_per_value": round(s["ms_per_sample_value"], 3),
    "sample_mnist_s_per_784_pixel_image": round(s["ms_per_sample_value"] * 784 / 1000, 3),
}))
PY
