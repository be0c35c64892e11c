#!/usr/bin/env bash
# salesforce.sync_databases starts a sync worker for each database listed,
# and each keeps its own database's copies.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
dir=/tmp/pg_salesforce-e2e-databases
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed demo
start_cluster "$dir"
trap 'stop_cluster "$dir"; stop_sfsim' EXIT
source "$(dirname "$0")/helpers.sh"

sql -c "CREATE DATABASE sales"
printf '%s\n' "shared_preload_libraries = 'pg_salesforce'" "salesforce.sync_naptime = 1" \
  "salesforce.sync_databases = 'postgres, sales'" | as_postgres tee -a "$dir/data/postgresql.conf" >/dev/null
as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -o "-p $PGPORT" -l "$dir/server.log" -w restart >/dev/null

workers=$(try_sql "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity WHERE backend_type = 'pg_salesforce sync'")
[ "$workers" = "postgres,sales" ] || fail "sync workers run in: $workers"

for db in postgres sales; do
  PGDATABASE=$db setup_org crm "account"
done
PGDATABASE=postgres sql -q -c "SET client_min_messages = warning" -c "SELECT salesforce.sync_enable('org', 'Account')" >/dev/null
PGDATABASE=sales sql -q -c "SET client_min_messages = warning" -c "SELECT salesforce.sync_enable('org', 'Lead')" >/dev/null
export PGDATABASE=postgres
wait_for 60 "SELECT count(*) > 0 FROM salesforce.sync_runs WHERE status = 'succeeded' AND started_by = 'worker'"
PGDATABASE=sales wait_for 60 "SELECT count(*) > 0 FROM salesforce.sync_runs WHERE status = 'succeeded' AND started_by = 'worker'"
[ "$(sql -tA -c "SELECT count(*) FROM org.account") " = "$(sql -tA -c "SELECT count(*) FROM crm.account") " ] || fail "postgres: the copy differs"
[ "$(PGDATABASE=sales sql -tA -c "SELECT string_agg(object, ',') FROM salesforce.syncs")" = Lead ] || fail "sales: wrong syncs"
[ "$(PGDATABASE=sales sql -tA -c "SELECT count(*) > 0 FROM org.lead")" = t ] || fail "sales: Lead was not copied"
echo "databases: a worker each for postgres and sales, each copying its own syncs"
