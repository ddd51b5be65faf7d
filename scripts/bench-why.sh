#!/usr/bin/env bash
# Times `POST /search` with and without `"why": true` against `papersim serve`
# on a library: 20 different queries, each run twice in a row (the second
# finds the papers' sentence vectors cached), and prints the p50 and max of
# each kind in milliseconds.
#
#   scripts/bench-why.sh LIBRARY [PAPERSIM_BINARY]
set -euo pipefail
lib=${1:?usage: scripts/bench-why.sh LIBRARY [PAPERSIM_BINARY]}
bin=${2:-target/release/papersim}
port=$((20000 + RANDOM % 20000))
"$bin" serve --library "$lib" --addr "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.1
done
queries=(
  "self-supervised learning for medical image segmentation"
  "graph neural networks for molecule property prediction"
  "reinforcement learning for robot manipulation"
  "transformer language models for code generation"
  "adversarial robustness of image classifiers"
  "federated learning with differential privacy"
  "speech recognition with end-to-end neural networks"
  "knowledge distillation for model compression"
  "object detection in autonomous driving"
  "contrastive learning of visual representations"
  "neural machine translation for low-resource languages"
  "generative adversarial networks for image synthesis"
  "explainable artificial intelligence for healthcare"
  "quantum algorithms for optimization"
  "recommender systems with implicit feedback"
  "time series forecasting with deep learning"
  "question answering over knowledge graphs"
  "sparse matrix computations on GPUs"
  "bayesian optimization of hyperparameters"
  "point cloud segmentation for 3D scenes"
)
time_ms() { # $1: query, $2: why
  curl -s -o /dev/null -w '%{time_total}\n' -H 'content-type: application/json' \
    -d "{\"query\": \"$1\", \"k\": 10, \"why\": $2}" "http://127.0.0.1:$port/search" |
    awk '{printf "%.1f\n", $1 * 1000}'
}
p50() { sort -n | awk '{a[NR]=$1} END {printf "p50 %.1f ms, max %.1f ms (n=%d)", a[int((NR+1)/2)], a[NR], NR}'; }
plain=() first=() again=()
for q in "${queries[@]}"; do plain+=("$(time_ms "$q" false)"); done
for q in "${queries[@]}"; do
  first+=("$(time_ms "$q" true)")
  again+=("$(time_ms "$q" true)")
done
echo "without why:             $(printf '%s\n' "${plain[@]}" | p50)"
echo "why, first time asked:   $(printf '%s\n' "${first[@]}" | p50)"
echo "why, same query again:   $(printf '%s\n' "${again[@]}" | p50)"
