#!/usr/bin/env bash
# Prints figures for full scans of N Contacts through the foreign table:
# rows per second, API requests per 10,000 rows, the backend's peak memory,
# and the speed relative to jsforce's autoFetch reading the same fields of
# the same records from the same sfsim in the same run.
# Usage: bench/read_scan.sh [N ...]   (default: 100000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
sizes=("$@")
[ $# -gt 0 ] || sizes=(100000 1000000)

bench_cluster /tmp/pg_salesforce-bench "shared_buffers = '128MB'"
# Query requests (first pages and nextRecordsUrl pages) in sfsim's log.
query_requests() { curl -s "$SFSIM_URL/__sim/requests" | python3 -c 'import json,sys; print(sum("/query" in r["path"] for r in json.load(sys.stdin)["requests"]))'; }

printf '%-10s %12s %10s %16s %14s %14s %10s\n' rows seconds rows/s requests/10k peak_MiB jsforce_rows/s vs_jsforce
for n in "${sizes[@]}"; do
  start_sfsim target/release/sfsim --seed empty --records "Contact=$n" --daily-limit 1000000000
  sql -q -c "SET client_min_messages = warning" -c "DROP EXTENSION IF EXISTS pg_salesforce CASCADE" -c "DROP SCHEMA IF EXISTS bench CASCADE"
  setup_org bench contact
  before=$(query_requests)
  # One session: the login, the timed scan, then the backend's own peak resident memory.
  out=$(sql -tA -F' ' <<'SQL'
\set QUIET on
SET salesforce.pushdown_aggregates = off;
-- Planning logs in and describes Contact, as jsforce logs in before its clock starts.
EXPLAIN SELECT count(*) FROM bench.contact \g /dev/null
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
-- count(column) makes the scan convert every field, as jsforce parses every
-- record, and adds as little of its own as jsforce's record counter.
SELECT count(*), count(email), count(first_name), count(last_name), count(phone), count(title), count(account_id),
       count(birthdate), count(lifetime_value__c), count(system_modstamp) FROM bench.contact \g /dev/null
SELECT round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 2),
       (SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'VmHWM:\s+(\d+)'))[1]::bigint / 1024);
SQL
)
  after=$(query_requests)
  read -r secs peak <<<"$out"
  requests=$((after - before))
  read -r js_rows js_secs < <(node bench/jsforce_scan.mjs "$SFSIM_URL" \
    "SELECT Id, Email, FirstName, LastName, Phone, Title, AccountId, Birthdate, Lifetime_Value__c, SystemModstamp FROM Contact")
  [ "$js_rows" = "$n" ] || { echo "jsforce read $js_rows records of $n" >&2; exit 1; }
  python3 -c "n=$n; s=$secs; r=$requests; j=$js_secs; print(f'{n:<10} {s:>12} {n/s:>10.0f} {r*10000/n:>16.1f} {$peak:>14} {n/j:>14.0f} {j/s:>9.2f}x')"
  stop_sfsim
done
