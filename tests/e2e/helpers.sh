# Helpers the end-to-end scripts share; sourced after scripts/lib.sh, with
# $dir the script's cluster directory.
# shellcheck shell=bash

fail() { echo "FAIL: $*" >&2; [ -f "$dir/server.log" ] && tail -20 "$dir/server.log" >&2; exit 1; }
control() { curl -sf -X "$1" "$SFSIM_URL/__sim/$2" -H 'Content-Type: application/json' ${3:+-d "$3"}; }
# sql that tolerates the moments when the cluster restarts after a kill -9.
try_sql() { for _ in $(seq 30); do if out=$(sql -tA -c "$1" 2>/dev/null); then echo "$out"; return 0; fi; sleep 1; done; return 1; }
wait_for() { # wait_for SECONDS SQL-that-returns-t
  for _ in $(seq "$1"); do [ "$(try_sql "$2")" = t ] && return 0; sleep 1; done
  fail "timed out waiting for: $2"
}
# An md5 over the rows of TABLE (COLUMNS, FILTER), in id order.
checksum() { try_sql "SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x.id), '')) FROM (SELECT $2 FROM $1 ${3:-}) x"; }
# The synced columns of OBJECT's copy.
columns() { try_sql "SELECT string_agg(quote_ident(c), ', ') FROM salesforce.syncs, unnest(columns) c WHERE object = '$1'"; }
worker_pid() { try_sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_salesforce sync'"; }
# SQL that creates the extension and servers sf and sf2 on sfsim's orgs 1
# and 2, each with a PUBLIC user mapping.
two_orgs_sql() {
  cat <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_salesforce;
CREATE SERVER sf FOREIGN DATA WRAPPER salesforce OPTIONS (login_url '$SFSIM_URL');
CREATE SERVER sf2 FOREIGN DATA WRAPPER salesforce OPTIONS (login_url '$SFSIM_URL');
CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (grant_type 'password', client_id 'sfsim-client-id',
  client_secret 'sfsim-client-secret', username 'admin@sfsim.example', password 'sfsim-password', security_token 'SFSIMTOKEN');
CREATE USER MAPPING FOR PUBLIC SERVER sf2 OPTIONS (grant_type 'password', client_id 'sfsim-client-id',
  client_secret 'sfsim-client-secret', username 'admin@org2.sfsim.example', password 'sfsim-password', security_token 'SFSIMTOKEN');
SQL
}
