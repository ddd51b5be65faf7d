#!/usr/bin/env bash
# How much --precision int8 changes the neighbours: embeds the first N papers
# of the corpus at f32 and at int8 and compares, per paper, the exact top-10
# neighbours by cosine (the paper itself excluded).
#
#   scripts/check-int8-neighbours.sh [N=2000]
#
# Prints the mean top-10 overlap (the issue's bar: >= 0.95), the worst
# paper's, and the cosine between the two vectors of each paper. Needs
# numpy: uses a venv of scripts/bench-vs-sentence-transformers.sh when one
# has it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N="${1:-2000}"
OUT=target/int8-neighbours
PY=python3
for venv in target/st-venv target/st-onnx-venv target/st-openvino-venv; do
  if "$venv/bin/python" -c "import numpy" 2>/dev/null; then PY="$venv/bin/python"; break; fi
done
mkdir -p "$OUT"
cargo build --release --quiet
CORPUS=../shared/data/arxiv-cs.jsonl.gz
[ -f "$CORPUS" ] || CORPUS=data/arxiv-sample.jsonl.gz

"$PY" - "$CORPUS" "$N" "$OUT" <<'PY'
import gzip, json, sys
src, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ws = lambda s: " ".join((s or "").split())
with gzip.open(src, "rt") as f, open(f"{out}/texts.jsonl", "w") as t:
    for i, line in enumerate(f):
        if i >= n:
            break
        p = json.loads(line)
        title, abstract = ws(p["title"]), ws(p["abstract"])
        text = f"{title}. {abstract}" if title and abstract else (title or abstract)
        t.write(json.dumps({"id": p["id"], "text": text}) + "\n")
PY
for P in f32 int8; do
  echo "embedding $N papers at $P"
  target/release/papersim embed "$OUT/texts.jsonl" --precision "$P" --output "$OUT/$P.jsonl"
done
"$PY" - "$OUT" <<'PY'
import json, sys
import numpy as np
out = sys.argv[1]
load = lambda p: np.array([json.loads(l)["embedding"] for l in open(f"{out}/{p}.jsonl")], dtype=np.float64)
a, b = load("f32"), load("int8")
def top10(v):
    s = v @ v.T
    np.fill_diagonal(s, -np.inf)
    return np.argsort(-s, axis=1, kind="stable")[:, :10]
ta, tb = top10(a), top10(b)
overlap = np.array([len(set(x) & set(y)) / 10 for x, y in zip(ta, tb)])
cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
print(f"{len(a)} papers: top-10 overlap int8 vs f32 mean {overlap.mean():.4f}, min {overlap.min():.1f}; "
      f"cosine int8 vs f32 min {cos.min():.5f}, mean {cos.mean():.5f}")
PY
