#!/usr/bin/env bash
# Prints figures for queued writes (salesforce.enqueue), against sfsim:
#  - signups per second (a user row, and with it a queued Contact keyed by
#    an external id) against the same signups without the Contact, pgbench
#    with 4 clients, SIGNUPS each (default 5,000), ROUNDS rounds (3) with
#    each protocol;
#  - delivery: rows/s from commit until the last is delivered, and counted
#    API requests per 1,000 rows (sfsim's request log), for ROWS (20,000)
#    committed at once;
#  - latency from commit to Salesforce, p50/p99, for signups at 20/s;
#  - an outage of OUTAGE seconds (default 120: refused connections for the
#    first half, then a hang): signups per second in each half, against
#    the plain ones in the same half, and the time to drain the backlog
#    once it ends.
# Usage: bench/outbox.sh   (SIGNUPS=5000 ROUNDS=3 ROWS=20000 OUTAGE=120)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
signups=${SIGNUPS:-5000}
rows=${ROWS:-20000}
outage=${OUTAGE:-120}
dir=/tmp/pg_salesforce-bench-outbox

quietly cargo pgrx install --release --pg-config "$PG_BIN/pg_config"
cargo build --release -q -p sfsim
start_cluster "$dir" "shared_preload_libraries = 'pg_salesforce'" "salesforce.sync_naptime = 1" \
  "salesforce.worker_request_timeout = 5"
trap 'stop_cluster "$dir"; stop_sfsim' EXIT
start_sfsim "${CARGO_TARGET_DIR:-target}/release/sfsim" --seed empty --records Contact=10 --daily-limit 1000000000
counted() { curl -sf "$SFSIM_URL/__sim/requests" | python3 -c 'import json, sys; print(sum(r["counted"] for r in json.load(sys.stdin)["requests"]))'; }
sql -q <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_salesforce;
CREATE SERVER sf FOREIGN DATA WRAPPER salesforce OPTIONS (login_url '$SFSIM_URL', max_requests_per_day '1000000');
CREATE USER MAPPING FOR postgres SERVER sf OPTIONS (grant_type 'password', client_id 'sfsim-client-id',
  client_secret 'sfsim-client-secret', username 'admin@sfsim.example', password 'sfsim-password', security_token 'SFSIMTOKEN');
CREATE SCHEMA app;
CREATE TABLE app.users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL, created_at timestamptz DEFAULT now());
SQL
# A signup is one statement, its own transaction, with or without the
# queued Contact; numbers become text by a cast, not by ||'s inlined SQL
# function, in both.
cat > "$dir/plain.sql" <<'SQL'
\set r random(1, 2000000000)
INSERT INTO app.users (email) VALUES ('u' || :r::text || '@example.com') RETURNING id;
SQL
cat > "$dir/queued.sql" <<'SQL'
\set r random(1, 2000000000)
WITH u AS (INSERT INTO app.users (email) VALUES ('u' || :r::text || '@example.com') RETURNING id)
SELECT salesforce.enqueue('sf', 'Contact', 'insert', jsonb_build_object('LastName', 'Signup ' || u.id::text, 'User_Id__c', 'signup-' || u.id::text), 'User_Id__c') FROM u;
SQL
tps() { # tps SCRIPT PROTOCOL: signups per second, 4 clients, $signups in all
  as_postgres "$PG_BIN/pgbench" -n -h "$PGHOST" -p "$PGPORT" -U postgres -c 4 -j 2 -M "$2" -t $((signups / 4)) -f "$1" postgres 2>/dev/null \
    | sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}
