#!/usr/bin/env bash
# salesforce.publish: a platform event goes out only if its transaction
# commits (what sfsim's event bus holds is the proof), once; a rolled-back
# savepoint drops its own; a bad event fails the COMMIT before any event
# goes; each published event is listed in queued_writes with its replay id;
# a role without USAGE on the server cannot publish.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$(dirname "$0")/helpers.sh"
dir=/tmp/pg_salesforce-e2e-events
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed demo --pubsub-listen 127.0.0.1:0
start_cluster "$dir"
trap 'stop_cluster "$dir"; stop_sfsim' EXIT
psql_out() { sql -v ON_ERROR_STOP=0 "$@" 2>&1 || true; }
# events on the bus whose Email__c is $1
on_bus() {
  curl -sf "$SFSIM_URL/__sim/events/Signup__e" |
    python3 -c 'import json,sys; print(sum(e["payload"].get("Email__c") == sys.argv[1] for e in json.load(sys.stdin)["events"]))' "$1"
}

setup_org sf contact
sql -q -c "ALTER SERVER org OPTIONS (ADD pubsub_url '$SFSIM_PUBSUB_URL')"

# Rolled back: nothing reaches Salesforce.
sql -q -o /dev/null -c "BEGIN" -c "SELECT salesforce.publish('org', 'Signup__e', '{\"Email__c\": \"rolled@example.com\"}')" -c "ROLLBACK"
[ "$(on_bus rolled@example.com)" = 0 ] || fail "a rolled-back publish reached Salesforce"

# Nothing before COMMIT; once after it.
out=$(psql_out <<SQL
BEGIN;
SELECT salesforce.publish('org', '/event/Signup__e', '{"Email__c": "ada@example.com", "User_Id__c": "42", "Seats__c": 3}');
\! curl -sf "$SFSIM_URL/__sim/events/Signup__e" | python3 -c 'import json,sys; print("before-commit:" + str(len(json.load(sys.stdin)["events"])))'
COMMIT;
SQL
)
grep -q "before-commit:0" <<<"$out" || fail "the event went before COMMIT: $out"
[ "$(on_bus ada@example.com)" = 1 ] || fail "the committed event is not on the bus once"
curl -sf "$SFSIM_URL/__sim/events/Signup__e" | python3 -c '
import json, sys
e = [e for e in json.load(sys.stdin)["events"] if e["payload"].get("Email__c") == "ada@example.com"][0]
assert e["payload"]["User_Id__c"] == "42" and e["payload"]["Seats__c"] == 3, e' || fail "the event's fields"
[ "$(sql -tA -c "SELECT count(*) FROM salesforce.queued_writes WHERE operation = 'publish' AND object = 'Signup__e' AND state = 'delivered' AND salesforce_id <> '' AND record->>'Email__c' = 'ada@example.com'")" = 1 ] ||
  fail "the published event is not listed with its replay id"

# A savepoint rolled back drops its events, not the others.
sql -q -o /dev/null <<SQL
BEGIN;
SELECT salesforce.publish('org', 'Signup__e', '{"Email__c": "kept@example.com"}');
SAVEPOINT s;
SELECT salesforce.publish('org', 'Signup__e', '{"Email__c": "dropped@example.com"}');
ROLLBACK TO SAVEPOINT s;
COMMIT;
SQL
[ "$(on_bus kept@example.com)" = 1 ] && [ "$(on_bus dropped@example.com)" = 0 ] || fail "savepoint handling of publishes"

# A field the event does not have fails the COMMIT, and no event of it goes.
out=$(psql_out <<SQL
BEGIN;
CREATE TABLE local_row (id int);
SELECT salesforce.publish('org', 'Signup__e', '{"Email__c": "first@example.com"}');
SELECT salesforce.publish('org', 'Signup__e', '{"Email__c": "bad@example.com", "Nope__c": 1}');
COMMIT;
SQL
)
grep -q "ERROR:  Salesforce refused platform event 2 of this transaction (Signup__e): ENCODE" <<<"$out" || fail "no error naming the bad event: $out"
grep -q "Nope__c" <<<"$out" || fail "the error does not name the field: $out"
[ "$(on_bus first@example.com)" = 0 ] || fail "an event went although the COMMIT failed"
[ "$(sql -tA -c "SELECT to_regclass('local_row') IS NULL")" = t ] || fail "the local work of the failed COMMIT stayed"

# Not a platform event; a change event channel; no USAGE.
out=$(psql_out -c "SELECT salesforce.publish('org', 'Contact', '{}')")
grep -q '"Contact" is not a platform event' <<<"$out" || fail "a non-event topic was taken: $out"
sql -q -c "CREATE ROLE outsider LOGIN" -c "GRANT USAGE ON SCHEMA salesforce TO outsider"
out=$(as_postgres psql -X -h "$PGHOST" -p "$PGPORT" -U outsider -d postgres -c "SELECT salesforce.publish('org', 'Signup__e', '{}')" 2>&1 || true)
grep -q "permission denied for foreign server org" <<<"$out" || fail "a role without USAGE on the server published: $out"
out=$(psql_out -c "BEGIN READ ONLY" -c "SELECT salesforce.publish('org', 'Signup__e', '{}')" -c "ROLLBACK")
grep -q "cannot publish a platform event in a read-only transaction" <<<"$out" || fail "read-only: $out"

# queued mode: stored in the outbox with the transaction (no worker here).
sql -q -o /dev/null -c "SET salesforce.write_mode = 'queued'" -c "SELECT salesforce.publish('org', 'Signup__e', '{\"Email__c\": \"queued@example.com\"}')"
[ "$(sql -tA -c "SELECT state FROM salesforce.queued_writes WHERE operation = 'publish' AND record->>'Email__c' = 'queued@example.com'")" = pending ] || fail "the queued event is not pending in the outbox"
[ "$(on_bus queued@example.com)" = 0 ] || fail "a queued event went without the worker"
echo "platform events: ok"
