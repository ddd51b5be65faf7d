#!/usr/bin/env bash
# The test command: fetches the model if needed, then runs every test.
# Extra arguments go to `cargo test` (e.g. scripts/test.sh --test cli).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-model.sh
cargo test --release --features hnsw-rs "$@"
