#!/usr/bin/env bash
# Cross-builds papersim for aarch64 Linux and runs, under QEMU user-mode
# emulation, the CPU kernel tests (NEON and scalar, every kernel against the
# scalar reference, the self-check) and a parity check on a handful of
# reference texts through the real binary (f32 and int8, each path forced by
# PAPERSIM_ISA). Correctness only: emulated timings mean nothing.
#
#   scripts/aarch64-test.sh
#
# Installs what is missing: the rustup target, Debian's aarch64 gcc and libc,
# and qemu-user-static (apt-get, as root or through sudo). Expect ~8 min to
# cross-build from scratch on 2 cores, ~3 min for the emulated tests. The
# HTTP server (feature serve) is left out: it has no kernels.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TARGET=aarch64-unknown-linux-gnu

if ! rustup target list --installed | grep -qx "$TARGET"; then
  rustup target add "$TARGET"
fi
missing=()
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
if [ ${#missing[@]} -gt 0 ]; then
  echo "aarch64-test: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi
scripts/fetch-model.sh >/dev/null

RUNNER="qemu-aarch64-static -L /usr/aarch64-linux-gnu"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$RUNNER"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
# The integration test starts the aarch64 binary itself: through QEMU too.
export PAPERSIM_TEST_RUNNER="$RUNNER"
# Six texts per path and precision: under emulation each forward pass of
# an abstract takes seconds.
export PAPERSIM_ISA_TEST_TEXTS=6

echo "aarch64-test: kernel unit tests"
cargo test --release --target "$TARGET" --no-default-features --lib cpu_bert
echo "aarch64-test: parity of every path through the real binary"
cargo test --release --target "$TARGET" --no-default-features --test isa -- --skip info_build --nocapture
