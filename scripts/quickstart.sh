#!/usr/bin/env bash
# Fresh machine to first answers: fetch the model, build papersim, build a
# library from the bundled sample of 1,000 real arXiv papers, run two queries.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-model.sh
cargo build --release
bin=target/release/papersim
lib=libraries/arxiv-sample
"$bin" build --corpus data/arxiv-sample.jsonl.gz --library "$lib"
echo
echo '$ papersim search --library '"$lib"' "self-supervised learning for medical image segmentation" -k 5'
"$bin" search --library "$lib" "self-supervised learning for medical image segmentation" -k 5
echo
echo '$ papersim similar --library '"$lib"' 1812.06145 -k 5'
"$bin" similar --library "$lib" 1812.06145 -k 5
