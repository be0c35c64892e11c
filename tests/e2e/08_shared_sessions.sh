#!/usr/bin/env bash
# With the extension preloaded, fresh connections share one login and one
# describe: 10 connections with a point query each cost at most 11 counted
# requests and one login, and an expired token is renewed once for all.
# Without preloading each backend logs in and describes for itself.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
dir=/tmp/pg_salesforce-e2e-shared
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed demo
start_cluster "$dir" "shared_preload_libraries = 'pg_salesforce'" "salesforce.sync_enabled = off"
trap 'stop_cluster "$dir"; stop_sfsim' EXIT
source "$(dirname "$0")/helpers.sh"

setup_org crm "contact"
id=$(sql -tA -c "SELECT id FROM crm.contact ORDER BY id LIMIT 1")

restart() { as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -o "-p $PGPORT" -l "$dir/server.log" -w restart >/dev/null; }
point_query() { sql -tA -c "SELECT last_name FROM crm.contact WHERE id = '$id'" >/dev/null; }
# counted requests and logins in sfsim's log since it was cleared
cost() {
  control GET requests | python3 -c '
import json, sys
log = json.load(sys.stdin)["requests"]
print(sum(r["counted"] for r in log), sum(r["path"] == "/services/oauth2/token" for r in log))'
}

# A restart empties shared memory: the first connection finds nothing there.
restart
control DELETE requests
for _ in $(seq 10); do point_query; done
read -r counted logins <<<"$(cost)"
echo "preloaded: 10 connections, $counted counted requests, $logins logins"
[ "$counted" -le 11 ] || fail "10 preloaded connections cost $counted counted requests (at most 11)"
[ "$logins" = 1 ] || fail "10 preloaded connections logged in $logins times"

# An expired token meets four backends at once; one logs in again.
control POST tokens/expire >/dev/null
control DELETE requests
pids=()
for _ in $(seq 4); do point_query & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || fail "a point query failed after the token expired"; done
read -r counted logins <<<"$(cost)"
echo "token expired: 4 concurrent connections, $logins login"
[ "$logins" = 1 ] || fail "4 backends meeting an expired token logged in $logins times"

# An ALTER SERVER changes the fingerprint: nothing shared under the old one is used.
sql -c "ALTER SERVER org OPTIONS (ADD request_timeout_ms '30000')"
control DELETE requests
point_query
read -r counted logins <<<"$(cost)"
[ "$counted" = 2 ] && [ "$logins" = 1 ] || fail "after ALTER SERVER: $counted counted, $logins logins (want a describe, a query, a login)"

echo "shared_preload_libraries = ''" | as_postgres tee -a "$dir/data/postgresql.conf" >/dev/null
restart
control DELETE requests
for _ in $(seq 10); do point_query; done
read -r counted logins <<<"$(cost)"
echo "not preloaded: 10 connections, $counted counted requests, $logins logins"
[ "$counted" = 20 ] && [ "$logins" = 10 ] || fail "without preloading: $counted counted, $logins logins (want 20 and 10)"
