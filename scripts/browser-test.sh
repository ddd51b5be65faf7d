#!/usr/bin/env bash
# The search page in a real browser: Debian's headless Chromium driven by
# playwright-core (tests/browser). Installs what is missing (chromium via
# apt-get, playwright-core via npm ci), builds papersim and a 200-paper
# library from the bundled sample, serves it on a free loopback port with an
# API key, loads the page, gives it the key (a wrong one first), searches,
# clicks "more like this", builds a related-work list, and stops the server.
# Leaves a screenshot in target/browser-test.png.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# Only what is missing: a machine whose Node.js comes from elsewhere (with
# its own npm) cannot take Debian's npm package beside it.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

[ -f models/all-MiniLM-L6-v2/model.safetensors ] || scripts/fetch-model.sh
cargo build --release --quiet
bin=target/release/papersim

work=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

"$bin" build --corpus data/arxiv-sample.jsonl.gz --library "$work/lib" --limit 200 >/dev/null
# Port 0: the kernel picks a free port; the server prints the address it got.
key=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
PAPERSIM_API_KEY=$key "$bin" serve --library "$work/lib" --addr 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
pid=$!
url=
for _ in $(seq 1 600); do
    url=$(sed -n 's/.* on \(http:\/\/[0-9.:]*\).*/\1/p' "$work/serve.out")
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/serve.err" >&2; echo "browser-test: the server did not start" >&2; exit 1; }
    sleep 0.1
done
[ -n "$url" ] || { echo "browser-test: no address from the server" >&2; exit 1; }
echo "browser-test: server at $url"

BASE_URL="$url" API_KEY="$key" node tests/browser/page.test.mjs target/browser-test.png

kill -TERM "$pid"
wait "$pid"
pid=
echo "browser-test: server stopped cleanly"
