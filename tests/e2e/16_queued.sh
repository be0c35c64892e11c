#!/usr/bin/env bash
# Queued writes (salesforce.enqueue, salesforce.write_mode = 'queued'):
# nothing is sent for a transaction that rolls back; a committed write is
# delivered by the worker and announced; a rejected one shows Salesforce's
# error and can be retried or discarded by its owner and no one else;
# writes through a foreign table queue the same way, and a backlog of
# 5,000 goes through one Bulk ingest job. Then an outage:
# sfsim refuses connections, then hangs, while signups commit; after it,
# with the worker killed three times mid-delivery and 2% of connections
# dropped, every keyed Contact is in Salesforce exactly once, and no
# create without a key is ever sent twice. Another org hung meanwhile
# delays only its own writes.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
dir=/tmp/pg_salesforce-e2e-queued
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed demo --orgs 2
start_cluster "$dir" "shared_preload_libraries = 'pg_salesforce'" "salesforce.sync_naptime = 1" \
  "salesforce.worker_request_timeout = 3"
trap 'stop_cluster "$dir"; stop_sfsim' EXIT
source "$(dirname "$0")/helpers.sh"
org() { local k=$1 m=$2 p=$3; shift 3; curl -sf -X "$m" "$SFSIM_URL/__sim/orgs/$k/$p" -H 'Content-Type: application/json' "$@"; }
as() { local role=$1; shift; sql -v ON_ERROR_STOP=1 -c "SET ROLE $role" "$@"; }
in_salesforce() { try_sql "SELECT count(*) FROM salesforce.query('sf', \$\$SELECT Id FROM Contact WHERE $1\$\$)"; }

{ two_orgs_sql; cat <<SQL; } | sql -q >/dev/null
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
GRANT USAGE ON FOREIGN SERVER sf, sf2 TO alice, bob;
GRANT USAGE ON SCHEMA salesforce TO alice, bob;
CREATE SCHEMA app AUTHORIZATION alice;
CREATE TABLE app.users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL);
ALTER TABLE app.users OWNER TO alice;
CREATE SCHEMA crm AUTHORIZATION alice;
SQL

# A rolled-back transaction queues nothing.
as alice -q -c "BEGIN" -c "SELECT salesforce.enqueue('sf', 'Contact', 'insert', '{\"LastName\": \"Rolled back\"}')" -c "ROLLBACK" >/dev/null
[ "$(sql -tA -c "SELECT count(*) FROM salesforce.outbox")" = 0 ] || fail "a rolled-back write stayed queued"

# A committed write is delivered after commit, and announced.
(sql -c "LISTEN salesforce_delivery" -c "SELECT pg_sleep(6)" -c "SELECT 1" > "$dir/listen.out" 2>&1) &
listener=$!
sleep 0.5
first=$(as alice -tA -c "SELECT salesforce.enqueue('sf', 'Contact', 'insert', '{\"LastName\": \"First\", \"User_Id__c\": \"first-1\"}', 'User_Id__c')")
wait_for 10 "SELECT state = 'delivered' AND salesforce_id LIKE '003%' FROM salesforce.queued_writes WHERE id = $first"
[ "$(in_salesforce "User_Id__c = 'first-1'")" = 1 ] || fail "the delivered Contact is not in Salesforce"
wait "$listener"
grep -q "Asynchronous notification \"salesforce_delivery\" with payload \"{\"id\" : $first, \"state\" : \"delivered\"}\"" "$dir/listen.out" \
  || fail "no NOTIFY for the delivery: $(cat "$dir/listen.out")"
echo "delivered: a queued Contact reached Salesforce after commit (NOTIFY salesforce_delivery), a rolled-back one was never queued"

