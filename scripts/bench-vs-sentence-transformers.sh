#!/usr/bin/env bash
# papersim against the engines a Python user would pick for
# all-MiniLM-L6-v2, on the very same texts, same machine, same thread count,
# in one run:
#
#   scripts/bench-vs-sentence-transformers.sh [N=500] [THREADS=nproc]
#
#   sentence-transformers, torch f32 (the baseline) and torch bf16
#     (`model.to(torch.bfloat16)`)
#   sentence-transformers backend="onnx": ONNX Runtime f32, and int8 from
#     export_dynamic_quantized_onnx_model with the preset matching this CPU
#     (avx512_vnni, avx512, avx2 or arm64)
#   sentence-transformers backend="openvino": its default precision (which
#     the table names, as the compiled model reports it), f32 forced, and
#     static int8 from export_static_quantized_openvino_model, calibrated on
#     CALIB (default 300) records that follow the timed ones in the corpus,
#     so disjoint from them
#   papersim f32, int8 and bf16 (bf16 only when this binary accepts
#     `--precision bf16`; otherwise the table says so)
#
# Every Python engine runs in its own process, at batch 32, 16 and 64, each
# twice in alternating order, and keeps its best; papersim's `bench embed`
# runs twice and keeps the faster. The table gives docs/s, the ratio to
# sentence-transformers f32 at its best batch size, and the min and mean
# cosine of each engine's vectors to sentence-transformers f32's over all N
# texts. Everything is restricted to THREADS threads: torch.set_num_threads,
# ONNX Runtime intra-op threads (session options), OpenVINO
# INFERENCE_NUM_THREADS, OMP/MKL/rayon variables, PAPERSIM_THREADS.
#
# Python comes from PyPI into two venvs, because sentence-transformers[onnx]
# (optimum-onnx: transformers < 4.58) and sentence-transformers[openvino]
# (optimum-intel: transformers 5.x) cannot share one: target/st-onnx-venv
# (ST torch and ONNX Runtime) and target/st-openvino-venv (OpenVINO). PyPI's
# only Linux x86-64 torch wheel depends on the CUDA runtime wheels (PyPI has
# no CPU-only torch, and its own CPU index is not reachable here): each venv
# is about 6 GB and the first install takes a few minutes; pip's cache makes
# the second one quicker. Installed once, reused after; the model exports
# (target/bench-vs-st/onnx-model, openvino-model) are redone only when the
# model, the calibration texts or a package version change. Offline
# throughout (HF_HUB_OFFLINE=1): the model is models/all-MiniLM-L6-v2
# (scripts/fetch-model.sh). Results: target/bench-vs-st/table.md and
# results.json; each engine's log in target/bench-vs-st/logs/.
#
# Exits non-zero when any engine failed (its row then says so); a papersim
# binary without bf16 is not a failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N="${1:-500}"
THREADS="${2:-$(nproc)}"
CALIB="${CALIB:-300}"
die() { echo "bench: error: $*" >&2; exit 1; }
say() { echo "bench: [$SECONDS s] $*"; }
for v in N THREADS CALIB; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done

OUT=target/bench-vs-st
ONNX_VENV=target/st-onnx-venv
OV_VENV=target/st-openvino-venv
HELPER=scripts/bench-st-engines.py
MODEL=models/all-MiniLM-L6-v2
mkdir -p "$OUT/logs"
rm -f "$OUT"/engine-*.json "$OUT"/vectors-*.npy "$OUT"/papersim*.json "$OUT"/papersim-*-vectors.jsonl \
  "$OUT/status.tsv" "$OUT/table.md" "$OUT/results.json"
: > "$OUT/status.tsv"

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export HF_DATASETS_CACHE="$PWD/$OUT/hf-datasets-cache"
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS"
export RAYON_NUM_THREADS="$THREADS" RAYON_RS_NUM_CPUS="$THREADS" PAPERSIM_THREADS="$THREADS"

