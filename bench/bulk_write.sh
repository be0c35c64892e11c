#!/usr/bin/env bash
# Prints figures for large writes through a foreign table (Bulk API 2.0
# ingest), against sfsim, for each of SIZES rows (default 100,000 and
# 1,000,000): an INSERT, then an upsert by an external id of the same
# keys (every row updates). For each:
#  - the API requests counted by sfsim's request log;
#  - rows/s, and the speed against a local COPY of the same rows (the same
#    columns, from a file) in the same run: COPY's time / the write's time;
#  - the backend's peak memory: its private (anonymous) resident memory,
#    sampled every 20 ms while the statement runs, above what it held
#    before the statement.
# Usage: bench/bulk_write.sh   (SIZES="100000 1000000")
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
dir=/tmp/pg_salesforce-bench-bulk-write
bench_cluster "$dir"
start_sfsim "${CARGO_TARGET_DIR:-target}/release/sfsim" --seed empty --records Contact=10 --daily-limit 1000000000
# phases SEQ: where an ingest job's time went, from sfsim's request log
# (each entry stamped when answered): "upload,job,results" in seconds, from
# the job's create to its close (the CSV written and uploaded), to the poll
# that saw it complete (sfsim processing it, and the polls), to the last
# result read.
phases() {
  curl -sf "$SFSIM_URL/__sim/requests?since=$1" | python3 -c '
import datetime, json, re, sys
at = lambda r: datetime.datetime.strptime(r["at"], "%Y-%m-%dT%H:%M:%S.%f+0000").timestamp()
rs = [r for r in json.load(sys.stdin)["requests"] if "/jobs/ingest" in r["path"]]
create = next((r for r in rs if r["method"] == "POST"), None)
if not create:
    print("-"); sys.exit()
job = [r for r in rs if r["method"] == "PATCH"][0]["path"].rsplit("/", 1)[1]
close = next(r for r in rs if r["method"] == "PATCH")
polls = [r for r in rs if r["method"] == "GET" and r["path"].endswith(job)]
results = [r for r in rs if r["method"] == "GET" and re.search(r"(Results|records)$", r["path"])]
print("%.2f,%.2f,%.2f" % (at(close) - at(create), at(polls[-1]) - at(close), at(results[-1]) - at(polls[-1])))'
}
counted() { curl -sf "$SFSIM_URL/__sim/requests" | python3 -c 'import json, sys; print(sum(r["counted"] for r in json.load(sys.stdin)["requests"]))'; }
sql -q <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_salesforce;
CREATE SERVER sf FOREIGN DATA WRAPPER salesforce OPTIONS (login_url '$SFSIM_URL');
CREATE USER MAPPING FOR postgres SERVER sf OPTIONS (grant_type 'password', client_id 'sfsim-client-id',
  client_secret 'sfsim-client-secret', username 'admin@sfsim.example', password 'sfsim-password', security_token 'SFSIMTOKEN');
CREATE FOREIGN TABLE contact (last_name text, first_name text, email text, title text, user_id__c text)
  SERVER sf OPTIONS (object 'Contact');
CREATE FOREIGN TABLE contact_by_key (last_name text, first_name text, email text, title text, user_id__c text)
  SERVER sf OPTIONS (object 'Contact', upsert_key 'user_id__c');
CREATE TABLE rows_local (last_name text, first_name text, email text, title text, user_id__c text);
SQL

# run SQL: runs SQL in a fresh backend; prints its time (psql's \timing),
# the API requests counted meanwhile and the backend's peak in MiB.
run() {
  local out pid c0 c1 peak before client
  out=$(mktemp)
  c0=$(counted)
  seq0=$(curl -sf "$SFSIM_URL/__sim/requests" | python3 -c 'import json, sys; r = json.load(sys.stdin)["requests"]; print(r[-1]["seq"] if r else 0)')
  # A pause first, for the sampler to find the backend and its baseline.
  PGDATABASE="dbname=postgres application_name=bulk-bench" sql -c "SELECT pg_sleep(0.5)" -c '\timing on' -c "$1" >"$out" &
  client=$!
  for _ in $(seq 200); do
    pid=$(sql -tA -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'bulk-bench'")
    [ -n "$pid" ] && break
    sleep 0.01
  done
  before=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status")
  peak=$before
  while kill -0 "$client" 2>/dev/null; do
    now=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ "${now:-0}" -gt "$peak" ] && peak=$now
    sleep 0.02
  done
  wait "$client"
  c1=$(counted)
  echo "$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' "$out" | tail -1) $((c1 - c0)) $(( (peak - before) / 1024 )) $(phases "$seq0")"
  rm -f "$out"
}

for n in ${SIZES:-100000 1000000}; do
  sql -q -c "TRUNCATE rows_local" -c "INSERT INTO rows_local SELECT 'Bulk $n-' || g, 'Ada', 'ada-$n-' || g || '@example.com', 'Engineer', 'key-$n-' || g FROM generate_series(1, $n) g"
  sql -q -c "COPY rows_local TO '$dir/rows.csv' (FORMAT csv)"
  sql -q -c "CREATE TABLE copy_target (LIKE rows_local)"
  start=$(date +%s.%N)
  sql -q -c "COPY copy_target FROM '$dir/rows.csv' (FORMAT csv)"
  copy=$(python3 -c "print($(date +%s.%N) - $start)")
  sql -q -c "DROP TABLE copy_target"
  echo "$n rows; a local COPY of them: $(python3 -c "print(f'{$copy:.2f} s, {$n / $copy:,.0f} rows/s')")"
  for kind in insert upsert; do
    case $kind in
      insert) target=contact; title="title" ;;
      upsert) target=contact_by_key; title="'Upserted'" ;;
    esac
    read -r ms requests peak_mb phases <<<"$(run "INSERT INTO $target SELECT last_name, first_name, email, $title, user_id__c FROM rows_local")"
    took=$(python3 -c "print($ms / 1000)")
    python3 - "$kind" "$n" "$took" "$requests" "$peak_mb" "$copy" "$phases" <<'PY'
import sys
kind, n, took, requests, peak, copy = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
print(f"  {kind:<6}: {took:6.2f} s, {n / took:9,.0f} rows/s, {copy / took:.2f}x a local COPY; {requests} API requests; backend peak +{peak} MiB")
if sys.argv[7] != "-":
    upload, job, results = sys.argv[7].split(",")
    print(f"          the job: {upload} s to write and upload the CSV, {job} s until a poll saw it complete, {results} s to read its results")
PY
  done
done
