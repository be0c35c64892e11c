#!/usr/bin/env bash
# The everyday operator: a sync changed in place (sync_alter), a copy taken
# up again after sync_disable, NOTICEs only where they say something, lag
# per mode with docs/operations.md's monitoring query quiet on healthy
# syncs, the CDC selection checked, fresh describes (IMPORT FOREIGN SCHEMA,
# refresh_describe), a base64 field appearing during a Bulk backfill, and
# sync_runs kept bounded by the worker.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
dir=/tmp/pg_salesforce-e2e-operator
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed demo --records Contact=3000 --pubsub-listen 127.0.0.1:0 --pubsub-keepalive 2
start_cluster "$dir" "shared_preload_libraries = 'pg_salesforce'" "salesforce.sync_naptime = 1"
trap 'stop_cluster "$dir"; stop_sfsim' EXIT
source "$(dirname "$0")/helpers.sh"

setup_org crm "account, contact, lead"
sql -q -c "ALTER SERVER org OPTIONS (ADD pubsub_url '$SFSIM_PUBSUB_URL', max_requests_per_day '1000000')"
# Every message a statement sends the client, one a line.
messages() { sql -c "$1" 2>&1 >/dev/null | grep -E '^(NOTICE|WARNING|ERROR|DETAIL|HINT|CONTEXT):' || true; }
same_as_salesforce() { # TABLE COLUMNS
  [ "$(checksum "$1" "$2")" = "$(checksum crm.account "$2")" ] || fail "$1 differs from Salesforce in $2"
}

# 1. One NOTICE from sync_enable, true to the worker running.
out=$(messages "SELECT salesforce.sync_enable('org', 'Account', every => '2 seconds', options => '{\"fields\": [\"Name\"]}')")
[ "$(wc -l <<<"$out")" = 1 ] && grep -q "^NOTICE:  Account will be copied into org.account: the sync worker picks it up" <<<"$out" \
  || fail "sync_enable's messages: $out"
wait_for 60 "SELECT last_status = 'succeeded' FROM salesforce.sync_status WHERE object = 'Account'"
same_as_salesforce org.account "id, name"

# 2. sync_alter: a new field gets its column, filled by a resync; options
# merge; every changes; what shapes the table is refused with the way out.
out=$(messages "SELECT salesforce.sync_alter('org', 'Account', every => '1 hour', options => '{\"fields\": [\"Name\", \"Industry\"]}')")
[ -z "$out" ] || fail "sync_alter said: $out"
[ "$(try_sql "SELECT every || ' ' || (options->'fields')::text || ' ' || array_to_string(columns, ',') FROM salesforce.syncs WHERE object = 'Account'")" \
  = '01:00:00 ["Name", "Industry"] id,name,industry,system_modstamp' ] \
  || fail "sync_alter did not change the sync: $(try_sql "SELECT every, options, columns FROM salesforce.syncs WHERE object = 'Account'")"
[ "$(try_sql "SELECT count(*) FROM org.account WHERE industry IS NOT NULL")" = 0 ] || fail "the new column filled before a resync"
out=$(messages "CALL salesforce.resync('org', 'Account')")
[ -z "$out" ] || fail "resync said: $out"
same_as_salesforce org.account "id, name, industry"
sql -q -c "SELECT salesforce.sync_alter('org', 'Account', options => '{\"lookback_seconds\": 30}')" >/dev/null
[ "$(try_sql "SELECT options FROM salesforce.syncs WHERE object = 'Account'")" = '{"fields": ["Name", "Industry"], "lookback_seconds": 30}' ] \
  || fail "options did not merge: $(try_sql "SELECT options FROM salesforce.syncs WHERE object = 'Account'")"
out=$(messages "SELECT salesforce.sync_alter('org', 'Account', options => '{\"soft_delete\": true}')")
grep -q 'ERROR:  the sync option "soft_delete" of .* cannot change in place' <<<"$out" || fail "soft_delete changed in place: $out"
out=$(messages "SELECT salesforce.sync_alter('org', 'Account', options => '{\"fields\": [\"Nope__c\"]}')")
grep -q "ERROR:  Account has no field Nope__c" <<<"$out" || fail "an unknown field: $out"
echo "sync_alter: fields, options, every"