# ensure_venv VENV IMPORT-CHECK PIP-ARGS...: installs PIP-ARGS into VENV unless
# IMPORT-CHECK already succeeds there. Returns non-zero (with the log's tail
# printed) when the install fails.
ensure_venv() {
  local venv="$1" check="$2" log
  shift 2
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
    return 0
  fi
  log="$OUT/logs/pip-$(basename "$venv").log"
  echo "bench: installing $* into $venv (from PyPI, ~6 GB with torch's CUDA wheels; log $log)"
  if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q -U pip &&
         "$venv/bin/pip" install -q "$@"; } > "$log" 2>&1; then
    echo "bench: pip install into $venv failed; the end of $log:" >&2
    tail -n 15 "$log" >&2
    return 1
  fi
  "$venv/bin/python" -c "$check" >> "$log" 2>&1 || {
    echo "bench: $venv installed, but '$check' fails there; see $log" >&2
    return 1
  }
}

FAILED=()
note() { printf '%s\t%s\n' "$1" "$2" >> "$OUT/status.tsv"; }

# optimum-onnx (sentence-transformers[onnx]) needs transformers < 4.58; saying
# so up front spares pip's resolver a long walk back through every
# sentence-transformers 6.x (which needs transformers 5).
ensure_venv "$ONNX_VENV" "import sentence_transformers, torch, onnxruntime, optimum.onnxruntime" \
  "sentence-transformers[onnx]" "transformers<4.58" \
  || die "could not install sentence-transformers[onnx] into $ONNX_VENV; it runs the baseline, so nothing to compare with"
OV_OK=1
ensure_venv "$OV_VENV" "import sentence_transformers, torch, openvino, optimum.intel, nncf, datasets" \
  "sentence-transformers[openvino]" datasets \
  || { OV_OK=0; echo "bench: the OpenVINO rows are skipped: its venv did not install" >&2; }

scripts/fetch-model.sh >/dev/null
say "cargo build --release"
cargo build --release --quiet || die "cargo build --release failed"
PAPERSIM_REV="$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || PAPERSIM_REV="$PAPERSIM_REV with uncommitted changes to src/"
export PAPERSIM_REV

CORPUS=../shared/data/arxiv-cs.jsonl.gz
[ -f "$CORPUS" ] || CORPUS=data/arxiv-sample.jsonl.gz

# Records 0..N-1 are timed, as title + ". " + abstract with whitespace
# collapsed: as a BEIR corpus (for papersim bench) and as {"id","text"} lines
# (for papersim embed and Python). Records N..N+CALIB-1 calibrate OpenVINO's
# static int8.
"$ONNX_VENV/bin/python" - "$CORPUS" "$N" "$CALIB" "$OUT" <<'PY'
import gzip, json, sys
src, n, calib, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ws = lambda s: " ".join((s or "").split())
timed = held = 0
with gzip.open(src, "rt") as f, open(f"{out}/corpus.jsonl", "w") as c, \
        open(f"{out}/texts.jsonl", "w") as t, open(f"{out}/calib.jsonl", "w") as k:
    for i, line in enumerate(f):
        if i >= n + calib:
            break
        p = json.loads(line)
        title, abstract = ws(p["title"]), ws(p["abstract"])
        text = f"{title}. {abstract}" if title and abstract else (title or abstract)
        if i < n:
            c.write(json.dumps({"_id": p["id"], "title": title, "text": abstract}) + "\n")
            t.write(json.dumps({"id": p["id"], "text": text}) + "\n")
            timed += 1
        else:
            k.write(json.dumps({"id": p["id"], "text": text}) + "\n")
            held += 1
if timed < n:
    sys.exit(f"bench: error: {src} has {timed} records, fewer than N={n}")
if held == 0:
    sys.exit(f"bench: error: {src} has no records after the {n} timed ones to calibrate OpenVINO int8 on")
if held < calib:
    print(f"bench: only {held} calibration records after the {n} timed ones (CALIB={calib})", file=sys.stderr)
PY
CALIB_N=$(wc -l < "$OUT/calib.jsonl")

PS=target/release/papersim
PRECISIONS=f32,int8
if "$PS" bench embed --corpus "$OUT/corpus.jsonl" -n 2 --precision bf16 --json > "$OUT/logs/papersim-bf16-probe.log" 2>&1; then
  PRECISIONS=f32,int8,bf16
