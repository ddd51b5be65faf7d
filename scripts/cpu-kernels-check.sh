#!/usr/bin/env bash
# Every x86 CPU kernel path this machine runs, forced one by one through
# PAPERSIM_ISA, at each precision: the reference texts embedded and
# compared with sentence-transformers (f32 and bf16: bar 0.9999) and int8
# with the same path's f32 (bar 0.997), then docs/s on arXiv abstracts for
# the paths that matter for speed (amx and avx512-bf16). Made for a machine
# with AMX (a lent GPU machine's host Xeon: scripts/gpu-check.sh runs it),
# works on any x86 CPU: a path the CPU lacks is listed as such.
#
#   scripts/cpu-kernels-check.sh PAPERSIM MODEL_DIR REFERENCE.jsonl CORPUS OUT_DIR
#
# Writes OUT_DIR/kernels.md (parity table, then speed table) and prints it.
# CPU_CHECK_N (default 300) abstracts, CPU_CHECK_THREADS (default 2) threads.
set -euo pipefail
[ $# -eq 5 ] || { sed -n 2,14p "$0" >&2; exit 2; }
bin=$1 model=$2 refs=$3 corpus=$4 out=$5
n="${CPU_CHECK_N:-300}" threads="${CPU_CHECK_THREADS:-2}"
py="${PYTHON:-python3}"
mkdir -p "$out/vectors"
report="$out/kernels.md"
{
  echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "AMX flags: $(grep -o -w -E 'amx_(tile|int8|bf16)' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "date: $(date -u +%F)"
  echo
} > "$report"

paths=(amx avx512-bf16 avx512-vnni avx512 avx-vnni avx2)
ran=()
for isa in "${paths[@]}"; do
  for prec in f32 int8 bf16; do
    if ! PAPERSIM_ISA=$isa "$bin" embed "$refs" --model "$model" --precision "$prec" \
      --output "$out/vectors/$isa-$prec.jsonl" 2> "$out/vectors/$isa-$prec.err"; then
      echo "$isa $prec: $(tail -n 1 "$out/vectors/$isa-$prec.err")" | tee -a "$report"
      continue 2
    fi
  done
  ran+=("$isa")
done

"$py" - "$refs" "$out/vectors" "${ran[@]}" <<'PY' | tee -a "$report"
import json, math, sys
refs, folder, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
def load(path):
    return {r["id"]: r["embedding"] for r in map(json.loads, open(path))}
def cos(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 1.0 if na == nb else 0.0
st = load(refs)
runs = {(p, prec): load(f"{folder}/{p}-{prec}.jsonl") for p in paths for prec in ("f32", "bf16", "int8")}
# embed skips the empty and blank texts (reported on its stderr).
ids = [i for i in st if all(i in v for v in runs.values())]
print(f"\n{len(ids)} of {len(st)} reference texts (embed skips the empty ones); min cosine (bar):\n")
print("| path | f32 vs ST (0.9999) | bf16 vs ST (0.9999) | int8 vs f32 (0.997) |")
print("|---|---|---|---|")
fails = 0
for p in paths:
    v = {prec: runs[(p, prec)] for prec in ("f32", "bf16", "int8")}
    f32 = min(cos(v["f32"][i], st[i]) for i in ids)
    bf16 = min(cos(v["bf16"][i], st[i]) for i in ids)
    int8 = min(cos(v["int8"][i], v["f32"][i]) for i in ids)
    ok = f32 >= 0.9999 and bf16 >= 0.9999 and int8 >= 0.997
    fails += not ok
    print(f"| {p} | {f32:.6f} | {bf16:.6f} | {int8:.6f} |{'' if ok else ' FAILS'}")
print(f"\n{'every path meets its bars' if not fails else f'{fails} path(s) FAIL'}")
PY

{
  echo
  echo "docs/s, first $n abstracts of $(basename "$corpus"), PAPERSIM_THREADS=$threads:"
  echo
} | tee -a "$report"
for isa in amx avx512-bf16; do
  [[ " ${ran[*]} " == *" $isa "* ]] || continue
  echo "PAPERSIM_ISA=$isa" | tee -a "$report"
  PAPERSIM_ISA=$isa PAPERSIM_THREADS=$threads "$bin" bench embed --model "$model" \
    --corpus "$corpus" -n "$n" --precision f32,int8,bf16 | tee -a "$report"
done