# 3. sync_disable, then sync_enable takes the copy up again; messages stay
# one line each.
out=$(messages "SELECT salesforce.sync_disable('org', 'Account')")
[ -z "$out" ] || fail "sync_disable said: $out"
out=$(messages "SELECT salesforce.sync_enable('org', 'Account', every => '2 seconds', options => '{\"fields\": [\"Name\", \"Industry\"]}')")
[ "$(wc -l <<<"$out")" = 1 ] && grep -q "^NOTICE:  Account will be copied into org.account" <<<"$out" || fail "taking the copy up again: $out"
wait_for 60 "SELECT last_status = 'succeeded' AND stage = 'incremental' FROM salesforce.sync_status WHERE object = 'Account'"
same_as_salesforce org.account "id, name, industry"
sql -q -c "SELECT salesforce.sync_disable('org', 'Account', drop_table => true)" >/dev/null
[ "$(try_sql "SELECT to_regclass('org.account') IS NULL")" = t ] || fail "drop_table left the copy"
out=$(messages "SELECT salesforce.sync_disable('org', 'Account', drop_table => true)")
grep -q "^ERROR:  Account on server org is not synced" <<<"$out" && grep -q "^HINT:  .*DROP TABLE removes it" <<<"$out" \
  || fail "disabling twice: $out"
sql -q -c "CREATE TABLE org.lead (id text PRIMARY KEY)"
out=$(messages "SELECT salesforce.sync_enable('org', 'Lead')")
grep -q "^ERROR:  table org.lead cannot hold the copy: it has no column " <<<"$out" && ! grep -q "^CONTEXT:" <<<"$out" \
  || fail "a table that does not fit: $out"
sql -q -c "DROP TABLE org.lead"
echo "sync_disable and sync_enable: the copy taken up again, one-line errors"

# 4. Lag per mode, and the CDC selection. Contact streams (selected), Lead
# is not selected: a WARNING, and sync_status says so until it is.
control POST cdc '{"objects": ["Contact"]}' >/dev/null
sql -q -c "SELECT salesforce.sync_enable('org', 'Account', every => '2 seconds', options => '{\"fields\": [\"Name\"]}')" >/dev/null 2>&1
out=$(messages "SELECT salesforce.sync_enable('org', 'Contact', every => '1 hour', options => '{\"cdc\": true}')")
! grep -q WARNING <<<"$out" || fail "a selected object warned: $out"
out=$(messages "SELECT salesforce.sync_enable('org', 'Lead', every => '1 hour', options => '{\"cdc\": true}')")
grep -q "^WARNING:  Lead is not selected for Change Data Capture: .*move Lead to Selected Entities" <<<"$out" || fail "no WARNING for Lead: $out"
[ "$(try_sql "SELECT stream_warning LIKE 'Lead is not selected%' FROM salesforce.sync_status WHERE object = 'Lead'")" = t ] \
  || fail "sync_status does not say Lead is not selected"
wait_for 120 "SELECT bool_and(stage = 'incremental') FROM salesforce.syncs"
wait_for 60 "SELECT status = 'streaming' FROM salesforce.streams WHERE server = 'org'"
# An hour since the last polls, as far as sync_status can tell: the stream
# keeps Contact current (keepalives every 2 s), and nothing keeps Lead.
sql -q -c "UPDATE salesforce.sync_runs SET started_at = started_at - interval '1 hour', finished_at = finished_at - interval '1 hour' WHERE object IN ('Contact', 'Lead')"
sleep 3
[ "$(try_sql "SELECT lag < interval '10 seconds' FROM salesforce.sync_status WHERE object = 'Contact'")" = t ] \
  || fail "a current stream's lag: $(try_sql "SELECT lag FROM salesforce.sync_status WHERE object = 'Contact'")"
[ "$(try_sql "SELECT lag > interval '1 hour' FROM salesforce.sync_status WHERE object = 'Lead'")" = t ] \
  || fail "an unselected object's lag: $(try_sql "SELECT lag FROM salesforce.sync_status WHERE object = 'Lead'")"
# docs/operations.md's query for syncs behind or failing, as printed there.
behind=$(sed -n '/^-- syncs behind by more than 10 minutes/,/^[^-].*;$/p' "$(dirname "$0")/../../docs/operations.md")
[ -n "$behind" ] || fail "docs/operations.md has no query for syncs behind"
[ "$(sql -tA -c "$behind" | cut -d'|' -f1 | sort | tr '\n' ' ')" = "org.lead " ] \
  || fail "the monitoring query flags: $(sql -tA -c "$behind")"
control POST cdc '{"objects": ["Contact", "Lead"]}' >/dev/null
control POST faults/cdc_drop_streams >/dev/null
wait_for 60 "SELECT stream_warning IS NULL FROM salesforce.sync_status WHERE object = 'Lead'"
echo "lag: a current stream 0 s behind, an unselected object flagged; the selection checked at each stream start"

# 5. Fresh describes: IMPORT FOREIGN SCHEMA sees a field added a moment
# ago, though another session described the object just before; and
# refresh_describe makes a session that described an object see its new
# field.
sql -q -c "SELECT count(*) FROM crm.lead" >/dev/null
control POST objects/Lead/fields '[{"name": "Tier__c", "type": "string", "length": 20, "label": "Tier"}]' >/dev/null
sql -q -c "CREATE SCHEMA crm2" -c "IMPORT FOREIGN SCHEMA salesforce LIMIT TO (lead) FROM SERVER org INTO crm2"
[ "$(try_sql "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'crm2' AND column_name = 'tier__c'")" = 1 ] \
  || fail "IMPORT FOREIGN SCHEMA used a stale describe"