# A rejected write shows Salesforce's error; only its owner retries or discards it.
bad=$(as alice -tA -c "SELECT salesforce.enqueue('sf', 'Contact', 'insert', '{\"FirstName\": \"No last name\"}')")
wait_for 10 "SELECT state = 'failed' AND error_code = 'REQUIRED_FIELD_MISSING' FROM salesforce.queued_writes WHERE id = $bad"
[ "$(as bob -tA -c "SELECT count(*) FROM salesforce.queued_writes")" = 0 ] || fail "bob sees alice's queued writes"
[ "$(as bob -tA -c "SELECT count(*) FROM salesforce.outbox")" = 0 ] || fail "bob reads alice's outbox rows"
err=$(as bob -c "SELECT salesforce.retry_queued($bad)" 2>&1) && fail "bob retried alice's write"
grep -q "permission denied for queued write $bad" <<<"$err" || fail "unexpected: $err"
err=$(as bob -c "INSERT INTO salesforce.outbox (owner, server, object, operation, record) VALUES (1, 'sf', 'Contact', 'insert', '{}')" 2>&1) && fail "bob wrote the outbox"
err=$(as alice -c "UPDATE salesforce.outbox SET state = 'pending'" 2>&1) && fail "alice wrote the outbox"
as alice -q -c "SELECT salesforce.retry_queued($bad)" >/dev/null
wait_for 10 "SELECT state = 'failed' AND attempts = 1 FROM salesforce.queued_writes WHERE id = $bad"
as alice -q -c "SELECT salesforce.discard_queued($bad)" >/dev/null
[ "$(sql -tA -c "SELECT state FROM salesforce.queued_writes WHERE id = $bad")" = discarded ] || fail "not discarded"
echo "rejected: REQUIRED_FIELD_MISSING shown; retried and discarded by alice; bob sees none of it and writes no outbox row"

