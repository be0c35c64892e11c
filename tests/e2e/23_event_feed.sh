#!/usr/bin/env bash
# Platform events into a table: salesforce.event_feed makes the table and
# the sync worker fills it with the channel's events, each exactly once,
# with its replay id, across three kill -9 of the worker while events keep
# coming; LISTEN hears each batch; a committed salesforce.publish lands in
# the table once and a rolled-back one never; queued events reach the bus
# once across kill -9 of the worker during their publish; the feed's table belongs to
# its owner and other roles' feeds are out of reach.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$(dirname "$0")/helpers.sh"
dir=/tmp/pg_salesforce-e2e-event-feed
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed demo --pubsub-listen 127.0.0.1:0 --pubsub-keepalive 2
start_cluster "$dir" "shared_preload_libraries = 'pg_salesforce'" "salesforce.sync_naptime = 1"
trap 'stop_cluster "$dir"; stop_sfsim' EXIT
psql_out() { sql -v ON_ERROR_STOP=0 "$@" 2>&1 || true; }
flow_publishes() { # a Flow in Salesforce publishing Signup__e with Email__c = $1
  curl -sf -X POST "$SFSIM_URL/__sim/events/Signup__e" -H 'Content-Type: application/json' -d "{\"Email__c\": \"$1\"}" >/dev/null
}

setup_org sf contact
sql -q -c "ALTER SERVER org OPTIONS (ADD pubsub_url '$SFSIM_PUBSUB_URL')" -c "CREATE SCHEMA app"
flow_publishes before@example.com
[ "$(sql -tA -c "SELECT salesforce.event_feed('org', 'Signup__e', 'app.signups') > 0")" = t ] || fail "event_feed"
out=$(psql_out -c "SELECT salesforce.event_feed('org', 'Signup__e', 'app.signups')")
grep -q "already feeds" <<<"$out" || fail "a second feed of the same table was taken: $out"
wait_for 30 "SELECT count(*) = 1 FROM app.signups WHERE payload->>'Email__c' = 'before@example.com'" || fail "the retained event did not arrive"
[ "$(sql -tA -c "SELECT length(replay_id) > 0 AND created_date IS NOT NULL AND event_uuid <> '' FROM app.signups")" = t ] || fail "the row lacks its replay id, uuid or date"

# LISTEN hears a batch.
out=$( (sleep 1; flow_publishes heard@example.com) & sql -c "LISTEN signup__e" -c "SELECT pg_sleep(4)" 2>&1)
grep -q 'Asynchronous notification "signup__e"' <<<"$out" || fail "no notification: $out"

# 300 events while the worker is killed three times: each lands once.
(for i in $(seq 300); do flow_publishes "burst-$i@example.com"; sleep 0.01; done) &
burst=$!
for _ in 1 2 3; do
  sleep 1
  kill -9 "$(worker_pid)" 2>/dev/null || true
done
wait "$burst"
wait_for 90 "SELECT count(*) = 300 FROM app.signups WHERE payload->>'Email__c' LIKE 'burst-%'" ||
  fail "$(try_sql "SELECT count(*) FROM app.signups WHERE payload->>'Email__c' LIKE 'burst-%'") of 300 burst events arrived"
[ "$(try_sql "SELECT count(DISTINCT payload->>'Email__c') = 300 AND count(DISTINCT event_uuid) = 300 FROM app.signups WHERE payload->>'Email__c' LIKE 'burst-%'")" = t ] ||
  fail "an event landed twice"
[ "$(try_sql "SELECT events = (SELECT count(*) FROM app.signups) AND status = 'streaming' FROM salesforce.event_feeds")" = t ] || fail "the feed's count or status"

# salesforce.publish reaches this subscriber once when committed, never when rolled back.
try_sql "SELECT 1" >/dev/null
sql -q -o /dev/null -c "BEGIN" -c "SELECT salesforce.publish('org', 'Signup__e', '{\"Email__c\": \"rolled@example.com\"}')" -c "ROLLBACK"
sql -q -o /dev/null -c "SELECT salesforce.publish('org', 'Signup__e', '{\"Email__c\": \"committed@example.com\"}')"
wait_for 30 "SELECT count(*) = 1 FROM app.signups WHERE payload->>'Email__c' = 'committed@example.com'" || fail "the committed publish did not arrive once"
sleep 2
[ "$(sql -tA -c "SELECT count(*) FROM app.signups WHERE payload->>'Email__c' IN ('rolled@example.com', 'committed@example.com')")" = 1 ] ||
  fail "a rolled-back publish reached the feed, or the committed one twice"

