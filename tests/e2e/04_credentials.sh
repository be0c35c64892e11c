#!/usr/bin/env bash
# Salesforce echoes the live access token in its error answers, on a read, a
# write and a sync: the token must reach neither the client, nor the server
# log, nor sync_runs.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
dir=/tmp/pg_salesforce-e2e-credentials
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed demo
start_cluster "$dir" "log_min_messages = info" "log_min_error_statement = error"
trap 'stop_cluster "$dir"; stop_sfsim' EXIT

source "$(dirname "$0")/helpers.sh"
# sfsim's tokens are the org id's first 15 characters, '!', and 96 letters or digits.
token_pattern='00D[A-Za-z0-9]{12}![A-Za-z0-9]{20,}'
leaks() { grep -Eo "$token_pattern" "$@" | head -1; }

setup_org crm "contact"
client=$dir/client.log
: >"$client"
# The first query logs in; each case below then meets an echo on its next request.
sql -c "SELECT count(*) FROM (SELECT id FROM crm.contact LIMIT 1) x" >/dev/null

expect_scrubbed() { # WHAT SQL
  local out
  out=$(sql -c "$2" 2>&1) && fail "$1: the echoed error did not fail the statement"
  printf '%s\n' "$out" >>"$client"
  grep -q 'contact support: \*\*\*\*\*\*\*\*' <<<"$out" || fail "$1: the answer was not echoed as expected: $out"
}

control POST faults/echo_token '{"count": 1, "path_contains": "/query"}' >/dev/null
expect_scrubbed read "SELECT last_name FROM crm.contact WHERE last_name = 'Nobody'"

control POST faults/echo_token '{"count": 1, "path_contains": "/composite/sobjects", "method": "POST"}' >/dev/null
expect_scrubbed write "INSERT INTO crm.contact (last_name) VALUES ('Echo')"

sql -q -c "SELECT salesforce.sync_enable('org', 'Contact', 'crm.contact_copy')" 2>>"$client"
control POST faults/echo_token '{"count": 1, "path_contains": "/query"}' >/dev/null
expect_scrubbed sync "CALL salesforce.sync_now('org', 'Contact')"
sql -tA -c "SELECT error FROM salesforce.sync_runs ORDER BY id DESC LIMIT 1" >"$dir/sync_runs.txt"
grep -q 'contact support: \*\*\*\*\*\*\*\*' "$dir/sync_runs.txt" || fail "sync_runs.error does not hold the scrubbed answer: $(cat "$dir/sync_runs.txt")"

leak=$(leaks "$client" "$dir/sync_runs.txt" "$dir/server.log" || true)
[ -z "$leak" ] || fail "an access token leaked: ${leak:0:20}..."
# The token was there to leak: sfsim echoed three answers.
[ "$(control GET faults | python3 -c 'import json,sys; print((json.load(sys.stdin)["echo_token"] or {}).get("remaining", 0))')" = 0 ] || fail "echoes left unsent"
