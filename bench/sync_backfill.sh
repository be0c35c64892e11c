#!/usr/bin/env bash
# Prints figures for a sync backfill of N Contacts with every field
# (CALL salesforce.sync_now), through Bulk API 2.0 and through REST: rows per
# second, the ratio to COPY of the same rows from a CSV file into an
# identical table in the same run, the API requests per 100,000 rows, and
# the backend's peak private memory (sampled every 0.2 s).
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
    # The backfill in one session; its backend's private memory (RssAnon:
    # shared buffers it touches are not its own) sampled while it runs.
    sql -q -c "CALL salesforce.sync_now('org', 'Contact')" >/dev/null &
    psql_pid=$!
    peak=0
    while kill -0 "$psql_pid" 2>/dev/null; do
      pid=$(sql -tA -c "SELECT pid FROM pg_stat_activity WHERE query LIKE 'CALL salesforce.sync_now%'" 2>/dev/null | head -1)
      kb=$([ -n "$pid" ] && awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      [ "${kb:-0}" -gt "$peak" ] && peak=$kb
      sleep 0.2
    done
    wait "$psql_pid"
    peak=$((peak / 1024))
    read -r kind requests rows secs < <(sql -tA -F' ' -c "SELECT kind, api_requests, rows_upserted, extract(epoch FROM finished_at - started_at) FROM salesforce.sync_runs ORDER BY id DESC LIMIT 1")
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
