#!/usr/bin/env bash
# A customer connects their own org through the web-server flow with PKCE:
# authorize_url -> the customer approves -> complete_authorization -> a sync
# runs against that org. A refresh token Salesforce rotates is stored; after
# a revocation the server shows disconnected within one cycle and makes no
# further login attempt until the user mapping changes.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
dir=/tmp/pg_salesforce-e2e-connect
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed demo --orgs 2
start_cluster "$dir" "shared_preload_libraries = 'pg_salesforce'" "salesforce.sync_naptime = 1" "salesforce.describe_interval = 0"
trap 'stop_cluster "$dir"; stop_sfsim' EXIT
source "$(dirname "$0")/helpers.sh"
org2() { local m=$1 p=$2; shift 2; curl -sf -X "$m" "$SFSIM_URL/__sim/orgs/2/$p" -H 'Content-Type: application/json' "$@"; }
token_requests() { org2 GET requests | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin)["requests"] if r["path"].endswith("/oauth2/token")))'; }
stored_token() { sql -tA -c "SELECT option_value FROM pg_user_mappings m, pg_options_to_table(m.umoptions) WHERE m.srvname = 'acme' AND option_name = 'refresh_token'"; }

# The SaaS's connected app, on a server for the customer; no token yet.
sql -q <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_salesforce;
CREATE SERVER acme FOREIGN DATA WRAPPER salesforce OPTIONS (login_url '$SFSIM_URL');
CREATE USER MAPPING FOR postgres SERVER acme OPTIONS (grant_type 'refresh_token', client_id 'sfsim-client-id');
SQL
err=$(sql -c "SELECT count(*) FROM salesforce.query('acme', 'SELECT Id FROM Lead')" 2>&1) && fail "an unconnected org answered"
grep -q "the user mapping has no refresh_token yet" <<<"$err" || fail "unexpected error before connecting: $err"

# 1. The authorize URL, the customer's approval, the exchange.
url=$(sql -tA -c "SELECT salesforce.authorize_url('acme', 'https://app.example.com/oauth/callback')")
for part in "/services/oauth2/authorize?" "response_type=code" "client_id=sfsim-client-id" "code_challenge_method=S256" "code_challenge=" "state=" "redirect_uri=https%3A%2F%2Fapp.example.com%2Foauth%2Fcallback"; do
  grep -qF "$part" <<<"$url" || fail "the authorize URL lacks $part: $url"
done
state=$(python3 -c "import sys, urllib.parse as u; print(u.parse_qs(u.urlparse(sys.argv[1]).query)['state'][0])" "$url")
curl -sf "$url" >/dev/null || fail "sfsim refused the authorize URL"
redirect=$(control POST oauth/approve "{\"state\": \"$state\", \"username\": \"admin@org2.sfsim.example\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["redirect"])')
code=$(python3 -c "import sys, urllib.parse as u; q = u.parse_qs(u.urlparse(sys.argv[1]).query); assert q['state'][0] == sys.argv[2]; print(q['code'][0])" "$redirect" "$state")
out=$(sql -tA -c "SELECT salesforce.complete_authorization('$state', '$code')")
[ "$out" = acme ] || fail "complete_authorization said: $out"
first=$(stored_token)
[ -n "$first" ] || fail "no refresh token was stored"
grep -qF "$first" "$dir/server.log" && fail "the refresh token reached the server log"
err=$(sql -c "SELECT salesforce.complete_authorization('$state', '$code')" 2>&1) && fail "a state worked twice"
grep -q "unknown authorization state" <<<"$err" || fail "unexpected error for a used state: $err"
[ "$(sql -tA -c "SELECT count(*) FROM salesforce.authorizations")" = 0 ] || fail "the used authorization was kept"
echo "connect: authorize URL with PKCE S256, approved in org 2, code exchanged once, refresh token stored"

# 2. A sync against the connected org.
sql -q -c "SET client_min_messages = warning" -c "SELECT salesforce.sync_enable('acme', 'Lead', every => '1 second')" >/dev/null
wait_for 60 "SELECT count(*) > 0 FROM salesforce.sync_runs WHERE server = 'acme' AND status = 'succeeded'"
[ "$(org2 GET requests | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin)["requests"] if "/query" in r["path"] or "/composite" in r["path"]) > 0)')" = True ] || fail "the sync did not read org 2"
echo "connect: the worker syncs Lead from the customer's org"

# 3. Rotation: the org hands out a new refresh token when the access token
# expires; the old one stops working, so the new one must be stored.
org2 POST oauth -d '{"rotate_refresh_tokens": true}' >/dev/null
org2 POST time/advance -d '{"seconds": 7300}' >/dev/null
wait_for 60 "SELECT option_value <> '$first' FROM pg_user_mappings m, pg_options_to_table(m.umoptions) WHERE m.srvname = 'acme' AND option_name = 'refresh_token'"
t=$(try_sql "SELECT clock_timestamp()")
wait_for 60 "SELECT EXISTS (SELECT 1 FROM salesforce.sync_runs WHERE server = 'acme' AND status = 'succeeded' AND started_at > '$t')"
echo "connect: a rotated refresh token was stored, and syncs go on with it"

# 4. Revocation: the server shows disconnected within one cycle, and no
# login is tried again until the user mapping changes.
curl -sf -X POST "$SFSIM_URL/services/oauth2/revoke" --data-urlencode "token=$(stored_token)" >/dev/null
org2 POST time/advance -d '{"seconds": 7300}' >/dev/null
wait_for 30 "SELECT paused_reason LIKE 'disconnected: %' FROM salesforce.sync_status WHERE server = 'acme'"
reason=$(sql -tA -c "SELECT paused_reason FROM salesforce.sync_status WHERE server = 'acme'")
grep -q "expired access/refresh token" <<<"$reason" || fail "Salesforce's error is not shown: $reason"
before=$(token_requests)
sleep 5
[ "$(token_requests)" = "$before" ] || fail "the worker kept logging in after the revocation"
echo "connect: revoked, disconnected with Salesforce's error, and no further login attempts"
