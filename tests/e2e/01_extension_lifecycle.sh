#!/usr/bin/env bash
# The extension on a real cluster: create, configure a server against sfsim,
# refuse bad options, drop cleanly.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
dir=/tmp/pg_salesforce-e2e-lifecycle
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed empty
start_cluster "$dir"
trap 'stop_cluster "$dir"; stop_sfsim' EXIT

fail() { echo "$1" >&2; exit 1; }
sql -c "CREATE EXTENSION pg_salesforce"
[ "$(sql -tA -c "SELECT count(*) FROM pg_foreign_data_wrapper WHERE fdwname = 'salesforce'")" = 1 ] || fail "no wrapper"
sql -c "CREATE SERVER org FOREIGN DATA WRAPPER salesforce OPTIONS (login_url '$SFSIM_URL')"
sql -c "CREATE USER MAPPING FOR postgres SERVER org OPTIONS (grant_type 'refresh_token', client_id 'sfsim-client-id', refresh_token 'x')"
err=$(sql -c "ALTER SERVER org OPTIONS (ADD batch_size '50')" 2>&1) && fail "batch_size 50 accepted"
grep -q 'expected a whole number from 200 to 2000' <<<"$err" || fail "unexpected error: $err"
err=$(sql -c "ALTER USER MAPPING FOR postgres SERVER org OPTIONS (ADD passwd 'x')" 2>&1) && fail "unknown option accepted"
grep -q 'invalid option "passwd" for a salesforce user mapping' <<<"$err" || fail "unexpected error: $err"
grep -q 'HINT:  Valid options for a user mapping are' <<<"$err" || fail "no hint: $err"
sql -c "DROP EXTENSION pg_salesforce CASCADE" 2>/dev/null
# PostgreSQL keeps a control-file schema after DROP EXTENSION; nothing may remain in it.
left=$(sql -tA -c "SELECT (SELECT count(*) FROM pg_foreign_data_wrapper WHERE fdwname = 'salesforce')
                        + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'salesforce')")
[ "$left" = 0 ] || fail "$left objects left behind"
