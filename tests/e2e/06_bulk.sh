#!/usr/bin/env bash
# A 100,000-Contact backfill through Bulk API 2.0 by the worker, under 5%
# 503s, killed with kill -9 three times while it reads the job's results.
# The copy must equal Salesforce by checksum, one job must serve the whole
# backfill, and no row may be copied twice.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
dir=/tmp/pg_salesforce-e2e-bulk
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed demo --records Contact=100000
start_cluster "$dir" "shared_preload_libraries = 'pg_salesforce'" "salesforce.sync_naptime = 1"
trap 'stop_cluster "$dir"; stop_sfsim' EXIT
source "$(dirname "$0")/helpers.sh"
bulk_creates() { control GET requests | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin)["requests"] if r["method"] == "POST" and r["path"].endswith("/jobs/query")))'; }

setup_org remote contact
sql -q -c "ALTER SERVER org OPTIONS (ADD max_requests_per_day '1000000')"
control PATCH faults '{"server_unavailable": 0.05, "seed": 11}' >/dev/null
sql -tA -c "SELECT salesforce.sync_enable('org', 'Contact', every => '1 hour', options => '{\"api\": \"bulk\"}')" >/dev/null 2>&1

for at in 20000 45000 70000; do
  wait_for 300 "SELECT backfill_rows >= $at FROM salesforce.syncs WHERE object = 'Contact'"
  kill -9 "$(worker_pid)"
  sleep 2
done
wait_for 600 "SELECT stage = 'incremental' FROM salesforce.syncs WHERE object = 'Contact'"
control PATCH faults '{"server_unavailable": 0}' >/dev/null

[ "$(try_sql "SELECT count(*) FROM org.contact")" = 100000 ] || fail "the backfill did not copy 100,000 contacts"
cols=$(columns Contact)
[ "$(checksum org.contact "$cols")" = "$(checksum remote.contact "$cols")" ] || fail "the copy differs from Salesforce"
[ "$(bulk_creates)" = 1 ] || fail "the backfill did not resume its job after each kill ($(bulk_creates) jobs)"
interrupted=$(try_sql "SELECT count(*) FROM salesforce.sync_runs WHERE object = 'Contact' AND error LIKE 'interrupted%'")
[ "$interrupted" -ge 3 ] || fail "the killed runs are not logged as interrupted ($interrupted)"
copied=$(try_sql "SELECT sum(rows_upserted) FROM salesforce.sync_runs WHERE object = 'Contact' AND kind = 'backfill'")
[ "$copied" = 100000 ] || fail "rows were copied twice or lost: $copied rows copied for 100,000"
echo "bulk backfill: 100000 rows under 5% 503s and 3 kills, one job, each row copied once"
