#!/usr/bin/env bash
# Builds the fuzz targets (cargo-fuzz, libFuzzer, nightly) and runs each for a
# while, one at a time, then prints runs and crashes per target.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      default: 30 s each, every target
#
# Environment:
#   (sets PAPERSIM_FUZZ_TMP: the scratch folder of the library_open fixture)
#   FUZZ_RUNS=N        also stop a target after N executions (default: time only)
#   FUZZ_MAX_LEN=N     largest input in bytes (default 65536)
#   FUZZ_SANITIZER=S   address, none, ... (default none: the targets are safe
#                      Rust over papersim's safe code, and an ASan build of
#                      candle/tantivy takes much longer on a small machine)
#   FUZZ_TOOLCHAIN=T   rustup toolchain (default nightly)
#
# The seeds in fuzz/corpus/<target> are read but never written; what the
# fuzzer finds goes to fuzz/work/<target> (ignored by git), crashes to
# fuzz/artifacts/<target>. Needs `cargo install cargo-fuzz`.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${1:-30}"
shift || true
runs="${FUZZ_RUNS:--1}"
max_len="${FUZZ_MAX_LEN:-65536}"
sanitizer="${FUZZ_SANITIZER:-none}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(corpus_arxiv corpus_beir corpus_csv corpus_tsv corpus_hf_daily corpus_bibtex corpus_ris corpus_openalex corpus_s2 corpus_listing corpus_detect library_open serve_request)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi

cd fuzz
# Builds only the targets asked for, so a run of some targets does not
# depend on the others compiling.
for t in "${targets[@]}"; do
    nice -n 10 cargo "+$toolchain" fuzz build -s "$sanitizer" "$t"
done

# The library_open target writes its fixture library under this folder: the
# fuzzer exits without running destructors, so the script removes it.
shm=/dev/shm
[ -d "$shm" ] || shm="${TMPDIR:-/tmp}"
PAPERSIM_FUZZ_TMP="$(mktemp -d "$shm/papersim-fuzz.XXXXXX")"
export PAPERSIM_FUZZ_TMP
trap 'rm -rf "$PAPERSIM_FUZZ_TMP"' EXIT

summary=()
failed=0
for t in "${targets[@]}"; do
    mkdir -p "work/$t" "artifacts/$t"
    log="work/$t.log"
    before=$(find "artifacts/$t" -type f | wc -l)
    echo "== $t: ${seconds}s, runs ${runs}, max_len ${max_len}"
    status=0
    # The first corpus folder receives new inputs, so the committed seeds
    # (second folder) stay as they are.
    nice -n 10 cargo "+$toolchain" fuzz run -s "$sanitizer" "$t" "work/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -runs="$runs" -max_len="$max_len" \
        -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 >"$log" 2>&1 || status=$?
    done_runs=$(grep -oE 'Done [0-9]+ runs' "$log" | tail -1 | grep -oE '[0-9]+' || true)
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
    after=$(find "artifacts/$t" -type f | wc -l)
    crashes=$((after - before))
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes="?"
    fi
    if [ "$status" -ne 0 ] || [ "$crashes" != 0 ]; then
        failed=1
        tail -n 30 "$log"
    fi
    summary+=("$(printf '%-16s runs %10s  crashes %s  exit %s  log fuzz/%s' "$t" "${done_runs:-${execs:-?}}" "$crashes" "$status" "$log")")
done

echo
echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit "$failed"
