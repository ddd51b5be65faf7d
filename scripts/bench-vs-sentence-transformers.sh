#!/usr/bin/env bash
# papersim against sentence-transformers (PyTorch, fp32) on the very same
# texts, same machine, same thread count, in one run.
#
#   scripts/bench-vs-sentence-transformers.sh [N=500] [THREADS=nproc]
#
# Installs sentence-transformers into target/st-venv when absent (PyPI).
# Runs papersim at f32 and at int8 (--precision int8). Prints every
# throughput, its ratio to sentence-transformers, and the cosine between
# each papersim's vectors and sentence-transformers' for every text.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N="${1:-500}"
THREADS="${2:-$(nproc)}"
VENV=target/st-venv
OUT=target/bench-vs-st
mkdir -p "$OUT"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import sentence_transformers" 2>/dev/null; then
  echo "bench: installing sentence-transformers into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q sentence-transformers
fi
scripts/fetch-model.sh >/dev/null
cargo build --release --quiet
CORPUS=../shared/data/arxiv-cs.jsonl.gz
[ -f "$CORPUS" ] || CORPUS=data/arxiv-sample.jsonl.gz

# The same N texts for both: title + ". " + abstract, whitespace collapsed,
# as a BEIR corpus (for papersim bench) and as {"id","text"} lines.
"$VENV/bin/python" - "$CORPUS" "$N" "$OUT" <<'PY'
import gzip, json, sys
src, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ws = lambda s: " ".join((s or "").split())
with gzip.open(src, "rt") as f, open(f"{out}/corpus.jsonl", "w") as c, open(f"{out}/texts.jsonl", "w") as t:
    for i, line in enumerate(f):
        if i >= n:
            break
        p = json.loads(line)
        title, abstract = ws(p["title"]), ws(p["abstract"])
        text = f"{title}. {abstract}" if title and abstract else (title or abstract)
        c.write(json.dumps({"_id": p["id"], "title": title, "text": abstract}) + "\n")
        t.write(json.dumps({"id": p["id"], "text": text}) + "\n")
PY

echo "bench: papersim f32 and int8, $THREADS threads"
PAPERSIM_THREADS="$THREADS" RAYON_NUM_THREADS="$THREADS" \
  target/release/papersim bench embed --corpus "$OUT/corpus.jsonl" -n "$N" --precision f32,int8 --json > "$OUT/papersim.json"
for P in f32 int8; do
  PAPERSIM_THREADS="$THREADS" RAYON_NUM_THREADS="$THREADS" \
    target/release/papersim embed "$OUT/texts.jsonl" --precision "$P" --output "$OUT/papersim-$P-vectors.jsonl" 2>/dev/null
done

echo "bench: sentence-transformers, $THREADS threads"
"$VENV/bin/python" - "$OUT" "$THREADS" models/all-MiniLM-L6-v2 <<'PY'
import json, sys, time
out, threads, model_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
import torch
torch.set_num_threads(threads)
from sentence_transformers import SentenceTransformer
rows = [json.loads(l) for l in open(f"{out}/texts.jsonl")]
texts = [r["text"] for r in rows]
model = SentenceTransformer(model_dir, device="cpu")
model.encode(texts[:16], batch_size=32)
start = time.perf_counter()
vecs = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
seconds = time.perf_counter() - start
tokens = sum(len(model.tokenizer(t, truncation=True, max_length=model.max_seq_length)["input_ids"]) for t in texts)
import numpy as np
def cosines(precision):
    ours = {}
    for l in open(f"{out}/papersim-{precision}-vectors.jsonl"):
        r = json.loads(l)
        ours[r["id"]] = r["embedding"]
    return [float(np.dot(v, ours[r["id"]]) / np.linalg.norm(ours[r["id"]])) for r, v in zip(rows, vecs)]
runs = json.load(open(f"{out}/papersim.json"))
st = {"docs": len(texts), "seconds": seconds, "docs_per_s": len(texts) / seconds, "tokens_per_s": tokens / seconds,
      "torch": torch.__version__, "threads": torch.get_num_threads()}
json.dump(st, open(f"{out}/sentence-transformers.json", "w"), indent=2)
print()
print(f"{len(texts)} abstracts, {threads} threads, same texts")
print()
print("| tool | docs/s | tokens/s | ratio | cosine to ST, min | mean |")
print("|---|---|---|---|---|---|")
print(f"| sentence-transformers (torch {torch.__version__}, fp32, batch 32) | {st['docs_per_s']:.1f} | {st['tokens_per_s']:.0f} | 1.00x | | |")
for p in runs:
    cos = cosines(p["precision"])
    print(f"| papersim ({p['device']}, {p['precision']}) | {p['docs_per_s']:.1f} | {p['tokens_per_s']:.0f} | "
          f"{p['docs_per_s'] / st['docs_per_s']:.2f}x | {min(cos):.6f} | {sum(cos) / len(cos):.6f} |")
PY
