#!/usr/bin/env bash
# Prints figures for the sync worker's change polling against sfsim's demo org:
#  1. counted API requests per poll cycle with nothing changing, for 1, 5 and
#     10 synced objects (sfsim's request log counts them);
#  2. the steady-state latency of edits made in Salesforce until they are in
#     the copy, for 10 objects at a daily budget (default 100,000) with the
#     pacing bucket drained, next to the formula for a poller that spends one
#     request per object and cycle (Sequin's): objects × 86,400 / budget.
# Usage: bench/poll_cost.sh [BUDGET [EDITS]]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
budget=${1:-100000}
edits=${2:-40}
objects=(Account Contact Opportunity Case Campaign Document Lead Task Invoice__c User)

bench_cluster /tmp/pg_salesforce-bench-poll "shared_preload_libraries = 'pg_salesforce'" \
  "salesforce.sync_naptime = 1"
start_sfsim target/release/sfsim --seed demo --daily-limit 1000000000
setup_org bench account

counted() { curl -s "$SFSIM_URL/__sim/requests" | python3 -c 'import json,sys; print(sum(r["counted"] for r in json.load(sys.stdin)["requests"]))'; }
runs() { sql -tA -c "SELECT count(*) FROM salesforce.sync_runs WHERE kind = 'incremental' AND status = 'succeeded'"; }
# Waits until every enabled sync has finished its backfill and one incremental run since.
settled() {
  for _ in $(seq 600); do
    [ "$(sql -tA -c "SELECT count(*) FILTER (WHERE s.stage = 'incremental' AND EXISTS (SELECT 1 FROM salesforce.sync_runs r WHERE r.sync_id = s.id AND r.kind = 'incremental' AND r.status = 'succeeded')) = count(*) FROM salesforce.syncs s WHERE enabled")" = t ] && return
    sleep 0.2
  done
  echo "the syncs did not settle" >&2; exit 1
}

echo "1. counted requests per poll cycle, nothing changing"
printf '%-8s %10s %10s %18s\n' objects cycles requests requests/cycle
enabled=0
for n in 1 5 10; do
  while [ "$enabled" -lt "$n" ]; do
    sql -q -c "SET client_min_messages = warning" \
      -c "SELECT salesforce.sync_enable('org', '${objects[$enabled]}', every => '1 second')" >/dev/null
    enabled=$((enabled + 1))
  done
  settled
  r0=$(runs); c0=$(counted)
  sleep 20
  r1=$(runs); c1=$(counted)
  python3 -c "n=$n; cycles=($r1-$r0)/n; req=$c1-$c0; print(f'{n:<8} {cycles:>10.1f} {req:>10} {req/cycles:>18.2f}')"
done

echo
echo "2. change latency, 10 objects, $budget requests a day, the bucket drained"
sql -q -c "ALTER SERVER org OPTIONS (ADD max_requests_per_day '$budget')"
sql -q -c "UPDATE salesforce.pacing SET tokens = 0, refilled_at_ms = (extract(epoch FROM clock_timestamp()) * 1000)::bigint"
sleep 10
# An edit per object in turn, at a random moment of the cycle (up to 3 s
# after the last edit arrived, so not just after a poll): the control API
# edits without spending the org's requests; the copy is watched until it has it.
declare -A table=([Account]=account [Contact]=contact [Opportunity]=opportunity [Case]=case [Campaign]=campaign)
declare -A field=([Account]=Description [Contact]=Title [Opportunity]=NextStep [Case]=Subject [Campaign]=Name)
declare -A column=([Account]=description [Contact]=title [Opportunity]=next_step [Case]=subject [Campaign]=name)
edited=(Account Contact Opportunity Case Campaign)
c0=$(counted); t_start=$(date +%s.%N)
latencies=()
for i in $(seq "$edits"); do
  object=${edited[$((i % ${#edited[@]}))]}
  id=$(sql -tA -c "SELECT id FROM org.\"${table[$object]}\" ORDER BY id OFFSET $((i % 20)) LIMIT 1")
  marker="edit $i $RANDOM"
  sleep "$((RANDOM % 3)).$((RANDOM % 10))"
  start=$(date +%s.%N)
  curl -s -X PATCH "$SFSIM_URL/__sim/records/$object/$id" -H 'Content-Type: application/json' \
    -d "{\"${field[$object]}\": \"$marker\"}" >/dev/null
  until [ "$(sql -tA -c "SELECT count(*) FROM org.\"${table[$object]}\" WHERE id = '$id' AND ${column[$object]} = '$marker'")" = 1 ]; do
    sleep 0.02
  done
  latencies+=("$(echo "$(date +%s.%N) - $start" | bc)")
done
c1=$(counted); t_end=$(date +%s.%N)
python3 - "$budget" "$c0" "$c1" "$t_start" "$t_end" "${latencies[@]}" <<'PY'
import sys, statistics
budget, c0, c1, t0, t1 = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
lat = sorted(float(x) for x in sys.argv[6:])
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
rate = (c1 - c0) / (t1 - t0)
sequin = 10 * 86400 / budget
print(f"edits {len(lat)}: p50 {p(0.5):.2f} s, p99 {p(0.99):.2f} s, max {lat[-1]:.2f} s, mean {statistics.mean(lat):.2f} s")
print(f"requests per second while measuring: {rate:.3f} (budget allows {budget / 86400:.3f})")
print(f"one request per object and cycle (Sequin's formula, 10 x 86,400 / {budget:.0f}): {sequin:.2f} s per cycle")
print(f"p50 latency / that cycle: {p(0.5) / sequin:.2f}; / the issue's 12 s: {p(0.5) / 12:.2f}")
PY
