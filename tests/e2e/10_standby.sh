#!/usr/bin/env bash
# A streaming standby (pg_basebackup -R): copies and foreign tables read
# there, writes fail as read-only, no worker runs and nothing is logged in a
# loop; once promoted, its worker takes the syncs over.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
dir=/tmp/pg_salesforce-e2e-standby
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed demo
start_cluster "$dir" "shared_preload_libraries = 'pg_salesforce'" "salesforce.sync_naptime = 1"
primary_port=$PGPORT
standby_port=$(free_port)
standby() { PGPORT=$standby_port sql "$@"; }
trap 'as_postgres "$PG_BIN/pg_ctl" -D "$dir/standby" -m immediate -w stop >/dev/null 2>&1; stop_cluster "$dir"; stop_sfsim' EXIT
source "$(dirname "$0")/helpers.sh"

setup_org crm "account"
sql -q -c "SET client_min_messages = warning" -c "SELECT salesforce.sync_enable('org', 'Account', every => '1 second')" >/dev/null
wait_for 60 "SELECT count(*) > 0 FROM salesforce.sync_runs WHERE status = 'succeeded'"

as_postgres "$PG_BIN/pg_basebackup" -D "$dir/standby" -R -X stream -h "$dir" -p "$primary_port" -U postgres
as_postgres "$PG_BIN/pg_ctl" -D "$dir/standby" -o "-p $standby_port" -l "$dir/standby.log" -w start >/dev/null
for _ in $(seq 60); do [ "$(standby -tA -c "SELECT pg_is_in_recovery()" 2>/dev/null)" = t ] && break; sleep 0.5; done

copied=$(sql -tA -c "SELECT count(*) FROM org.account")
[ "$(standby -tA -c "SELECT count(*) FROM org.account")" = "$copied" ] || fail "the standby's copy differs"
[ "$(standby -tA -c "SELECT count(*) FROM crm.account")" = "$copied" ] || fail "the foreign table does not read on the standby"
out=$(standby -c "INSERT INTO crm.account (name) VALUES ('From the standby')" 2>&1) && fail "a write on the standby succeeded"
grep -q "read-only transaction" <<<"$out" || fail "a write on the standby failed unclearly: $out"
out=$(standby -c "CALL salesforce.sync_now('org', 'Account')" 2>&1) && fail "sync_now on the standby succeeded"
grep -q "syncs cannot run on a standby" <<<"$out" || fail "sync_now on the standby failed unclearly: $out"
sleep 5
[ "$(standby -tA -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_salesforce sync'")" = 0 ] || fail "a sync worker runs on the standby"
# Only the two refusals above are errors; no worker, warning or crash loop.
noise=$(grep -E "\] (WARNING|ERROR|FATAL|PANIC): |sync worker started" "$dir/standby.log" | grep -vE "read-only transaction|cannot run on a standby" || true)
[ -z "$noise" ] || fail "the standby logged: $(head -3 <<<"$noise")"

# The primary's worker goes on; its runs reach the standby.
runs=$(sql -tA -c "SELECT count(*) FROM salesforce.sync_runs")
for _ in $(seq 60); do [ "$(standby -tA -c "SELECT count(*) FROM salesforce.sync_runs")" -gt "$runs" ] && break; sleep 0.5; done
[ "$(standby -tA -c "SELECT count(*) FROM salesforce.sync_runs")" -gt "$runs" ] || fail "the primary's runs do not reach the standby"

stop_cluster "$dir"
as_postgres "$PG_BIN/pg_ctl" -D "$dir/standby" -w promote >/dev/null
export PGPORT=$standby_port
wait_for 30 "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_salesforce sync'"
promoted_at=$(sql -tA -c "SELECT now()")
wait_for 60 "SELECT count(*) > 0 FROM salesforce.sync_runs WHERE started_by = 'worker' AND status = 'succeeded' AND started_at > '$promoted_at'"
sql -q -c "INSERT INTO crm.account (name) VALUES ('After promotion')"
wait_for 30 "SELECT count(*) = 1 FROM org.account WHERE name = 'After promotion'"
echo "standby: copies and foreign tables read, writes refused as read-only, no worker; promoted, its worker syncs"