# An update queued after an insert whose Id is not known yet waits for it, then uses it.
read -r parent child < <(as alice -tA -c "WITH c AS (SELECT salesforce.enqueue('sf', 'Contact', 'insert', '{\"LastName\": \"Parent\"}') AS id)
  SELECT c.id || ' ' || salesforce.enqueue('sf', 'Contact', 'update', '{\"Title\": \"Set after\"}', id_of => c.id) FROM c")
wait_for 10 "SELECT c.state = 'delivered' AND c.salesforce_id = p.salesforce_id AND c.depends_on = p.id FROM salesforce.queued_writes c, salesforce.queued_writes p WHERE c.id = $child AND p.id = $parent"
[ "$(in_salesforce "LastName = 'Parent' AND Title = 'Set after'")" = 1 ] || fail "the update did not reach the record its insert created"
orphan=$(as alice -tA -c "WITH c AS (SELECT salesforce.enqueue('sf', 'Contact', 'insert', '{\"FirstName\": \"No last name\"}') AS id)
  SELECT salesforce.enqueue('sf', 'Contact', 'delete', '{}', id_of => c.id) FROM c")
wait_for 10 "SELECT state = 'failed' AND error LIKE 'queued write % was not delivered' FROM salesforce.queued_writes WHERE id = $orphan"
err=$(as bob -c "SELECT salesforce.enqueue('sf', 'Contact', 'delete', '{}', id_of => $parent)" 2>&1) && fail "bob named alice's write"
grep -q "is not an insert or upsert of Contact on server sf queued by this role" <<<"$err" || fail "unexpected: $err"
echo "ordering: an update queued with id_of its insert was sent once the insert had its Id, to that record; one whose insert failed fails, saying so"

# A role that lost the server after queueing: its write fails, saying so.
lost=$(sql -tA -c "BEGIN" -c "SET ROLE bob" -c "SELECT salesforce.enqueue('sf', 'Contact', 'insert', '{\"LastName\": \"Lost\"}')" \
  -c "RESET ROLE" -c "REVOKE USAGE ON FOREIGN SERVER sf FROM bob" -c "COMMIT")
# Given 30 s: in 2 of about 8 runs this step took longer than 10 s, for a
# reason not found yet (the worker looks every second at least).
wait_for 30 "SELECT state = 'failed' AND error = 'permission denied for foreign server sf: role bob has no USAGE on it' FROM salesforce.outbox WHERE id = $lost"
[ "$(in_salesforce "LastName = 'Lost'")" = 0 ] || fail "a write of a role without USAGE was delivered"
echo "privileges: bob's write failed once bob lost USAGE on the server, and was not sent"

# Writes through a foreign table, in queued mode.
as alice -q -c "IMPORT FOREIGN SCHEMA salesforce LIMIT TO (contact) FROM SERVER sf INTO crm" >/dev/null
err=$(as alice -c "SET salesforce.write_mode = queued" -c "INSERT INTO crm.contact (last_name) VALUES ('x') RETURNING id" 2>&1) && fail "RETURNING in queued mode"
grep -q "needs salesforce.write_mode = statement" <<<"$err" || fail "unexpected: $err"
as alice -q -c "SET salesforce.write_mode = queued" -c "INSERT INTO crm.contact (last_name, user_id__c) VALUES ('Through the table', 'table-1')" \
  -c "UPDATE crm.contact SET title = 'Queued update' WHERE user_id__c = 'first-1'" >/dev/null
wait_for 10 "SELECT count(*) = 2 AND bool_and(state = 'delivered') FROM salesforce.queued_writes WHERE id > $lost"
[ "$(in_salesforce "User_Id__c = 'table-1' OR (User_Id__c = 'first-1' AND Title = 'Queued update')")" = 2 ] || fail "the table's writes did not arrive"
echo "foreign table: INSERT and UPDATE in queued mode delivered; INSERT ... RETURNING refused"

# A backlog of like writes that reaches bulk_threshold goes through one
# Bulk ingest job: 5,000 Contacts from one queued INSERT, one refused.
bulk_rows=5000
logged() { control GET "requests?since=$1" | python3 -c "import json, sys; rs = json.load(sys.stdin)['requests']; $2"; }
seq=$(logged 0 "print(max([r['seq'] for r in rs], default=0))")
last=$(sql -tA -c "SELECT max(id) FROM salesforce.outbox")
as alice -q -c "SET salesforce.write_mode = queued" \
  -c "INSERT INTO crm.contact (last_name, user_id__c)
      SELECT CASE WHEN i = 2500 THEN NULL ELSE 'Bulk ' || i END, 'bulk-' || i FROM generate_series(1, $bulk_rows) i" >/dev/null
wait_for 60 "SELECT count(*) = $bulk_rows AND bool_and(state IN ('delivered', 'failed')) FROM salesforce.queued_writes WHERE id > $last"
read -r jobs collections requests < <(logged "$seq" "
data = [r for r in rs if r['path'].startswith('/services/data/')]
print(sum(r['method'] == 'POST' and r['path'].endswith('/jobs/ingest') for r in data),
      sum('/composite' in r['path'] for r in data), len(data))")
[ "$jobs" = 1 ] || fail "$jobs Bulk ingest jobs for $bulk_rows queued rows, not 1"
[ "$collections" = 0 ] || fail "$collections collections calls for a backlog that went through Bulk"
[ "$(sql -tA -c "SELECT state || ' ' || error_code FROM salesforce.queued_writes WHERE id > $last AND record->>'User_Id__c' = 'bulk-2500'")" = "failed REQUIRED_FIELD_MISSING" ] \
  || fail "the row without a last name: $(sql -tA -c "SELECT state, error_code, error FROM salesforce.queued_writes WHERE id > $last AND record->>'User_Id__c' = 'bulk-2500'")"
# Each delivered row has the Id of the record made from it.
matched=$(try_sql "SELECT count(*) FROM salesforce.queued_writes w
  JOIN salesforce.query('sf', \$\$SELECT Id, User_Id__c FROM Contact WHERE User_Id__c LIKE 'bulk-%'\$\$) r
    ON r->>'User_Id__c' = w.record->>'User_Id__c' AND r->>'Id' = w.salesforce_id
 WHERE w.id > $last AND w.state = 'delivered'")
[ "$matched" = $((bulk_rows - 1)) ] || fail "$matched of $((bulk_rows - 1)) delivered rows have their record's Id"
echo "bulk: $bulk_rows queued rows went through 1 ingest job ($requests requests, no collections call; collections would take $((bulk_rows / 200))); $matched delivered with their own Id, the row without a last name failed with REQUIRED_FIELD_MISSING"

# An outage: refused connections for 20 s, then a 10 s hang, while signups
# commit; sf2's org hangs meanwhile and delays only its own writes.
signups=1000 loose=100
control POST faults/delay_ms '{"ms": 1500}' >/dev/null
org 2 POST faults/hang -d '{"on": true}' >/dev/null
curl -sf -X POST "$SFSIM_URL/__sim/outage" -H 'Content-Type: application/json' -d '{"seconds": 20}'
sleep 0.5
start=$(date +%s.%N)
as alice -q -f - <<SQL >/dev/null
DO \$\$
DECLARE uid bigint;
BEGIN
  FOR i IN 1..$signups LOOP
    INSERT INTO app.users (email) VALUES ('u' || i || '@example.com') RETURNING id INTO uid;
    PERFORM salesforce.enqueue('sf', 'Contact', 'insert',
      jsonb_build_object('LastName', 'Signup ' || uid, 'User_Id__c', 'signup-' || uid), 'User_Id__c');
    IF i <= $loose THEN
      PERFORM salesforce.enqueue('sf', 'Contact', 'insert', jsonb_build_object('LastName', 'Loose ' || i));
    END IF;
    COMMIT;
  END LOOP;
END
\$\$;
SQL
took=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
[ "$(sql -tA -c "SELECT count(*) FROM app.users")" = "$signups" ] || fail "signups failed during the outage"
echo "outage: $signups signups committed in $took s while Salesforce refused connections"
sleep "$(python3 -c "print(max(0, 20.5 - $took))")"
# Back from refusing; now it hangs for 10 s, and 2% of connections drop.
control POST faults/hang '{"on": true}' >/dev/null
control PATCH faults '{"server_unavailable": 0.0, "unable_to_lock_row": 0.0, "drop_connection": 0.02, "seed": 7}' >/dev/null
other=$(as alice -tA -c "SELECT salesforce.enqueue('sf2', 'Contact', 'insert', '{\"LastName\": \"Other org\", \"User_Id__c\": \"other-1\"}', 'User_Id__c')")
sleep 5
[ "$(sql -tA -c "SELECT state IN ('pending', 'sending') FROM salesforce.outbox WHERE id = $other")" = t ] || fail "sf2's write went through a hung org"
org 2 DELETE faults/hang >/dev/null
sleep 5
control DELETE faults/hang >/dev/null
recovered=$(date +%s.%N)
# The worker is killed three times while writes are on their way.
kills=0
for _ in $(seq 600); do
  if [ "$(try_sql "SELECT count(*) > 0 FROM salesforce.outbox WHERE state = 'sending' AND server = 'sf'")" = t ]; then
    kill -9 "$(worker_pid)" 2>/dev/null && kills=$((kills + 1))
    [ "$kills" = 3 ] && break
    sleep 1
  fi
  sleep 0.1
done
[ "$kills" = 3 ] || fail "the worker was killed $kills times, not 3"
wait_for 60 "SELECT count(*) = 0 FROM salesforce.outbox WHERE server = 'sf' AND operation = 'upsert' AND state <> 'delivered'"
drained=$(python3 -c "print(round($(date +%s.%N) - $recovered, 1))")
[ "$(in_salesforce "User_Id__c LIKE 'signup-%'")" = "$signups" ] || fail "keyed Contacts lost or duplicated: $(in_salesforce "User_Id__c LIKE 'signup-%'")"
# Creates without a key: never sent twice; those whose outcome is unknown wait for a person.
wait_for 60 "SELECT count(*) = 0 FROM salesforce.outbox WHERE server = 'sf' AND operation = 'insert' AND state IN ('pending', 'sending')"
delivered=$(sql -tA -c "SELECT count(*) FROM salesforce.outbox WHERE operation = 'insert' AND record->>'LastName' LIKE 'Loose %' AND state = 'delivered'")
unknown=$(sql -tA -c "SELECT count(*) FROM salesforce.outbox WHERE operation = 'insert' AND record->>'LastName' LIKE 'Loose %' AND state = 'unknown'")
there=$(in_salesforce "LastName LIKE 'Loose %'")
twice=$(try_sql "SELECT count(*) FROM (SELECT r->>'LastName' FROM salesforce.query('sf', \$\$SELECT LastName FROM Contact WHERE LastName LIKE 'Loose %'\$\$) r GROUP BY 1 HAVING count(*) > 1) d")
[ "$twice" = 0 ] || fail "$twice creates without a key were sent twice"
[ $((delivered + unknown)) = "$loose" ] || fail "creates without a key: $delivered delivered, $unknown unknown, of $loose"
[ "$there" -ge "$delivered" ] && [ "$there" -le "$loose" ] || fail "$there loose Contacts in Salesforce, $delivered delivered"
echo "outage: after 20 s refused + 10 s hung, 3 kill -9 and 2% dropped connections, all $signups keyed Contacts exactly once ${drained} s after recovery; creates without a key: $delivered delivered, $unknown unknown, none twice"
wait_for 90 "SELECT state = 'delivered' FROM salesforce.outbox WHERE id = $other"
echo "isolation: while sf2's org hung its write waited, and was delivered once it answered; sf's writes went on"
