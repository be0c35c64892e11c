#!/usr/bin/env bash
# Prints figures for pg_salesforce under a connection pool's load: pgbench
# with 8 clients for 60 s (by default), nine point queries to one small
# insert through foreign tables, while the sync worker keeps 3 objects
# copied every second. Reports transactions per second, failed transactions
# and aborted clients, counted API requests per transaction (sfsim's log,
# the worker's polls included), and the backends' private memory (RssAnon)
# early in the run and at its end.
# Usage: bench/load.sh [SECONDS [CLIENTS]]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
seconds=${1:-60}
clients=${2:-8}
dir=/tmp/pg_salesforce-bench-load

bench_cluster "$dir" "shared_preload_libraries = 'pg_salesforce'" "salesforce.sync_naptime = 1"
start_sfsim target/release/sfsim --seed demo --daily-limit 1000000000
setup_org bench "contact, lead"
for object in Account Contact Opportunity; do
  sql -q -c "SET client_min_messages = warning" \
    -c "SELECT salesforce.sync_enable('org', '$object', every => '1 second')" >/dev/null
done
sql -q -c "CREATE TABLE contact_ids AS SELECT row_number() OVER (ORDER BY id) AS n, id FROM bench.contact"
ids=$(sql -tA -c "SELECT count(*) FROM contact_ids")
for _ in $(seq 600); do
  [ "$(sql -tA -c "SELECT bool_and(stage = 'incremental') FROM salesforce.syncs")" = t ] && break
  sleep 0.5
done

cat >"$dir/point.sql" <<SQL
\set n random(1, $ids)
SELECT id AS contact_id FROM contact_ids WHERE n = :n \gset
SELECT last_name, email FROM bench.contact WHERE id = ':contact_id';
SQL
cat >"$dir/insert.sql" <<'SQL'
INSERT INTO bench.lead (last_name, company) VALUES ('Load', 'pgbench');
SQL
chmod 644 "$dir"/*.sql

counted() { curl -s "$SFSIM_URL/__sim/requests" | python3 -c 'import json,sys; print(sum(r["counted"] for r in json.load(sys.stdin)["requests"]))'; }
# Private memory of pgbench's backends, in kB, one line each.
memory() {
  for pid in $(sql -tA -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench'"); do
    awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true
  done
}

curl -s -X DELETE "$SFSIM_URL/__sim/requests"
c0=$(counted)
as_postgres "$PG_BIN/pgbench" -h "$PGHOST" -p "$PGPORT" -U postgres -n -M simple \
  -c "$clients" -j 2 -T "$seconds" -f "$dir/point.sql@9" -f "$dir/insert.sql@1" postgres \
  >"$dir/pgbench.log" 2>&1 &
bench=$!
sleep 5
early=$(memory)
sleep $((seconds - 8))
late=$(memory)
status=0
wait "$bench" || status=$?
c1=$(counted)

cat "$dir/pgbench.log" | grep -E "^(number of|tps|latency average|number of failed)" || true
python3 - "$dir/pgbench.log" "$status" "$((c1 - c0))" "$early" "$late" <<'PY'
import re, sys
log, status, requests, early, late = open(sys.argv[1]).read(), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
def grab(pattern, default="0"):
    m = re.search(pattern, log)
    return m.group(1) if m else default
done = int(grab(r"number of transactions actually processed: (\d+)"))
failed = int(grab(r"number of failed transactions: (\d+)"))
aborted = len(re.findall(r"client \d+ aborted", log))
tps = float(grab(r"tps = ([\d.]+)"))
kb = lambda s: [int(x) for x in s.split()]
e, l = kb(early), kb(late)
print()
print(f"transactions            {done}  ({tps:.1f} per second)")
print(f"failed transactions     {failed}, aborted clients {aborted}, pgbench exit {status}")
print(f"counted API requests    {requests}  ({requests / max(done, 1):.3f} per transaction, the worker's polls included)")
if e and l:
    print(f"backend RssAnon, kB     at 5 s: mean {sum(e)/len(e):.0f} (max {max(e)}); at the end: mean {sum(l)/len(l):.0f} (max {max(l)})")
    print(f"memory ratio end/start  {sum(l)/sum(e):.3f}")
PY
