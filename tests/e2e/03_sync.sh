#!/usr/bin/env bash
# The sync engine on a real cluster with the worker preloaded: a 100,000
# Contact backfill through REST surviving kill -9 three times, edits/deletes/undeletes
# and a late commit, faults, an exhausted daily limit, a field added, the
# worker and sync_now on one object, and pg_cron driving sync_now. After each
# scenario the copy must equal Salesforce by a checksum over all columns.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
dir=/tmp/pg_salesforce-e2e-sync
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed demo --records Contact=100000
# describe_interval 0: this test moves sfsim's clock 61 s ahead at once. A run
# that reuses a describe carries Salesforce's clock on from the last answer,
# before the jump, so getDeleted's window would end a run later than here.
start_cluster "$dir" "shared_preload_libraries = 'pg_salesforce,pg_cron'" "salesforce.sync_naptime = 1" "salesforce.describe_interval = 0" \
  "cron.database_name = 'postgres'" "cron.host = '$dir'"
trap 'stop_cluster "$dir"; stop_sfsim' EXIT
source "$(dirname "$0")/helpers.sh"
# The copy must equal what Salesforce holds now, read through the foreign table.
assert_equal() { # TABLE REMOTE OBJECT [FILTER]
  local cols; cols=$(columns "$3")
  [ "$(checksum "$1" "$cols" "${4:-}")" = "$(checksum "$2" "$cols" "")" ] || fail "$1 differs from Salesforce ($5)"
}
caught_up() { # every change made so far is in: a run that started after now succeeded
  local t; t=$(try_sql "SELECT clock_timestamp()")
  wait_for 120 "SELECT EXISTS (SELECT 1 FROM salesforce.sync_runs WHERE object = '$1' AND status = 'succeeded' AND started_at > '$t')"
}

setup_org remote contact
sql -q -c "ALTER SERVER org OPTIONS (ADD max_requests_per_day '1000000')"
# REST here; 06_bulk.sh runs the same backfill through Bulk API 2.0.
notice=$(sql -tA -c "SELECT salesforce.sync_enable('org', 'Contact', every => '2 seconds', options => '{\"api\": \"rest\"}')" 2>&1 >/dev/null)
grep -q "the sync worker picks it up" <<<"$notice" || fail "sync_enable's NOTICE, with a worker running: $notice"

# 1. Backfill of 100,000 Contacts by the worker, killed three times midway.
for at in 20000 45000 70000; do
  wait_for 300 "SELECT backfill_rows >= $at FROM salesforce.syncs WHERE object = 'Contact'"
  kill -9 "$(worker_pid)"
  sleep 2
done
wait_for 600 "SELECT stage = 'incremental' FROM salesforce.syncs WHERE object = 'Contact'"
caught_up Contact
[ "$(try_sql "SELECT count(*) FROM org.contact")" = 100000 ] || fail "backfill did not copy 100,000 contacts"
assert_equal org.contact remote.contact Contact "" "after the backfill"
resumed=$(control GET "requests" | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin)["requests"] if r["path"].endswith("/query") and "FROM Contact WHERE Id >" in (r.get("soql") or "")))')
[ "$resumed" -ge 3 ] || fail "the backfill did not resume from its checkpoint after each kill ($resumed resumptions)"
interrupted=$(try_sql "SELECT count(*) FROM salesforce.sync_runs WHERE object = 'Contact' AND error LIKE 'interrupted%'")
[ "$interrupted" -ge 3 ] || fail "the killed runs are not logged as interrupted ($interrupted)"
copied=$(try_sql "SELECT sum(rows_upserted) FROM salesforce.sync_runs WHERE object = 'Contact' AND kind = 'backfill'")
# Resuming re-copies at most the page in flight; restarting from zero would copy 235,000.
[ "$copied" -lt 110000 ] || fail "the backfill restarted from zero ($copied rows copied)"
echo "backfill: 100000 rows, $resumed resumptions after kill -9"

# 2. Edits, creates, soft and hard deletes, an undelete and a late commit.
ids=$(try_sql "SELECT string_agg(id, ' ' ORDER BY id) FROM (SELECT id FROM org.contact ORDER BY id LIMIT 4) x")
set -- $ids
control PATCH "records/Contact/$1" '{"LastName": "Edited", "Title": "CTO"}' >/dev/null
control POST "records/Contact" '{"LastName": "Created", "Email": "created@example.com"}' >/dev/null
control DELETE "records/Contact/$2" >/dev/null
control DELETE "records/Contact/$3?hard=true" >/dev/null
control DELETE "records/Contact/$4" >/dev/null
control POST "records/Contact/$4/undelete" >/dev/null
caught_up Contact
control POST "faults/late_commit" '{"object": "Contact", "age_seconds": 90, "fields": {"LastName": "Late"}}' >/dev/null
control POST "time/advance" '{"seconds": 61}' >/dev/null
caught_up Contact
[ "$(try_sql "SELECT count(*) FROM org.contact WHERE last_name = 'Late'")" = 1 ] || fail "the late-commit record was lost"
assert_equal org.contact remote.contact Contact "" "after edits and deletes"
echo "edits, deletes, undelete, late commit: copy equal"