out=$(sql -v ON_ERROR_STOP=0 2>&1 <<SQL
SELECT count(*) FROM crm.account;
\\! curl -sf -X POST "$SFSIM_URL/__sim/objects/Account/fields" -H 'Content-Type: application/json' -d '[{"name": "Tier__c", "type": "string", "length": 20, "label": "Tier"}]' >/dev/null
ALTER FOREIGN TABLE crm.account ADD COLUMN tier__c text OPTIONS (field 'Tier__c');
SELECT 'before', count(tier__c) FROM crm.account;
SELECT salesforce.refresh_describe('org', 'Account');
SELECT 'after', count(tier__c) FROM crm.account;
SQL
)
grep -q 'field "Tier__c" of column "tier__c" does not exist on Salesforce object Account' <<<"$out" || fail "the session's describe was fresh already: $out"
grep -q 'after' <<<"$out" || fail "refresh_describe did not reach the session's describe: $out"
echo "describes: IMPORT afresh, refresh_describe"

# 6. A base64 field appears while a Bulk backfill's job runs: the run fails
# with the option check's error, and "api": "rest" finishes the backfill.
sql -q -c "ALTER SYSTEM SET salesforce.sync_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
sleep 2
control PATCH settings '{"bulk_job_processing_ms": 600000}' >/dev/null
sql -q -c "SELECT salesforce.sync_disable('org', 'Contact', drop_table => true)" \
  -c "SELECT salesforce.sync_enable('org', 'Contact', every => '1 hour', options => '{\"api\": \"bulk\"}')" >/dev/null 2>&1
sql -q <<'SQL'
DO $$
DECLARE run bigint := salesforce._sync_begin('org', 'Contact');
BEGIN
    -- the describe, COUNT() and the job's creation
    PERFORM salesforce._sync_step(run) FROM generate_series(1, 3);
    PERFORM salesforce._sync_finish(ARRAY[run]);
END $$;
SQL
[ "$(try_sql "SELECT bulk_job IS NOT NULL FROM salesforce.syncs WHERE object = 'Contact'")" = t ] || fail "no Bulk job started"
control POST objects/Contact/fields '[{"name": "Photo__c", "type": "base64", "label": "Photo"}]' >/dev/null
sql -q -c "SELECT salesforce.refresh_describe('org', 'Contact')" >/dev/null
out=$(messages "CALL salesforce.sync_now('org', 'Contact')")
grep -q "Bulk API 2.0 cannot return field Photo__c of Contact" <<<"$out" || fail "the Bulk read phase: $out"
control PATCH settings '{"bulk_job_processing_ms": 0}' >/dev/null
sql -q -c "SELECT salesforce.sync_alter('org', 'Contact', options => '{\"api\": \"rest\"}')" >/dev/null
sql -q -c "CALL salesforce.sync_now('org', 'Contact')" >/dev/null
[ "$(try_sql "SELECT count(*) FROM org.contact")" = "$(try_sql "SELECT count(*) FROM crm.contact")" ] || fail "the REST backfill after the switch"
echo "base64 during a Bulk backfill: the clear error, then REST"

# 7. The run log stays bounded (5 runs a sync here, applied at the reload),
# and the API requests of the runs it drops still count in sync_status.
for _ in $(seq 8); do sql -q -c "CALL salesforce.sync_now('org', 'Lead')" >/dev/null; done
used=$(try_sql "SELECT api_requests_24h FROM salesforce.sync_status WHERE object = 'Lead'")
[ "$(try_sql "SELECT count(*) > 5 FROM salesforce.sync_runs WHERE object = 'Lead'")" = t ] || fail "too few runs to trim"
sql -q -c "ALTER SYSTEM SET salesforce.sync_runs_per_sync = 5" -c "SELECT pg_reload_conf()" >/dev/null
wait_for 30 "SELECT count(*) <= 5 FROM salesforce.sync_runs WHERE object = 'Lead'"
[ "$(try_sql "SELECT api_requests_24h FROM salesforce.sync_status WHERE object = 'Lead'")" = "$used" ] \
  || fail "api_requests_24h changed when runs were dropped: $used, now $(try_sql "SELECT api_requests_24h FROM salesforce.sync_status WHERE object = 'Lead'")"
[ "$(try_sql "SELECT count(*) > 0 FROM salesforce.api_usage")" = t ] || fail "no requests kept in api_usage"
[ "$(try_sql "SELECT count(*) FROM salesforce.sync_status WHERE last_run_id IS NULL")" = 0 ] || fail "a sync's last run was dropped"
echo "sync_runs: at most 5 runs a sync, api_requests_24h unchanged ($used)"