else
  echo "bench: note: this papersim does not accept --precision bf16 ($(grep -o '"message":"[^"]*"' "$OUT/logs/papersim-bf16-probe.log" | head -1)); its row is left empty"
  note papersim-bf16 "not supported by this binary"
fi
say "papersim $PRECISIONS, $THREADS threads (bench embed twice)"
"$PS" bench embed --corpus "$OUT/corpus.jsonl" -n "$N" --precision "$PRECISIONS" --json > "$OUT/papersim.json" \
  || die "papersim bench embed failed: $(cat "$OUT/papersim.json")"
"$PS" bench embed --corpus "$OUT/corpus.jsonl" -n "$N" --precision "$PRECISIONS" --json > "$OUT/papersim-2.json" \
  || die "papersim bench embed failed: $(cat "$OUT/papersim-2.json")"
for P in ${PRECISIONS//,/ }; do
  "$PS" embed "$OUT/texts.jsonl" --precision "$P" --output "$OUT/papersim-$P-vectors.jsonl" \
    2> "$OUT/logs/papersim-embed-$P.log" || die "papersim embed --precision $P failed; see $OUT/logs/papersim-embed-$P.log"
done

# run_engine VENV ENGINE: times one engine in its own process.
run_engine() {
  local venv="$1" engine="$2" log="$OUT/logs/$2.log"
  if "$venv/bin/python" "$HELPER" time "$engine" "$OUT" "$THREADS" "$MODEL" > "$log" 2>&1; then
    grep '^bench:' "$log" | sed "s/^bench: /bench: [$SECONDS s] /" || true
    note "$engine" ok
  else
    echo "bench: $engine failed; the end of $log:" >&2
    tail -n 8 "$log" >&2
    note "$engine" "failed: see $log"
    FAILED+=("$engine")
  fi
}

say "sentence-transformers and ONNX Runtime, $THREADS threads"
run_engine "$ONNX_VENV" st-f32
[ -f "$OUT/engine-st-f32.json" ] || die "the baseline (sentence-transformers f32) failed; see $OUT/logs/st-f32.log"
run_engine "$ONNX_VENV" st-bf16
if "$ONNX_VENV/bin/python" "$HELPER" prepare-onnx "$MODEL" "$OUT/onnx-model" > "$OUT/logs/prepare-onnx.log" 2>&1; then
  grep '^bench:' "$OUT/logs/prepare-onnx.log" || true
  run_engine "$ONNX_VENV" onnx-f32
  run_engine "$ONNX_VENV" onnx-int8
else
  echo "bench: the ONNX export failed; the end of $OUT/logs/prepare-onnx.log:" >&2
  tail -n 8 "$OUT/logs/prepare-onnx.log" >&2
  for e in onnx-f32 onnx-int8; do note "$e" "export failed: see $OUT/logs/prepare-onnx.log"; FAILED+=("$e"); done
fi

if [ "$OV_OK" = 1 ]; then
  say "OpenVINO, $THREADS threads"
  if "$OV_VENV/bin/python" "$HELPER" prepare-openvino "$MODEL" "$OUT/openvino-model" "$OUT/calib.jsonl" \
      > "$OUT/logs/prepare-openvino.log" 2>&1; then
    grep '^bench:' "$OUT/logs/prepare-openvino.log" || true
    run_engine "$OV_VENV" ov-default
    run_engine "$OV_VENV" ov-f32
    run_engine "$OV_VENV" ov-int8
  else
    echo "bench: the OpenVINO export failed; the end of $OUT/logs/prepare-openvino.log:" >&2
    tail -n 8 "$OUT/logs/prepare-openvino.log" >&2
    for e in ov-default ov-f32 ov-int8; do note "$e" "export failed: see $OUT/logs/prepare-openvino.log"; FAILED+=("$e"); done
  fi
else
  for e in ov-default ov-f32 ov-int8; do note "$e" "not run: $OV_VENV did not install"; FAILED+=("$e"); done
fi

"$ONNX_VENV/bin/python" "$HELPER" report "$OUT" "$THREADS" "$N" "$CALIB_N"
echo
say "done; table in $OUT/table.md, figures in $OUT/results.json"
if [ "${#FAILED[@]}" -gt 0 ]; then
  die "no figure for: ${FAILED[*]}"
fi
