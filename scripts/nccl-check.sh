#!/usr/bin/env bash
# Compile-check the NCCL path (features `nccl` = `cuda` + `mpi` + cudarc's
# NCCL bindings) on a machine with no GPU, no CUDA toolkit and no NCCL, on top
# of the shared CUDA compile check (../shared/tools/cuda-check, which the
# project's CI has beside its clone; a user's clone does not, and then this
# says so and stops).
#
#   scripts/nccl-check.sh          # cargo check --features nccl --all-targets
#   scripts/nccl-check.sh link     # also build and link every target against a libnccl stub
#                                  # (16 minutes on 2 shared cores; the binaries then need
#                                  # libnccl.so.2, libmpi.so.40, libcuda.so.1: never run them here)
#
# Needs the MPI library and libclang (apt-get install libopenmpi-dev
# openmpi-bin libclang-dev), as the `mpi` feature always does.
#
# What NCCL adds to the CUDA check, and why this is all it takes:
# * no header: cudarc 0.9.15 ships its NCCL bindings pre-generated
#   (src/nccl/sys.rs, from NCCL 2.x's nccl.h); its build script runs no
#   bindgen, it only asks the linker for `-lnccl`. So `cargo check` needs
#   nothing of NCCL at all.
# * a link stub: `link` generates libnccl.so from the functions those
#   bindings declare (as the shared script does for libcuda and cuBLAS) and
#   links against it. The stub is for the linker only: a real run needs the
#   real library (NVIDIA's package, or PyPI's nvidia-nccl-cu12/cu13 wheels).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-check}
SHARED=../shared/tools/cuda-check/ci-cuda-check.sh
if [ ! -x "$SHARED" ]; then
  echo "skipped: $SHARED is not here (a user's clone); the nccl feature is checked in the project's own CI"
  exit 0
fi

export CARGO_FEATURES=nccl
case "$MODE" in
  check)
    "$SHARED" check
    ;;
  link)
    cargo fetch --quiet
    sys=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.9.15/src/nccl/sys.rs | head -1)
    stubs=target/nccl-stub
    mkdir -p "$stubs"
    { echo '/* link-time stand-in for libnccl, from cudarc 0.9.15 bindings; never load it at run time */'
      grep -oE 'pub fn [A-Za-z0-9_]+' "$sys" | awk '{print $3}' | sort -u |
        while read -r s; do echo "int $s(void) { return 1; }"; done; } > "$stubs/nccl_stub.c"
    cc -shared -fPIC -o "$stubs/libnccl.so" -Wl,-soname,libnccl.so.2 "$stubs/nccl_stub.c"
    echo "libnccl stub: $(grep -c '^int ' "$stubs/nccl_stub.c") functions"
    # The shared script builds (and so links) every target, in debug.
    RUSTFLAGS="${RUSTFLAGS:-} -L native=$PWD/$stubs" CUBLAS_FROM=stub "$SHARED" build
    ;;
  *)
    echo "usage: $0 [check|link]" >&2
    exit 2
    ;;
esac
