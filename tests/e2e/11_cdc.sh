#!/usr/bin/env bash
# Change Data Capture: the worker keeps a copy current from sfsim's Pub/Sub
# stream, with polling an hour apart. Edits arrive without a poll; a kill -9
# mid-stream, a dropped stream, gap events, an overflow and an expired replay
# id each leave the copy equal to Salesforce, every event applied once.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
dir=/tmp/pg_salesforce-e2e-cdc
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed demo --pubsub-listen 127.0.0.1:0 --pubsub-keepalive 2
start_cluster "$dir" "shared_preload_libraries = 'pg_salesforce'" "salesforce.sync_naptime = 1"
trap 'stop_cluster "$dir"; stop_sfsim' EXIT
source "$(dirname "$0")/helpers.sh"

setup_org crm "account"
sql -q -c "ALTER SERVER org OPTIONS (ADD pubsub_url '$SFSIM_PUBSUB_URL')"
control POST cdc '{"objects": ["Account"]}' >/dev/null
sql -q -c "SET client_min_messages = warning" \
  -c "SELECT salesforce.sync_enable('org', 'Account', every => '1 hour', options => '{\"cdc\": true}')" >/dev/null
wait_for 60 "SELECT status = 'streaming' FROM salesforce.streams WHERE server = 'org'"
published() { control GET cdc | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"])'; }
applied() { try_sql "SELECT events FROM salesforce.streams WHERE server = 'org'"; }
polls() { try_sql "SELECT count(*) FROM salesforce.sync_runs WHERE kind = 'incremental'"; }
events0=$(published)
applied0=$(applied)
# The stream started with a poll (no replay id yet); it is over once the sync is not due.
wait_for 30 "SELECT next_due > now() + interval '30 minutes' FROM salesforce.syncs"
polls0=$(polls)

create() { control POST records/Account "{\"Name\": \"$1\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
edit() { control PATCH "records/Account/$1" "$2" >/dev/null; }
cols=$(columns Account)
same() { # WHAT: the copy equals the foreign table, by checksum, within 30 s
  local want
  for _ in $(seq 60); do
    want=$(checksum crm.account "$cols")
    [ "$(checksum org.account "$cols")" = "$want" ] && return 0
    sleep 0.5
  done
  fail "$1: the copy differs from Salesforce"
}

a=$(create "CDC One"); b=$(create "CDC Two"); c=$(create "CDC Three")
edit "$a" '{"Description": "streamed", "Phone": "555-0100"}'
edit "$b" '{"Phone": null}'
control DELETE "records/Account/$c" >/dev/null
wait_for 30 "SELECT count(*) = 0 FROM org.account WHERE id = '$c'"
control POST "records/Account/$c/undelete" >/dev/null
same "creates, updates, a delete and an undelete"
[ "$(polls)" = "$polls0" ] || fail "the edits needed a poll"
echo "cdc: creates, updates, delete, undelete streamed into the copy, no poll"

# kill -9 while a burst of edits streams in.
(for i in $(seq 40); do edit "$a" "{\"Description\": \"burst $i\"}"; sleep 0.05; done) &
burst=$!
sleep 0.7
kill -9 "$(worker_pid)"
wait "$burst"
sleep 2
wait_for 60 "SELECT status = 'streaming' FROM salesforce.streams WHERE server = 'org'"
same "after kill -9 mid-stream"
[ "$(try_sql "SELECT description FROM org.account WHERE id = '$a'")" = "burst 40" ] || fail "the last edit of the burst is not in the copy"

control POST faults/cdc_drop_streams >/dev/null
edit "$b" '{"Description": "after the drop"}'
same "after a dropped stream"

control POST faults/cdc_gap '{"object": "Account", "count": 2}' >/dev/null
edit "$a" '{"Description": "in a gap"}'
d=$(create "CDC Gap")
same "after gap events"
[ "$(try_sql "SELECT count(*) FROM org.account WHERE id = '$d'")" = 1 ] || fail "a record created in a gap is missing"

for _ in $(seq 60); do [ "$(applied)" -ge $(( applied0 + $(published) - events0 )) ] && break; sleep 0.5; done
[ "$(applied)" = $(( applied0 + $(published) - events0 )) ] || fail "$(( $(published) - events0 )) events published, $(( $(applied) - applied0 )) applied"
echo "cdc: kill -9, a dropped stream and gap events: copy equal, each of $(( $(published) - events0 )) events applied once"

control POST faults/cdc_overflow '{"count": 1}' >/dev/null
edit "$a" '{"Description": "overflowed"}'
for _ in $(seq 60); do [ "$(polls)" -gt "$polls0" ] && break; sleep 0.5; done
[ "$(polls)" -gt "$polls0" ] || fail "GAP_OVERFLOW did not start a poll"
same "after GAP_OVERFLOW"

# Salesforce keeps events 72 hours: after 73, the stored replay id is refused.
polls1=$(polls)
control POST time/advance '{"seconds": 262800}' >/dev/null
control POST faults/cdc_drop_streams >/dev/null
edit "$b" '{"Description": "after the replay id expired"}'
for _ in $(seq 60); do [ "$(polls)" -gt "$polls1" ] && break; sleep 0.5; done
[ "$(polls)" -gt "$polls1" ] || fail "an expired replay id did not start a poll"
same "after the replay id expired"
wait_for 30 "SELECT status = 'streaming' FROM salesforce.streams WHERE server = 'org'"
edit "$a" '{"Description": "streaming again"}'
same "streaming again after the expiry"
[ "$(try_sql "SELECT count(*) FROM salesforce.sync_runs WHERE kind = 'stream' AND events > 0")" -gt 0 ] || fail "no stream session logged its events"
echo "cdc: GAP_OVERFLOW and an expired replay id recovered by polls; copy equal"
