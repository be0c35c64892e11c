#!/usr/bin/env bash
# Prints figures for a sync backfill of N Contacts (CALL salesforce.sync_now):
# rows per second, the ratio to COPY of the same rows from a CSV file into an
# identical table in the same run, and the API requests used.
# Usage: bench/sync_backfill.sh [N ...]   (default: 100000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
sizes=("$@")
[ $# -gt 0 ] || sizes=(100000 1000000)

dir=/tmp/pg_salesforce-bench-sync
bench_cluster "$dir" "shared_buffers = '256MB'" "max_wal_size = '4GB'"
seconds() { sql -tA -c "SELECT extract(epoch FROM clock_timestamp())"; }

printf '%-10s %10s %10s %12s %12s %10s %14s\n' rows sync_s rows/s copy_s copy_rows/s ratio requests/100k
for n in "${sizes[@]}"; do
  start_sfsim target/release/sfsim --seed empty --records "Contact=$n" --daily-limit 1000000000
  sql -q -c "SET client_min_messages = warning" -c "DROP EXTENSION IF EXISTS pg_salesforce CASCADE" -c "DROP SCHEMA IF EXISTS bench, org, copied CASCADE"
  setup_org bench contact
  sql -q -c "ALTER SERVER org OPTIONS (ADD max_requests_per_day '1000000000')" -c "SET client_min_messages = warning" -c "SELECT salesforce.sync_enable('org', 'Contact')" >/dev/null
  t0=$(seconds)
  sql -q -c "CALL salesforce.sync_now('org', 'Contact')" >/dev/null
  t1=$(seconds)
  requests=$(sql -tA -c "SELECT api_requests FROM salesforce.sync_runs ORDER BY id DESC LIMIT 1")
  csv=$dir/contacts.csv
  sql -q -c "COPY (SELECT * FROM org.contact) TO '$csv' CSV"
  sql -q -c "CREATE SCHEMA copied" -c "CREATE TABLE copied.contact (LIKE org.contact INCLUDING ALL)"
  t2=$(seconds)
  sql -q -c "COPY copied.contact FROM '$csv' CSV"
  t3=$(seconds)
  python3 - "$n" "$t0" "$t1" "$t2" "$t3" "$requests" <<'PY'
import sys
n, t0, t1, t2, t3, req = int(sys.argv[1]), *map(float, sys.argv[2:6]), int(sys.argv[6])
s, c = t1 - t0, t3 - t2
print(f"{n:<10} {s:10.1f} {n/s:10.0f} {c:12.2f} {n/c:12.0f} {s/c:9.1f}x {req*100000/n:14.0f}")
PY
  stop_sfsim
done
