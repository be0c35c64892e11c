#!/usr/bin/env bash
# pg_cron drives a sync on a cluster that listens only on its Unix socket
# (listen_addresses = ''), configured as docs/sync.md says: without the
# extension preloaded, with cron.use_background_workers; the copy must equal
# Salesforce after the job's run.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
dir=/tmp/pg_salesforce-e2e-pg-cron
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed demo
start_cluster "$dir" "shared_preload_libraries = 'pg_cron'" "cron.database_name = 'postgres'" \
  "cron.use_background_workers = on"
trap 'stop_cluster "$dir"; stop_sfsim' EXIT
source "$(dirname "$0")/helpers.sh"

[ "$(sql -tA -c "SHOW listen_addresses")" = "" ] || fail "the cluster listens on TCP"
setup_org remote "contact"
# The docs' block, with this test's server and object.
block=$(awk '/^\*\*pg_cron\.\*\*/{on=1} on && /^```sql$/{grab=1; next} grab && /^```$/{exit} grab' "$(dirname "$0")/../../docs/sync.md")
grep -q "cron.use_background_workers = on" <<<"$block" || fail "docs/sync.md's pg_cron block changed: $block"
sql -q -c "SELECT salesforce.sync_enable('org', 'Contact', every => '1 minute')" 2>/dev/null
grep -v '^--' <<<"$block" | sed "s/'crm', 'Contact'/'org', 'Contact'/" | sql -q >/dev/null
wait_for 150 "SELECT EXISTS (SELECT 1 FROM cron.job_run_details WHERE status = 'succeeded')"
[ "$(try_sql "SELECT count(*) FROM cron.job_run_details WHERE status <> 'succeeded'")" = 0 ] \
  || fail "a job failed: $(try_sql "SELECT return_message FROM cron.job_run_details WHERE status <> 'succeeded' LIMIT 1")"
[ "$(try_sql "SELECT string_agg(DISTINCT started_by || ' ' || status, ',') FROM salesforce.sync_runs")" = "sync_now succeeded" ] \
  || fail "the runs: $(try_sql "SELECT string_agg(started_by || ' ' || status, ',') FROM salesforce.sync_runs")"
cols=$(columns Contact)
[ "$(checksum org.contact "$cols")" = "$(checksum remote.contact "$cols")" ] || fail "the copy differs from Salesforce"
echo "pg_cron with listen_addresses = '': sync_now every minute in a background worker, copy equal"
