#!/usr/bin/env bash
# Prints figures for inserting N rows into a Salesforce table: API requests
# and rows per second, in each write mode, then in statement mode again with
# Contact synced, so each write also reaches the local copy. Collections
# only (bulk_threshold '0'): bench/bulk_write.sh measures Bulk ingest.
# Usage: bench/insert.sh [N ...]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
sizes=("$@")
[ $# -gt 0 ] || sizes=(1000 10000)

bench_cluster /tmp/pg_salesforce-bench-insert
start_sfsim target/release/sfsim --seed empty --daily-limit 1000000000
setup_org sf contact
# sObject Collections at every size: bench/bulk_write.sh measures Bulk ingest.
sql -q -c "ALTER SERVER org OPTIONS (ADD bulk_threshold '0')"
# Data API calls on sObject Collections: the writes, and write-through's read-backs.
requests() { curl -s "$SFSIM_URL/__sim/requests" | python3 -c 'import json,sys; print(sum("/composite/sobjects" in r["path"] for r in json.load(sys.stdin)["requests"]))'; }

insert_rows() {  # label write_mode
  local label=$1 mode=$2 n before secs requests
  for n in "${sizes[@]}"; do
    before=$(requests)
    secs=$(sql -tA <<SQL
SET salesforce.write_mode = '$mode';
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
INSERT INTO sf.contact (first_name, last_name, email, user_id__c, lifetime_value__c, birthdate)
  SELECT 'Bench', 'Row ' || i, 'bench-$label-$n-' || i || '@example.net', 'bench-$label-$n-' || i, i * 1.5, date '1980-01-01' + i % 9000
  FROM generate_series(1, $n) i;
SELECT round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 2);
SQL
)
    requests=$(( $(requests) - before ))
    python3 -c "n=$n; s=$secs; print(f'{n:<8} {\"$label\":<14} {s:>10} {$requests:>12} {n/s:>10.0f}')"
  done
}

printf '%-8s %-14s %10s %12s %10s\n' rows mode seconds requests rows/s
insert_rows statement statement
insert_rows commit commit
sql -q -c "SET client_min_messages = warning" -c "SELECT salesforce.sync_enable('org', 'Contact', target => 'copies.contact')" >/dev/null
sql -q -c "CALL salesforce.sync_now('org', 'Contact')" >/dev/null
insert_rows write-through statement
