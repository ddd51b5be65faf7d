#!/usr/bin/env bash
# Proves that `--features cuda` compiles on a machine without a GPU (or a
# CUDA install): nvcc and the CUDA headers come from PyPI into a venv under
# target/, then `cargo check --features cuda`.
#
#   scripts/check-cuda-build.sh            # install if needed, then check
#   scripts/check-cuda-build.sh --toolkit  # install and print nvcc --version only
#   scripts/check-cuda-build.sh --release  # build and link target/cuda-check/release/papersim
#
# --release links for real: candle asks cudarc for `dynamic-linking`, so the
# binary names libcuda.so.1, libcublas.so.13, libcublasLt.so.13,
# libcurand.so.10, libnvrtc.so.13 and (for candle's MoE kernels)
# libcudart.so.13, and the dynamic loader finds them when
# it starts (on a GPU machine: the driver's libcuda, the rest from CUDA 13's
# libraries, e.g. the nvidia-* Python wheels PyTorch installs). Here the
# link needs them too: the libraries come from the same PyPI wheels
# (unversioned names as links in lib/stubs, where cudarc's build script
# looks), and libcuda.so, which only a driver ships, is a stub built from
# the driver functions cudarc declares: it satisfies the linker, and every
# function in it answers "no CUDA device".
#
# The pins match the GPU machines' 580 driver (CUDA 13.0). candle-kernels
# compiles its .cu files to PTX in its build script even under `cargo
# check`: that is most of the time (many CPU minutes on a small machine).
# CUDA_COMPUTE_CAP (default 90: H100/H200) picks the PTX target, since
# there is no GPU to ask.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=target/cuda-venv
PINS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-cccl==13.0.85
)
# Only --release links, so only it needs these (~700 MB installed).
LINK_PINS=(
  nvidia-cublas==13.0.2.14
  nvidia-curand==10.4.0.35
  nvidia-cuda-nvrtc==13.0.88
)
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/pip" freeze 2>/dev/null | grep -qx "nvidia-cuda-nvcc==13.0.88"; then
  echo "check-cuda-build: installing the CUDA 13.0 compiler into $VENV"
  "$VENV/bin/pip" install -q "${PINS[@]}"
fi
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
CUDA_ROOT="$SITE/nvidia/cu13"
if [ ! -x "$CUDA_ROOT/bin/nvcc" ]; then
  echo "check-cuda-build: no nvcc at $CUDA_ROOT/bin (did the wheels' layout change?)" >&2
  exit 1
fi
export CUDA_ROOT CUDA_PATH="$CUDA_ROOT" CUDA_HOME="$CUDA_ROOT"
export PATH="$CUDA_ROOT/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
nvcc --version | tail -2
if [ "${1:-}" = "--toolkit" ]; then
  exit 0
fi
if [ "${1:-}" != "--release" ]; then
  CARGO_TARGET_DIR=target/cuda-check cargo check --features cuda --all-targets
  echo "check-cuda-build: --features cuda compiles"
  exit 0
fi

if ! "$VENV/bin/pip" freeze 2>/dev/null | grep -qx "nvidia-cublas==13.0.2.14"; then
  echo "check-cuda-build: installing CUDA 13.0's cuBLAS, cuRAND and NVRTC into $VENV (link time only)"
  "$VENV/bin/pip" install -q "${LINK_PINS[@]}"
fi
STUBS="$CUDA_ROOT/lib/stubs"
mkdir -p "$STUBS"
for lib in cublas.so.13 cublasLt.so.13 curand.so.10 nvrtc.so.13 cudart.so.13; do
  ln -sf "../lib$lib" "$STUBS/lib${lib%.so.*}.so"
done
DRIVER_SYS=$(cargo metadata --format-version 1 --features cuda 2>/dev/null |
  "$VENV/bin/python" -c 'import json, sys, os
pkgs = json.load(sys.stdin)["packages"]
print(next(os.path.dirname(p["manifest_path"]) for p in pkgs if p["name"] == "cudarc") + "/src/driver/sys/mod.rs")')
# Every stub returns CUDA_ERROR_NO_DEVICE (100), so a binary that loads it
# (LD_LIBRARY_PATH=$STUBS, with libcuda.so.1 linked to it) behaves as on a
# machine without a GPU: that is how the no-GPU path is tried here.
grep -o "fn cu[A-Za-z0-9_]*" "$DRIVER_SYS" | sort -u | sed 's/^fn \(.*\)/int \1(void) { return 100; }/' > "$STUBS/libcuda-stub.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$STUBS/libcuda.so" "$STUBS/libcuda-stub.c"
ln -sf libcuda.so "$STUBS/libcuda.so.1"
CARGO_TARGET_DIR=target/cuda-check cargo build --release --features cuda
BIN=target/cuda-check/release/papersim
echo "check-cuda-build: built $BIN; it needs at run time:"
readelf -d "$BIN" | grep NEEDED | grep -E "cuda|cublas|curand|nvrtc"
