#!/usr/bin/env bash
# Upgrades: 0.1.0 installed from its frozen script and filled with a sync and
# foreign tables, then ALTER EXTENSION pg_salesforce UPDATE. Everything keeps
# working, and the extension's objects equal those of a fresh install.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=/tmp/pg_salesforce-e2e-upgrade
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed demo
start_cluster "$dir"
trap 'stop_cluster "$dir"; stop_sfsim' EXIT

fail() { echo "$1" >&2; exit 1; }
extdir=$("$PG_BIN/pg_config" --sharedir)/extension
# Released install scripts ship beside the current one, as a package installs them.
install -m 644 "$root"/sql/pg_salesforce--0.1.0.sql "$extdir/"
current=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)

sql -q -c "CREATE EXTENSION pg_salesforce VERSION '0.1.0'"
sql -q <<SQL
CREATE SERVER org FOREIGN DATA WRAPPER salesforce OPTIONS (login_url '$SFSIM_URL');
CREATE USER MAPPING FOR postgres SERVER org OPTIONS (grant_type 'password', client_id 'sfsim-client-id',
  client_secret 'sfsim-client-secret', username 'admin@sfsim.example', password 'sfsim-password', security_token 'SFSIMTOKEN');
CREATE SCHEMA crm;
IMPORT FOREIGN SCHEMA salesforce LIMIT TO (account, lead) FROM SERVER org INTO crm;
SQL
sql -q -c "SET client_min_messages = warning" -c "SELECT salesforce.sync_enable('org', 'Lead', 'copies.lead')" >/dev/null
# A row already in the copy, as a write-through before the first run leaves it.
sql -q -c "INSERT INTO copies.lead (id, _synced_at) SELECT id, now() FROM crm.lead ORDER BY id LIMIT 1"
# The new library refuses to run syncs against 0.1.0's tables, and says why.
err=$(sql -c "CALL salesforce.sync_now('org', 'Lead')" 2>&1) && fail "a sync ran against the old schema"
grep -q "the extension installed in this database is 0.1.0" <<<"$err" || fail "unexpected error: $err"
grep -q "ALTER EXTENSION pg_salesforce UPDATE" <<<"$err" || fail "no hint: $err"

sql -q -c "ALTER EXTENSION pg_salesforce UPDATE"
[ "$(sql -tA -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_salesforce'")" = "$current" ] || fail "not updated to $current"

# Everything still works: the sync's state, its next run, the foreign tables.
[ "$(sql -tA -c "SELECT stage FROM salesforce.syncs WHERE object = 'Lead'")" = backfill ] || fail "the sync lost its state"
[ "$(sql -tA -c "SELECT count(*) FROM copies.lead")" = 1 ] || fail "the copy changed in the update"
sql -q -c "CALL salesforce.sync_now('org', 'Lead')" >/dev/null
sql -q -c "CALL salesforce.sync_now('org', 'Lead')" >/dev/null
[ "$(sql -tA -c "SELECT string_agg(kind || ' ' || status, ', ' ORDER BY id) FROM salesforce.sync_runs WHERE object = 'Lead' AND status <> 'failed'")" = "backfill succeeded, incremental succeeded" ] || fail "the sync did not go on after the update"
[ "$(sql -tA -c "SELECT count(*) FROM copies.lead")" = "$(sql -tA -c "SELECT count(*) FROM crm.lead")" ] || fail "the copy is incomplete"
[ "$(sql -tA -c "SELECT count(*) > 0 FROM crm.account")" = t ] || fail "foreign tables stopped working"
sql -q -c "SELECT salesforce.sync_enable('org', 'Account', 'copies.account')" >/dev/null 2>&1
sql -q -c "CALL salesforce.sync_now('org', 'Account')" >/dev/null
[ "$(sql -tA -c "SELECT count(*) FROM copies.account")" = "$(sql -tA -c "SELECT count(*) FROM crm.account")" ] || fail "a sync made after the update is incomplete"

# The extension's objects, described from the catalog (pg_dump leaves an
# extension's members out), must equal a fresh install's.
describe_extension() {
  PGDATABASE=$1 sql -tA <<'SQL'
SELECT string_agg(d, E'\n' ORDER BY d) FROM (
  SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
         || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '') AS d
    FROM pg_depend dep JOIN pg_class c ON dep.classid = 'pg_class'::regclass AND c.oid = dep.objid
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
   WHERE dep.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_salesforce') AND dep.deptype = 'e'
  UNION ALL
  SELECT 'constraint ' || conrelid::regclass || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
   WHERE connamespace = 'salesforce'::regnamespace
  UNION ALL
  SELECT 'index ' || pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid::regclass::text LIKE 'salesforce.%'
  UNION ALL
  SELECT 'view ' || c.relname || ' ' || pg_get_viewdef(c.oid) FROM pg_class c
   WHERE c.relnamespace = 'salesforce'::regnamespace AND c.relkind = 'v'
  UNION ALL
  SELECT 'routine ' || pg_get_functiondef(p.oid) FROM pg_proc p WHERE p.pronamespace = 'salesforce'::regnamespace
  UNION ALL
  SELECT 'wrapper ' || fdwname || ' ' || fdwhandler::regproc || ' ' || fdwvalidator::regproc FROM pg_foreign_data_wrapper
) objects
SQL
}
sql -q -c "CREATE DATABASE fresh"
PGDATABASE=fresh sql -q -c "CREATE EXTENSION pg_salesforce"
describe_extension postgres >"$dir/upgraded.txt"
describe_extension fresh >"$dir/fresh.txt"
[ -s "$dir/fresh.txt" ] || fail "the description is empty"
diff -u "$dir/fresh.txt" "$dir/upgraded.txt" || fail "the upgraded extension differs from a fresh install"
