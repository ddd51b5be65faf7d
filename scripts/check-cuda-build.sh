#!/usr/bin/env bash
# Proves that `--features cuda` compiles on a machine without a GPU (or a
# CUDA install): nvcc and the CUDA headers come from PyPI into a venv under
# target/, then `cargo check --features cuda` (no link step: cudarc loads
# libcuda dynamically at run time, so nothing needs the driver).
#
#   scripts/check-cuda-build.sh            # install if needed, then check
#   scripts/check-cuda-build.sh --toolkit  # install and print nvcc --version only
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
CARGO_TARGET_DIR=target/cuda-check cargo check --features cuda --all-targets
echo "check-cuda-build: --features cuda compiles"
