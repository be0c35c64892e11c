#!/usr/bin/env bash
# Prints figures for the worker polling many customer orgs: sfsim serves N
# orgs (Account, Contact, Lead: 20 records each), adding DELAY ms to every
# request; each org is a server with three syncs every second, default
# budgets, no CDC. For each N:
#  - the idle cycle time: seconds between two successful runs of one sync,
#    median over the syncs, nothing changing;
#  - counted API requests per org per cycle (sfsim's request logs);
#  - latency from an edit in a random org until it is in the copy, p50/p99;
#  - the same for healthy orgs with 10% of orgs hung and 10% answering 503;
#  - the worker's CPU seconds and private memory (RssAnon), early and at the end;
#  - with SOAK=M, then M minutes more: every other minute 10% of orgs hung
#    and 10% answering 503, a few edits a minute, the worker's RssAnon each
#    minute (the memory over a long run).
# Usage: bench/many_orgs.sh [N ...]   (default: 10 100 1000; DELAY=100, EDITS=40, SOAK=0)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(10 100 1000)
delay=${DELAY:-100}
edits=${EDITS:-40}
soak=${SOAK:-0}
dir=/tmp/pg_salesforce-bench-many-orgs

quietly cargo pgrx install --release --pg-config "$PG_BIN/pg_config"
cargo build --release -q -p sfsim
sim() { local k=$1 m=$2 p=$3; shift 3; curl -sf -X "$m" "$SFSIM_URL/__sim/orgs/$k/$p" -H 'Content-Type: application/json' "$@"; }
worker_pid() { sql -tA -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_salesforce sync'"; }
# The worker's own memory: RssAnon (VmRSS also counts the shared buffers it touched).
rss_mib() { awk '/^RssAnon/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$1/stat"; }
counted() { # counted requests of orgs 1..N, eight orgs at a time
  seq "$1" | xargs -P 8 -I{} curl -sf "$SFSIM_URL/__sim/orgs/{}/requests" -o "$dir-requests-{}.json"
  python3 -c 'import json, sys; print(sum(r["counted"] for k in range(1, int(sys.argv[2]) + 1) for r in json.load(open(f"{sys.argv[1]}-requests-{k}.json"))["requests"]))' "$dir" "$1"
  rm -f "$dir"-requests-*.json
}
# latency ORGS...: edits a Lead's Company in random orgs among those given,
# one at a time at a random moment, and prints each edit's latency.
latency() {
  for _ in $(seq "$edits"); do
    local k=${@:$((RANDOM % $# + 1)):1}
    local id value start
    id=$(sql -tA -c "SELECT id FROM o$k.lead ORDER BY random() LIMIT 1")
    value="edit-$RANDOM$RANDOM"
    sleep "$(python3 -c 'import random; print(random.uniform(0, 1.5))')"
    start=$(date +%s.%N)
    sim "$k" PATCH "records/Lead/$id" -d "{\"Company\": \"$value\"}" >/dev/null
    for _ in $(seq 600); do
      [ "$(sql -tA -c "SELECT company = '$value' FROM o$k.lead WHERE id = '$id'")" = t ] && break
      sleep 0.05
    done
    python3 -c "print($(date +%s.%N) - $start)"
  done
}
percentiles() { python3 -c 'import sys, statistics as s; v = sorted(float(x) for x in sys.stdin.read().split()); q = lambda p: v[min(len(v) - 1, int(p * len(v)))]; print(f"p50 {q(0.5):.2f} s, p99 {q(0.99):.2f} s, slowest {v[-1]:.2f} s")'; }

printf '%-6s %-10s %-14s %-36s %-36s %s\n' orgs cycle requests/org/cycle "edit latency" "edit latency, 10% hung, 10% 503" "worker CPU s / RssAnon MiB"
for n in "${sizes[@]}"; do
  start_cluster "$dir" "shared_preload_libraries = 'pg_salesforce'" "salesforce.sync_naptime = 1" \
    "salesforce.max_syncs_per_role = 100000" "max_connections = 50"
  trap 'stop_cluster "$dir"; stop_sfsim' EXIT
  start_sfsim target/release/sfsim --seed empty --records Account=20,Contact=20,Lead=20 --orgs "$n" --delay-ms "$delay"
  sql -q -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_salesforce"
  # Four sessions connect the orgs side by side (sync_enable describes each object).
  setup=()
  for part in 0 1 2 3; do
    for k in $(seq "$n"); do
      [ $((k % 4)) = "$part" ] || continue
      user=admin@sfsim.example; [ "$k" = 1 ] || user=admin@org$k.sfsim.example
      echo "CREATE SERVER o$k FOREIGN DATA WRAPPER salesforce OPTIONS (login_url '$SFSIM_URL');
CREATE USER MAPPING FOR postgres SERVER o$k OPTIONS (grant_type 'password', client_id 'sfsim-client-id', client_secret 'sfsim-client-secret', username '$user', password 'sfsim-password', security_token 'SFSIMTOKEN');
SELECT salesforce.sync_enable('o$k', 'Account', every => '1 second');
SELECT salesforce.sync_enable('o$k', 'Contact', every => '1 second');
SELECT salesforce.sync_enable('o$k', 'Lead', every => '1 second');"
    done | sql -q -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -f - >/dev/null &
    setup+=($!)
  done
  wait "${setup[@]}"
  for _ in $(seq 3600); do
    [ "$(sql -tA -c "SELECT bool_and(stage = 'incremental') FROM salesforce.syncs")" = t ] && break
    sleep 1
  done
  pid=$(worker_pid); cpu0=$(cpu_s "$pid"); rss0=$(rss_mib "$pid")
  runs() { sql -tA -c "SELECT count(*) FROM salesforce.sync_runs WHERE status = 'succeeded' AND kind = 'incremental'"; }
  c0=$(counted "$n"); r0=$(runs); t0=$(date +%s.%N)
  sleep 30
  r1=$(runs); t1=$(date +%s.%N); c1=$(counted "$n")
  cycle=$(python3 -c "runs = ($r1 - $r0) / (3 * $n); print(f'{($t1 - $t0) / runs:.1f} s' if runs else 'no cycle')")
  per_org=$(python3 -c "runs = ($r1 - $r0) / (3 * $n); print(f'{($c1 - $c0) / $n / runs:.2f}' if runs else '-')")
  healthy=$(latency $(seq "$n") | percentiles)
  # 10% hung, 10% answering 503, the healthy 80% edited.
  tenth=$(( (n + 9) / 10 ))
  for k in $(seq 1 "$tenth"); do sim "$k" POST faults/hang -d '{"on": true}' >/dev/null; done
  for k in $(seq $((tenth + 1)) $((2 * tenth))); do
    sim "$k" PATCH faults -d '{"server_unavailable": 1.0, "unable_to_lock_row": 0.0, "drop_connection": 0.0, "seed": 1}' >/dev/null
  done
  sleep 10
  faulty=$(latency $(seq $((2 * tenth + 1)) "$n") | percentiles)
  cpu1=$(cpu_s "$pid"); rss1=$(rss_mib "$pid")
  printf '%-6s %-10s %-14s %-36s %-36s %s\n' "$n" "$cycle" "$per_org" "$healthy" "$faulty" \
    "$(python3 -c "print(round($cpu1 - $cpu0, 1))") / $rss0 -> $rss1"
  if [ "$soak" -gt 0 ]; then
    series=()
    for minute in $(seq "$soak"); do
      faults=off; [ $((minute % 2)) = 0 ] && faults=on
      for k in $(seq 1 "$tenth"); do
        sim "$k" POST faults/hang -d "{\"on\": $([ $faults = on ] && echo true || echo false)}" >/dev/null
      done
      for k in $(seq $((tenth + 1)) $((2 * tenth))); do
        sim "$k" PATCH faults -d "{\"server_unavailable\": $([ $faults = on ] && echo 1.0 || echo 0.0), \"seed\": 1}" >/dev/null
      done
      end=$(( $(date +%s) + 60 ))
      edits=3 latency $(seq $((2 * tenth + 1)) "$n") >/dev/null
      while [ "$(date +%s)" -lt "$end" ]; do sleep 1; done
      series+=("$(rss_mib "$pid")")
      echo "  soak minute $minute (faults $faults): RssAnon $(rss_mib "$pid") MiB, CPU $(cpu_s "$pid") s" >&2
    done
    echo "  RssAnon each minute of the soak (MiB): ${series[*]}"
    python3 -c 'import sys; v=[float(x) for x in sys.argv[1:]]; h=len(v)//2; print(f"  soak: {v[0]:.1f} MiB after minute 1, {v[h-1]:.1f} at minute {h}, {v[-1]:.1f} at minute {len(v)}; second half {v[-1]-v[h-1]:+.1f} MiB")' "${series[@]}"
    [ "$(worker_pid)" = "$pid" ] || echo "  the worker restarted during the soak"
  fi
  stop_cluster "$dir"; stop_sfsim; trap - EXIT
done
