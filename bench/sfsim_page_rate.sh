#!/usr/bin/env bash
# Prints the rate at which sfsim serves query pages with the server pinned to
# one core and the client on another. Usage: bench/sfsim_page_rate.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
cargo build --release -q -p sfsim --bin sfsim --example page_rate
out=$(mktemp)
started=$(date +%s%N)
taskset -c 0 target/release/sfsim --listen 127.0.0.1:0 --seed empty --records "Contact=$N" --daily-limit 1000000000 > "$out" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$out"' EXIT
until [ -s "$out" ]; do sleep 0.1; done
echo "sfsim seeded $N contacts in $(( ($(date +%s%N) - started) / 1000000 )) ms"
taskset -c 1 target/release/examples/page_rate --url "$(head -n 1 "$out")"