# Queued publishing: the worker publishes after COMMIT; a rolled-back event
# never goes. Killed with kill -9 while a publish is out, every event still
# reaches the bus once and the feed once:
#  - published, its answer never coming (publish_unanswered): found on the
#    bus after the restart, not published again;
#  - held before it is published (hang): not found, published again.
# A publish whose answer never came is looked for once the worker's request
# timeout has passed since it went: 4 s here.
sql -q -o /dev/null -c "ALTER SYSTEM SET salesforce.worker_request_timeout = 4" -c "SELECT pg_reload_conf()"
control() { curl -sf -X "$1" "$SFSIM_URL/__sim/$2" -H 'Content-Type: application/json' ${3:+-d "$3"} >/dev/null; }
on_bus() { # the bus's count of events whose Email__c starts with $1, and of those there more than once
  curl -sf "$SFSIM_URL/__sim/events/Signup__e" | python3 -c '
import collections, json, sys
seen = collections.Counter(e["payload"].get("Email__c") or "" for e in json.load(sys.stdin)["events"])
mine = {k: v for k, v in seen.items() if k.startswith(sys.argv[1])}
print(len(mine), sum(1 for v in mine.values() if v > 1))' "$1"
}
queue_events() { # $1 events with Email__c $2<n>@example.com, queued in one transaction
  sql -q -o /dev/null -c "SET salesforce.write_mode = 'queued'" \
    -c "SELECT salesforce.publish('org', 'Signup__e', jsonb_build_object('Email__c', '$2' || g || '@example.com')) FROM generate_series(1, $1) g"
}
delivered_once() { # $1 events of prefix $2 delivered, each once on the bus and in the feed
  wait_for 90 "SELECT count(*) = $1 FROM salesforce.queued_writes WHERE operation = 'publish' AND state = 'delivered' AND record->>'Email__c' LIKE '$2%'" ||
    fail "$2: $(try_sql "SELECT string_agg(state || ' ' || n, ', ') FROM (SELECT state, count(*) n FROM salesforce.queued_writes WHERE operation = 'publish' AND record->>'Email__c' LIKE '$2%' GROUP BY state) s") of $1"
  [ "$(on_bus "$2")" = "$1 0" ] || fail "$2 on the bus (events, twice): $(on_bus "$2"), of $1"
  wait_for 30 "SELECT count(*) >= $1 FROM app.signups WHERE payload->>'Email__c' LIKE '$2%'" || fail "$2 did not all reach the feed"
  [ "$(try_sql "SELECT count(*) = $1 AND count(DISTINCT payload->>'Email__c') = $1 FROM app.signups WHERE payload->>'Email__c' LIKE '$2%'")" = t ] ||
    fail "the feed holds a $2 event twice"
}
sql -q -o /dev/null -c "SET salesforce.write_mode = 'queued'" -c "BEGIN" \
  -c "SELECT salesforce.publish('org', 'Signup__e', '{\"Email__c\": \"queued-rolled@example.com\"}')" -c "ROLLBACK"
queue_events 20 queued-
delivered_once 20 queued-
[ "$(on_bus queued-rolled)" = "0 0" ] || fail "a rolled-back queued event went"

control POST faults/publish_unanswered '{"count": 1}'
queue_events 300 held-
for _ in $(seq 200); do [ "$(on_bus held-)" = "300 0" ] && break; sleep 0.05; done
[ "$(on_bus held-)" = "300 0" ] || fail "the unanswered publish did not reach the bus: $(on_bus held-)"
kill -9 "$(worker_pid)" || fail "no worker to kill"
delivered_once 300 held-

control POST faults/hang '{"on": true}'
queue_events 50 hung-
sleep 1.5
[ "$(on_bus hung-)" = "0 0" ] || fail "the hung publish went: $(on_bus hung-)"
kill -9 "$(worker_pid)" || fail "no worker to kill"
control DELETE faults/hang
delivered_once 50 hung-
echo "queued publishing: the worker killed during a publish whose answer never came (300 events, found on the bus) and during one held before publishing (50): each event on the bus and in the feed once"

# The table is the caller's; another role cannot feed into it or drop the feed.
[ "$(sql -tA -c "SELECT tableowner FROM pg_tables WHERE schemaname = 'app' AND tablename = 'signups'")" = postgres ] || fail "table owner"
sql -q -c "CREATE ROLE feeder LOGIN" -c "GRANT USAGE ON SCHEMA salesforce TO feeder" -c "GRANT USAGE ON FOREIGN SERVER org TO feeder" -c "CREATE USER MAPPING FOR feeder SERVER org OPTIONS (grant_type 'password', client_id 'sfsim-client-id', client_secret 'sfsim-client-secret', username 'admin@sfsim.example', password 'sfsim-password', security_token 'SFSIMTOKEN')"
as_feeder() { as_postgres psql -X -h "$PGHOST" -p "$PGPORT" -U feeder -d postgres -tA "$@" 2>&1 || true; }
out=$(as_feeder -c "SELECT salesforce.event_feed('org', 'Signup__e', 'app.signups')")
grep -q "not owned by role feeder" <<<"$out" || fail "feeder fed into postgres's table: $out"
[ "$(as_feeder -c "SELECT salesforce.event_feed_drop('org', 'Signup__e')")" = 0 ] || fail "feeder dropped postgres's feed"
[ "$(as_feeder -c "SELECT count(*) FROM salesforce.event_feeds")" = 0 ] || fail "feeder sees postgres's feed"
out=$(as_feeder -c "INSERT INTO salesforce.event_feeds (owner, server, topic, target) VALUES (1, 'org', 'X__e', 'app.signups')")
grep -q "permission denied" <<<"$out" || fail "feeder wrote event_feeds: $out"
[ "$(sql -tA -c "SELECT salesforce.event_feed_drop('org', 'Signup__e')")" = 1 ] || fail "event_feed_drop"
echo "event feed: ok"
