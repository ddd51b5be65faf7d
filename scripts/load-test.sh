#!/usr/bin/env bash
# Load test of `papersim serve` on loopback, bounded in count and time:
# CONNECTIONS concurrent clients for DURATION on POST /search (paper titles
# as queries, hybrid mode) and on POST /embed (one abstract per request),
# with wrk (apt-get install wrk). Reports req/s, p50/p99 latency, 5xx
# count (from the server's /metrics), and RSS before, after each run, and
# after a repeat run (memory should stay flat).
#
#   scripts/load-test.sh [LIBRARY] [DURATION] [CONNECTIONS]
#
# LIBRARY defaults to target/load-lib, built on first use from the first
# 2,000 papers of ../shared/data/arxiv-cs.jsonl.gz (~2 min).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
lib=${1:-target/load-lib}
duration=${2:-30s}
conns=${3:-50}
threads=2

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
command -v wrk >/dev/null || { as_root apt-get update -qq; as_root apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet
bin=target/release/papersim
if [ ! -f "$lib/manifest.json" ]; then
    "$bin" build --corpus ../shared/data/arxiv-cs.jsonl.gz --library "$lib" --limit 2000 >/dev/null
fi

work=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# Request bodies from the bundled sample (not the served papers themselves).
python3 - "$work" <<'PY'
import gzip, json, sys
out = sys.argv[1]
papers = [json.loads(l) for l in gzip.open("data/arxiv-sample.jsonl.gz", "rt")][:500]
with open(f"{out}/search.jsonl", "w") as f:
    for p in papers:
        f.write(json.dumps({"query": " ".join(p["title"].split()), "k": 10}) + "\n")
with open(f"{out}/embed.jsonl", "w") as f:
    for p in papers:
        f.write(json.dumps({"inputs": " ".join(p["abstract"].split())}) + "\n")
PY

"$bin" serve --library "$lib" --addr 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
pid=$!
url=
for _ in $(seq 1 600); do
    url=$(sed -n 's/.* on \(http:\/\/[0-9.:]*\).*/\1/p' "$work/serve.out")
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
    sleep 0.1
done
[ -n "$url" ] || { echo "load-test: no address from the server" >&2; exit 1; }

rss() { awk '/^VmRSS/ {printf "%.0f MiB", $2/1024}' "/proc/$pid/status"; }
peak() { awk '/^VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$pid/status"; }
status_count() { # route, status regex
    curl -s "$url/metrics" | awk -v r="route=\"$1\"" -v s="$2" \
        'index($0, "papersim_http_requests_total{" r) == 1 { split($0, a, "status=\""); split(a[2], b, "\""); if (b[1] ~ s) n += $NF } END { print n + 0 }'
}
papers=$(curl -s "$url/info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["papers"])')
echo "load-test: $url, $papers papers, $conns connections, $duration per run, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
# Warm up (page cache, allocator).
curl -s -X POST "$url/search" -d '{"query":"warm up","k":10}' >/dev/null
curl -s -X POST "$url/embed" -d '{"inputs":"warm up"}' >/dev/null
echo "RSS idle: $(rss)"

run() { # name, route, bodies
    BODIES="$3" wrk -t"$threads" -c"$conns" -d"$duration" --timeout 30s --latency \
        -s scripts/load/post.lua "$url$2" >"$work/$1.txt"
    local rps p50 p99 total non2xx
    rps=$(awk '/^Requests\/sec/ {print $2}' "$work/$1.txt")
    p50=$(awk '$1 == "50%" {print $2}' "$work/$1.txt")
    p99=$(awk '$1 == "99%" {print $2}' "$work/$1.txt")
    total=$(awk '/requests in/ {print $1}' "$work/$1.txt")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/$1.txt")
    echo "| $1 | $total | ${rps} | ${p50} | ${p99} | ${non2xx:-0} | $(status_count "$2" '^5') | $(rss) |"
}
echo
echo "| run | requests | req/s | p50 | p99 | non-2xx | 5xx | RSS after |"
echo "|---|---|---|---|---|---|---|---|"
run search /search "$work/search.jsonl"
run embed /embed "$work/embed.jsonl"
run "search (repeat)" /search "$work/search.jsonl"
run "embed (repeat)" /embed "$work/embed.jsonl"
sleep 2
echo
echo "RSS after the runs: $(rss), peak RSS: $(peak)"
echo "429s (overload): search $(status_count /search '^429$'), embed $(status_count /embed '^429$')"
curl -s "$url/metrics" | grep -E '^papersim_embed_batch_(requests|texts)_(sum|count) '
kill -TERM "$pid"
wait "$pid"
pid=
