#!/usr/bin/env bash
# papersim against sentence-transformers (PyTorch, fp32) on the very same
# texts, same machine, same thread count, in one run.
#
#   scripts/bench-vs-sentence-transformers.sh [N=500] [THREADS=nproc]
#
# Installs sentence-transformers into target/st-venv when absent (PyPI).
# Runs papersim at f32 and at int8 (--precision int8), twice, and
# sentence-transformers at batch 32 (its default, what the ratio is
# against), 16 and 64; each figure is the faster of two runs. Prints every throughput, its ratio to
# sentence-transformers at its default and at its best batch size, and the
# cosine between each papersim's vectors and sentence-transformers' for
# every text.
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
# A second run, kept where faster, as sentence-transformers' best of two below.
PAPERSIM_THREADS="$THREADS" RAYON_NUM_THREADS="$THREADS" \
  target/release/papersim bench embed --corpus "$OUT/corpus.jsonl" -n "$N" --precision f32,int8 --json > "$OUT/papersim-2.json"
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
# Its default batch size (32) is what the ratio is against; 16 and 64 are
# timed too, so the table also says how papersim fares against
# sentence-transformers at its best batch size on these texts.
# Each is timed twice, in alternating order, and keeps its faster run: the
# first encode of a shape pays PyTorch's warm-up, which would otherwise
# fall on whichever batch size runs first.
timings = {}
for batch in (32, 16, 64, 64, 16, 32):
    start = time.perf_counter()
    out_vecs = model.encode(texts, batch_size=batch, normalize_embeddings=True, convert_to_numpy=True)
    timings[batch] = min(timings.get(batch, float("inf")), time.perf_counter() - start)
    if batch == 32:
        vecs = out_vecs
seconds = timings[32]
best_batch = min(timings, key=timings.get)
tokens = sum(len(model.tokenizer(t, truncation=True, max_length=model.max_seq_length)["input_ids"]) for t in texts)
import numpy as np
def cosines(precision):
    ours = {}
    for l in open(f"{out}/papersim-{precision}-vectors.jsonl"):
        r = json.loads(l)
        ours[r["id"]] = r["embedding"]
    return [float(np.dot(v, ours[r["id"]]) / np.linalg.norm(ours[r["id"]])) for r, v in zip(rows, vecs)]
# Per precision, the faster of papersim's two runs.
runs = [max(a, b, key=lambda r: r["docs_per_s"])
        for a, b in zip(json.load(open(f"{out}/papersim.json")), json.load(open(f"{out}/papersim-2.json")))]
st = {"docs": len(texts), "seconds": seconds, "docs_per_s": len(texts) / seconds, "tokens_per_s": tokens / seconds,
      "docs_per_s_by_batch": {b: len(texts) / t for b, t in timings.items()},
      "torch": torch.__version__, "threads": torch.get_num_threads()}
json.dump(st, open(f"{out}/sentence-transformers.json", "w"), indent=2)
best = st["docs_per_s_by_batch"][best_batch]
print()
print(f"{len(texts)} abstracts, {threads} threads, same texts")
print()
print(f"| tool | docs/s | tokens/s | ratio | vs ST at its best batch ({best_batch}) | cosine to ST, min | mean |")
print("|---|---|---|---|---|---|---|")
for b in (32, 16, 64):
    dps = st["docs_per_s_by_batch"][b]
    default = " (default)" if b == 32 else ""
    print(f"| sentence-transformers (torch {torch.__version__}, fp32, batch {b}{default}) | {dps:.1f} | "
          f"{tokens * dps / len(texts):.0f} | {dps / st['docs_per_s']:.2f}x | {dps / best:.2f}x | | |")
for p in runs:
    cos = cosines(p["precision"])
    print(f"| papersim ({p['device']}, {p['precision']}) | {p['docs_per_s']:.1f} | {p['tokens_per_s']:.0f} | "
          f"{p['docs_per_s'] / st['docs_per_s']:.2f}x | {p['docs_per_s'] / best:.2f}x | {min(cos):.6f} | {sum(cos) / len(cos):.6f} |")
PY
