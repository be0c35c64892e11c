#!/usr/bin/env bash
# Logical replication of a copy to a second cluster carries only real
# changes: an edit in Salesforce reaches the subscriber once, and polls that
# re-read records unchanged (the lookback) send it nothing.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
dir=/tmp/pg_salesforce-e2e-logical
sub=$dir-subscriber
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed demo
start_cluster "$sub"
sub_port=$PGPORT
start_cluster "$dir" "wal_level = logical"
trap 'stop_cluster "$dir"; stop_cluster "$sub"; stop_sfsim' EXIT
source "$(dirname "$0")/helpers.sh"
subscriber() { PGHOST=$sub PGPORT=$sub_port sql "$@"; }

setup_org crm "account"
# A lookback of a day: every poll re-reads the records changed in that time.
sql -q -c "SET client_min_messages = warning" \
  -c "SELECT salesforce.sync_enable('org', 'Account', options => '{\"lookback_seconds\": 86400}')" \
  -c "CALL salesforce.sync_now('org', 'Account')" -c "CREATE PUBLICATION copies FOR TABLE org.account" >/dev/null
subscriber -q -c "CREATE SCHEMA org"
as_postgres "$PG_BIN/pg_dump" -h "$PGHOST" -p "$PGPORT" -U postgres --schema-only -t org.account postgres | subscriber -q >/dev/null
subscriber -q <<SQL
CREATE TABLE changes (op text, id text);
CREATE FUNCTION record_change() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN INSERT INTO public.changes VALUES (TG_OP, coalesce(NEW.id, OLD.id)); RETURN NULL; END \$\$;
CREATE TRIGGER record_change AFTER INSERT OR UPDATE OR DELETE ON org.account FOR EACH ROW EXECUTE FUNCTION record_change();
ALTER TABLE org.account ENABLE ALWAYS TRIGGER record_change;
SET client_min_messages = warning;
CREATE SUBSCRIPTION copies CONNECTION 'host=$dir port=$PGPORT user=postgres dbname=postgres' PUBLICATION copies;
SQL
rows=$(sql -tA -c "SELECT count(*) FROM org.account")
for _ in $(seq 60); do [ "$(subscriber -tA -c "SELECT count(*) FROM org.account")" = "$rows" ] && break; sleep 0.5; done
[ "$(subscriber -tA -c "SELECT count(*) FROM org.account")" = "$rows" ] || fail "the subscriber did not copy the table"
subscriber -q -c "TRUNCATE changes"

id=$(sql -tA -c "SELECT id FROM org.account ORDER BY id LIMIT 1")
control PATCH "records/Account/$id" '{"Description": "replicated once"}' >/dev/null
sql -q -c "CALL salesforce.sync_now('org', 'Account')" >/dev/null
for _ in $(seq 60); do [ "$(subscriber -tA -c "SELECT count(*) FROM changes")" -gt 0 ] && break; sleep 0.5; done
# Two more polls re-read that record (and every other changed today), unchanged.
sql -q -c "CALL salesforce.sync_now('org', 'Account')" -c "CALL salesforce.sync_now('org', 'Account')" >/dev/null
reread=$(sql -tA -c "SELECT sum(rows_read) FROM (SELECT rows_read FROM salesforce.sync_runs ORDER BY id DESC LIMIT 2) r")
[ "$reread" -gt 0 ] || fail "the last polls re-read nothing, so they prove nothing"
lsn=$(sql -tA -c "SELECT pg_current_wal_lsn()")
for _ in $(seq 60); do
  [ "$(sql -tA -c "SELECT bool_and(confirmed_flush_lsn >= '$lsn') FROM pg_replication_slots")" = t ] && break
  sleep 0.5
done
changes=$(subscriber -tA -c "SELECT string_agg(op || ' ' || id, ', ') FROM changes")
[ "$changes" = "UPDATE $id" ] || fail "the subscriber received: $changes (want one UPDATE of $id)"
[ "$(subscriber -tA -c "SELECT description FROM org.account WHERE id = '$id'")" = "replicated once" ] || fail "the edit did not reach the subscriber"
echo "logical: one edit replicated once; $reread records re-read unchanged sent nothing"
