#!/usr/bin/env bash
# Prints figures for a sync backfill of N Contacts with every field
# (CALL salesforce.sync_now), through Bulk API 2.0 and through REST: rows per
# second, the ratio to COPY of the same rows from a CSV file into an
# identical table in the same run, the API requests per 100,000 rows, and
# the backend's peak memory.
# Usage: bench/sync_backfill.sh [N ...]   (default: 100000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
sizes=("$@")
[ $# -gt 0 ] || sizes=(100000 1000000)

dir=/tmp/pg_salesforce-bench-sync
bench_cluster "$dir" "shared_buffers = '256MB'" "max_wal_size = '4GB'"
seconds() { sql -tA -c "SELECT extract(epoch FROM clock_timestamp())"; }

printf '%-10s %-5s %9s %9s %9s %12s %9s %15s %9s\n' rows api sync_s rows/s copy_s copy_rows/s vs_copy requests/100k peak_MiB
for n in "${sizes[@]}"; do
  start_sfsim target/release/sfsim --seed empty --records "Contact=$n" --daily-limit 1000000000
  for api in bulk rest; do
    sql -q -c "SET client_min_messages = warning" -c "DROP EXTENSION IF EXISTS pg_salesforce CASCADE" -c "DROP SCHEMA IF EXISTS bench, org, copied CASCADE"
    setup_org bench contact
    sql -q -c "ALTER SERVER org OPTIONS (ADD max_requests_per_day '1000000000')" -c "SET client_min_messages = warning" \
        -c "SELECT salesforce.sync_enable('org', 'Contact', options => '{\"api\": \"$api\"}')" >/dev/null
    # One session: the backfill, then the backend's own peak resident memory.
    out=$(sql -tA -F' ' <<'SQL'
\set QUIET on
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
CALL salesforce.sync_now('org', 'Contact') \g /dev/null
SELECT extract(epoch FROM clock_timestamp()) - :t0,
       (SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'VmHWM:\s+(\d+)'))[1]::bigint / 1024);
SQL
)
    read -r secs peak <<<"$out"
    read -r kind requests rows < <(sql -tA -F' ' -c "SELECT kind, api_requests, rows_upserted FROM salesforce.sync_runs ORDER BY id DESC LIMIT 1")
    [ "$kind" = backfill ] && [ "$rows" = "$n" ] || { echo "the $api backfill copied $rows rows in a $kind run" >&2; exit 1; }
    csv=$dir/contacts.csv
    sql -q -c "COPY (SELECT * FROM org.contact) TO '$csv' CSV"
    sql -q -c "CREATE SCHEMA copied" -c "CREATE TABLE copied.contact (LIKE org.contact INCLUDING ALL)"
    t2=$(seconds)
    sql -q -c "COPY copied.contact FROM '$csv' CSV"
    t3=$(seconds)
    python3 - "$n" "$api" "$secs" "$t2" "$t3" "$requests" "$peak" <<'PY'
import sys
n, api, s, t2, t3, req, peak = int(sys.argv[1]), sys.argv[2], *map(float, sys.argv[3:6]), int(sys.argv[6]), sys.argv[7]
c = t3 - t2
print(f"{n:<10} {api:<5} {s:9.1f} {n/s:9.0f} {c:9.2f} {n/c:12.0f} {c/s:8.2f}x {req*100000/n:15.1f} {peak:>9}")
PY
  done
  stop_sfsim
done
