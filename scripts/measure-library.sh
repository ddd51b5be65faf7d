#!/usr/bin/env bash
# The scale figures of a built library (README "The 75k real library"):
# info, disk use, cold CLI search latency per mode (process start to output),
# then open time, resident memory and recall/queries-per-second against
# hnswlib on the library's own vectors.
#
#   scripts/measure-library.sh LIBRARY ["query sentence"]
#   BENCH_LIMIT=74728 scripts/measure-library.sh LIBRARY   # hnswlib comparison
#       over the first 74,728 rows only (the arXiv papers, when later adds of
#       another field's papers would otherwise be the held-out queries)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
L=${1:?usage: scripts/measure-library.sh LIBRARY [QUERY]}
q=${2:-contrastive learning for sentence embeddings}
cargo build --release --quiet
P=target/release/papersim
echo "== $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
$P info --library "$L"
du -sh "$L"/* | sort -h
echo "== cold search, 5 runs per mode"
for mode in hybrid dense keyword; do
  for _ in 1 2 3 4 5; do
    /usr/bin/time -f "$mode %e s wall, %M KB max RSS" $P search --library "$L" "$q" -k 10 --mode $mode >/dev/null
  done
done 2>&1
echo "== against hnswlib (open time and resident memory first)"
scripts/bench-vs-hnswlib.sh --library "$L" --queries 1000 ${BENCH_LIMIT:+--limit "$BENCH_LIMIT"}
