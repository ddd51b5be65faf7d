#!/usr/bin/env bash
# papersim's HNSW against hnswlib (PyPI), same vectors, same split,
# same M / ef_construction, same machine, in one run.
#
#   scripts/bench-vs-hnswlib.sh --synthetic 75000
#   scripts/bench-vs-hnswlib.sh --vectors vectors.npy        # e.g. from papersim export
#   scripts/bench-vs-hnswlib.sh --library libraries/arxiv-75k
#
# Extra flags after the source go to `papersim bench index` (--queries,
# --ef, --hnsw-m, --ef-construction, --builder hnsw-rs for hnsw_rs's graph
# builder, which this script compiles in with the hnsw-rs feature). The last --queries rows are the queries;
# both libraries index the rest, with 2 build threads, and report recall@10
# against exact search and queries/s on 1 and 2 threads for each ef.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ $# -ge 2 ] || { sed -n 2,12p "$0"; exit 2; }
VENV=target/hnswlib-venv
OUT=target/bench-vs-hnswlib
mkdir -p "$OUT"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import hnswlib, numpy" 2>/dev/null; then
  echo "bench: installing hnswlib and numpy into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q hnswlib numpy
fi
# With hnsw-rs, so that `--builder hnsw-rs` can be passed through.
cargo build --release --quiet --features hnsw-rs

echo "bench: papersim"
target/release/papersim bench index "$@" --write-vectors "$OUT/vectors.npy" --json > "$OUT/papersim.json"

# Read the same parameters back from papersim's report.
echo "bench: hnswlib"
"$VENV/bin/python" - "$OUT/vectors.npy" "$OUT/papersim.json" > "$OUT/hnswlib.json" <<'PY'
import json, resource, sys, time
import numpy as np, hnswlib
vectors, report = sys.argv[1], json.load(open(sys.argv[2]))
x = np.load(vectors)
nq, m, efc = report["queries"], report["m"], report["ef_construction"]
base, queries = x[: len(x) - nq], x[len(x) - nq :]
truth = np.argsort(-(queries @ base.T), axis=1)[:, :10]
index = hnswlib.Index(space="ip", dim=x.shape[1])
index.init_index(max_elements=len(base), M=m, ef_construction=efc, random_seed=100)
t = time.perf_counter()
index.add_items(base, np.arange(len(base)), num_threads=2)
build_s = time.perf_counter() - t
rows = []
for row in report["rows"]:
    ef = row["ef"]
    index.set_ef(max(ef, 10))
    out = {"ef": ef}
    for threads in (1, 2):
        t = time.perf_counter()
        labels, _ = index.knn_query(queries, k=10, num_threads=threads)
        out[f"qps_{threads}t"] = nq / (time.perf_counter() - t)
    out["recall@10"] = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(labels, truth)]))
    rows.append(out)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"build_s": build_s, "peak_rss_mb": peak, "rows": rows, "hnswlib": hnswlib.__version__ if hasattr(hnswlib, "__version__") else "?"}))
PY

"$VENV/bin/python" - "$OUT/papersim.json" "$OUT/hnswlib.json" <<'PY'
import json, sys
p, h = (json.load(open(f)) for f in sys.argv[1:3])
print(f"\n{p['source']}: {p['indexed']} indexed, {p['queries']} queries, dim {p['dim']}, "
      f"M={p['m']} ef_construction={p['ef_construction']}, 2 build threads\n")
print("| library | build s | peak RSS MB (process) |")
print("|---|---|---|")
print(f"| papersim ({p['builder']} builder) | {p['build_s']:.1f} | {p['peak_rss_mb']:.0f} |")
print(f"| hnswlib | {h['build_s']:.1f} | {h['peak_rss_mb']:.0f} |")
print("\n| ef | papersim recall@10 | hnswlib recall@10 | papersim q/s 1t | hnswlib q/s 1t | papersim q/s 2t | hnswlib q/s 2t |")
print("|---|---|---|---|---|---|---|")
for a, b in zip(p["rows"], h["rows"]):
    print(f"| {a['ef']} | {a['recall@10']:.4f} | {b['recall@10']:.4f} | {a['qps_1t']:.0f} | {b['qps_1t']:.0f} "
          f"| {a['qps_2t']:.0f} | {b['qps_2t']:.0f} |")
# The comparison the issue asks for: at the smallest ef where each reaches
# recall@10 >= 0.99, who answers more queries per second on one thread.
def at99(rows):
    return next((r for r in rows if r["recall@10"] >= 0.99), None)
a, b = at99(p["rows"]), at99(h["rows"])
if a and b:
    print(f"\nat recall@10 >= 0.99: papersim {a['qps_1t']:.0f} q/s (ef {a['ef']}), "
          f"hnswlib {b['qps_1t']:.0f} q/s (ef {b['ef']}): {a['qps_1t'] / b['qps_1t']:.2f}x; "
          f"build {p['build_s']:.1f} s vs {h['build_s']:.1f} s")
else:
    print("\nrecall@10 >= 0.99 not reached by both in this ef sweep")
PY
