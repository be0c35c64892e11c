#!/usr/bin/env bash
# Three customer orgs in one sfsim, their Ids colliding, copied into one
# shared Lead table partitioned by org: every row kept, keyed by (org, id);
# a resync of one org leaves the others' rows untouched; with one org hung
# and another answering 503, the third's edits still arrive, the hung one
# shows unreachable, and a fast shutdown takes under 5 s; dropping one
# org's partition ends its sync and no other.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
dir=/tmp/pg_salesforce-e2e-many-orgs
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed demo --orgs 3
start_cluster "$dir" "shared_preload_libraries = 'pg_salesforce'" "salesforce.sync_naptime = 1" \
  "salesforce.describe_interval = 0" "salesforce.worker_request_timeout = 3"
trap 'stop_cluster "$dir"; stop_sfsim' EXIT
source "$(dirname "$0")/helpers.sh"
org() { local k=$1 m=$2 p=$3; shift 3; curl -sf -X "$m" "$SFSIM_URL/__sim/orgs/$k/$p" -H 'Content-Type: application/json' "$@"; }

sql -q -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_salesforce" -c "CREATE SCHEMA shared"
for k in 1 2 3; do
  user=admin@sfsim.example; [ "$k" = 1 ] || user=admin@org$k.sfsim.example
  sql -q <<SQL
SET client_min_messages = warning;
CREATE SERVER o$k FOREIGN DATA WRAPPER salesforce OPTIONS (login_url '$SFSIM_URL');
CREATE USER MAPPING FOR postgres SERVER o$k OPTIONS (grant_type 'password', client_id 'sfsim-client-id',
  client_secret 'sfsim-client-secret', username '$user', password 'sfsim-password', security_token 'SFSIMTOKEN');
CREATE SCHEMA r$k;
IMPORT FOREIGN SCHEMA salesforce LIMIT TO (lead) FROM SERVER o$k INTO r$k;
SELECT salesforce.sync_enable('o$k', 'Lead', 'shared.lead', '1 second', '{"fields": ["LastName", "Company"], "shared": $([ "$k" = 1 ] && echo true || echo false)}');
SQL
done >/dev/null
wait_for 120 "SELECT count(*) = 3 FROM salesforce.syncs WHERE object = 'Lead' AND stage = 'incremental'"
wait_for 60 "SELECT (SELECT count(*) FROM shared.lead) = (SELECT count(*) FROM r1.lead) * 3"
leads=$(sql -tA -c "SELECT count(*) FROM r1.lead")
[ "$(sql -tA -c "SELECT count(DISTINCT id) FROM shared.lead")" = "$leads" ] || fail "the orgs' Ids do not collide as expected"
[ "$(sql -tA -c "SELECT string_agg(_org || '=' || n, ',' ORDER BY _org) FROM (SELECT _org, count(*) n FROM shared.lead GROUP BY _org) x")" = "o1=$leads,o2=$leads,o3=$leads" ] || fail "rows were lost"
echo "shared: $leads Leads from each of 3 orgs with colliding Ids, every row kept, keyed by (org, id)"

# A resync of one org touches only its partition.
before=$(sql -tA -c "SELECT md5(string_agg(_org || id || xmin::text, ',' ORDER BY _org, id)) FROM shared.lead WHERE _org <> 'o1'")
sql -q -c "CALL salesforce.resync('o1', 'Lead')" >/dev/null
[ "$(sql -tA -c "SELECT count(*) FROM shared.lead WHERE _org = 'o1'")" = "$leads" ] || fail "the resync lost rows"
[ "$(sql -tA -c "SELECT md5(string_agg(_org || id || xmin::text, ',' ORDER BY _org, id)) FROM shared.lead WHERE _org <> 'o1'")" = "$before" ] || fail "a resync of o1 rewrote other orgs' rows"
echo "shared: a resync of o1 left o2's and o3's rows untouched (xmin unchanged)"

# Org 2 hangs and org 3 answers 503: org 1's edits still arrive.
org 2 POST faults/hang -d '{"on": true}' >/dev/null
org 3 PATCH faults -d '{"server_unavailable": 1.0, "unable_to_lock_row": 0.0, "drop_connection": 0.0, "seed": 1}' >/dev/null
sleep 2
id=$(sql -tA -c "SELECT id FROM r1.lead ORDER BY id LIMIT 1")
start=$(date +%s.%N)
org 1 PATCH "records/Lead/$id" -d '{"Company": "Still on time"}' >/dev/null
# Each org's requests go on a thread of their own: the hung org holds
# only its own syncs, so o1's edit arrives within a cycle or two, well
# before o2's request times out even once more.
wait_for 15 "SELECT company = 'Still on time' FROM shared.lead WHERE _org = 'o1' AND id = '$id'"
took=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
# Failed steps abort their transactions: no run's lock goes with them.
! grep -q "you don't own a lock" "$dir/server.log" || fail "a failed step's abort released a sync's lock"
wait_for 90 "SELECT server_status LIKE 'unreachable since %' FROM salesforce.sync_status WHERE server = 'o2'"
wait_for 60 "SELECT server_status LIKE 'unreachable since %' FROM salesforce.sync_status WHERE server = 'o3'"
echo "isolation: with o2 hung and o3 answering 503, o1's edit arrived in $took s; o2 and o3 show unreachable"

# A fast shutdown while org 2 hangs.
start=$(date +%s.%N)
as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null
stopped=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
python3 -c "import sys; sys.exit(0 if $stopped < 5 else 1)" || fail "the fast shutdown took $stopped s"
echo "shutdown: a fast shutdown took $stopped s while o2 hung"

# Org 3 leaves: dropping its partition ends its sync, and no other.
org 2 POST faults/hang -d '{"on": false}' >/dev/null
org 3 PATCH faults -d '{"server_unavailable": 0.0, "unable_to_lock_row": 0.0, "drop_connection": 0.0, "seed": 1}' >/dev/null
as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -o "-p $PGPORT" -l "$dir/server.log" -w start >/dev/null
sql -q -c "DROP TABLE shared.lead__o3"
[ "$(sql -tA -c "SELECT string_agg(server::text, ',' ORDER BY server) FROM salesforce.syncs WHERE object = 'Lead'")" = "o1,o2" ] || fail "dropping o3's partition did not end just its sync"
wait_for 60 "SELECT bool_and(server_status = 'ok' AND last_status = 'succeeded') FROM salesforce.sync_status"
echo "offboarding: dropping o3's partition ended its sync; o1 and o2 go on"