# compare: ROUNDS rounds, each the plain signups then the queued ones, with
# the simple protocol (psql's, and drivers' without prepared statements)
# and the extended one with prepared statements (JDBC, Rails, psycopg
# after a few runs); one line per protocol: the queued rate, the plain one
# and their ratio, each the median of the rounds (this machine's fsync
# times vary from one second to the next).
compare() {
  local protocol q p r
  for protocol in simple prepared; do
    local ratios=() queued=() plain=()
    for _ in $(seq "${ROUNDS:-3}"); do
      p=$(tps "$dir/plain.sql" "$protocol"); q=$(tps "$dir/queued.sql" "$protocol")
      plain+=("$p"); queued+=("$q"); ratios+=("$(python3 -c "print($q / $p)")")
    done
    python3 - "$protocol" "${queued[*]}" "${plain[*]}" "${ratios[*]}" <<'PY'
import statistics, sys
protocol, q, p, r = sys.argv[1], *[list(map(float, a.split())) for a in sys.argv[2:]]
print(f"  {protocol:<8} {statistics.median(q):6.0f}/s with a queued Contact, {statistics.median(p):6.0f}/s without: {statistics.median(r):.0%} (rounds: {', '.join(f'{x:.0%}' for x in r)})")
PY
  done
}
drained() { # seconds until nothing is pending or on its way, from $1
  for _ in $(seq 6000); do
    [ "$(sql -tA -c "SELECT count(*) = 0 FROM salesforce.outbox WHERE state IN ('pending', 'sending')")" = t ] && break
    sleep 0.1
  done
  python3 -c "print(round($(date +%s.%N) - $1, 1))"
}

echo "signups while healthy, median of ${ROUNDS:-3} rounds of $signups:"
compare
drained "$(date +%s.%N)" >/dev/null

c0=$(counted)
start=$(date +%s.%N)
sql -q -c "SELECT salesforce.enqueue('sf', 'Contact', 'insert', jsonb_build_object('LastName', 'Bulk ' || i, 'User_Id__c', 'bulk-' || i), 'User_Id__c') FROM generate_series(1, $rows) i" >/dev/null
took=$(drained "$start")
c1=$(counted)
echo "delivery: $rows rows in $took s ($(python3 -c "print(round($rows / $took))") rows/s), $(python3 -c "print(round(($c1 - $c0) * 1000 / $rows, 1))") API requests per 1,000 rows"

for i in $(seq 200); do
  sql -q -c "SELECT salesforce.enqueue('sf', 'Contact', 'insert', jsonb_build_object('LastName', 'Paced $i', 'User_Id__c', 'paced-$i'), 'User_Id__c')" >/dev/null
  sleep 0.05
done
drained "$(date +%s.%N)" >/dev/null
sql -tA -c "SELECT extract(epoch FROM done_at - queued_at) FROM salesforce.outbox WHERE record->>'User_Id__c' LIKE 'paced-%'" \
  | python3 -c 'import sys; v = sorted(float(x) for x in sys.stdin.read().split()); q = lambda p: v[min(len(v) - 1, int(p * len(v)))]; print(f"commit to Salesforce at 20 signups/s: p50 {q(0.5):.2f} s, p99 {q(0.99):.2f} s")'

# The outage: refused connections, then a hang.
curl -sf -X POST "$SFSIM_URL/__sim/outage" -H 'Content-Type: application/json' -d "{\"seconds\": $((outage / 2))}"
sleep 0.5
down_start=$(date +%s.%N)
echo "outage of $outage s, signups while it lasts, median of ${ROUNDS:-3} rounds of $signups:"
echo " refused connections:"
compare
sleep "$(python3 -c "print(max(0, $outage / 2 + 0.2 - ($(date +%s.%N) - $down_start)))")"
curl -sf -X POST "$SFSIM_URL/__sim/faults/hang" -H 'Content-Type: application/json' -d '{"on": true}' >/dev/null
hang_start=$(date +%s.%N)
echo " a hang:"
compare
sleep "$(python3 -c "print(max(0, $outage / 2 - ($(date +%s.%N) - $hang_start)))")"
curl -sf -X DELETE "$SFSIM_URL/__sim/faults/hang" >/dev/null
backlog=$(sql -tA -c "SELECT count(*) FROM salesforce.outbox WHERE state IN ('pending', 'sending')")
recovered=$(date +%s.%N)
echo "outage: a backlog of $backlog drained in $(drained "$recovered") s after it ended"
in_sf=$(sql -tA -c "SELECT count(*) FROM salesforce.query('sf', \$\$SELECT Id FROM Contact WHERE User_Id__c LIKE 'signup-%'\$\$)")
queued_signups=$(sql -tA -c "SELECT count(*) FROM salesforce.outbox WHERE record->>'User_Id__c' LIKE 'signup-%'")
echo "signups: $queued_signups Contacts queued, $in_sf in Salesforce"