# 3. 5% 503s plus dropped connections, while a resync runs beside the worker.
control PATCH faults '{"server_unavailable": 0.05, "drop_connection": 0.05, "seed": 7}' >/dev/null
control PATCH "records/Contact/$1" '{"Title": "Under faults"}' >/dev/null
sql -q -c "SET client_min_messages = warning" -c "CALL salesforce.resync('org', 'Contact')" >/dev/null
caught_up Contact
control PATCH faults '{"server_unavailable": 0, "drop_connection": 0}' >/dev/null
assert_equal org.contact remote.contact Contact "" "after faults"
overlaps=$(try_sql "SELECT count(*) FROM salesforce.sync_runs a JOIN salesforce.sync_runs b ON a.sync_id = b.sync_id AND a.id < b.id
  AND b.started_at < coalesce(a.finished_at, now()) AND a.started_at < coalesce(b.finished_at, now())")
[ "$overlaps" = 0 ] || fail "two runs of one sync overlapped ($overlaps)"
echo "faults and resync beside the worker: copy equal, no overlapping runs"

# 4. The daily limit used up mid-run, then restored.
sql -q -c "ALTER SERVER org OPTIONS (ADD budget_reserve_percent '0')"
used=$(control GET usage | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_requests_used"])')
control PATCH settings "{\"daily_limit\": $((used + 2))}" >/dev/null
control PATCH "records/Contact/$1" '{"Title": "After the limit"}' >/dev/null
wait_for 60 "SELECT EXISTS (SELECT 1 FROM salesforce.sync_runs WHERE object = 'Contact' AND status = 'throttled' AND error LIKE '%REQUEST_LIMIT_EXCEEDED%')"
control PATCH settings '{"daily_limit": 100000000}' >/dev/null
# A throttled sync waits 15 minutes; bring that forward.
try_sql "UPDATE salesforce.syncs SET next_due = now() WHERE object = 'Contact'" >/dev/null
caught_up Contact
assert_equal org.contact remote.contact Contact "" "after the limit was restored"
echo "daily limit: throttled, then resumed"

# 5. A field added in Salesforce mid-life.
control POST "objects/Contact/fields" '[{"name": "Loyalty__c", "type": "string", "length": 20}]' >/dev/null
control PATCH "records/Contact/$1" '{"Loyalty__c": "gold"}' >/dev/null
caught_up Contact
sql -q -c "SET client_min_messages = warning; DROP SCHEMA remote CASCADE; CREATE SCHEMA remote; IMPORT FOREIGN SCHEMA salesforce LIMIT TO (contact) FROM SERVER org INTO remote"
[ "$(try_sql "SELECT loyalty__c FROM org.contact WHERE id = '$1'")" = gold ] || fail "the new field did not arrive"
assert_equal org.contact remote.contact Contact "" "after a field was added"
echo "schema drift: new column loyalty__c"

# 6. pg_cron drives sync_now while the worker is switched off by SIGHUP.
sql -q -c "ALTER SYSTEM SET salesforce.sync_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
sql -q -c "CREATE SCHEMA remote_lead; IMPORT FOREIGN SCHEMA salesforce LIMIT TO (lead) FROM SERVER org INTO remote_lead"
sql -q -c "CREATE EXTENSION pg_cron" -c "SELECT salesforce.sync_enable('org', 'Lead', every => '1 second')" >/dev/null 2>&1
sql -q -c "SELECT cron.schedule('sync-leads', '* * * * *', \$\$CALL salesforce.sync_now('org', 'Lead')\$\$)" >/dev/null
wait_for 150 "SELECT EXISTS (SELECT 1 FROM cron.job_run_details WHERE status = 'succeeded')"
[ "$(try_sql "SELECT string_agg(DISTINCT started_by, ',') FROM salesforce.sync_runs WHERE object = 'Lead'")" = sync_now ] || fail "the worker ran while switched off"
assert_equal org.lead remote_lead.lead Lead "" "after pg_cron's run"
echo "pg_cron: sync_now every minute, copy equal"

stop_cluster "$dir"
grep -q "pg_salesforce sync worker stopped" "$dir/server.log" || fail "the worker did not stop cleanly on SIGTERM"
