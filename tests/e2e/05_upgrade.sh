#!/usr/bin/env bash
# Upgrades: 0.1.0 installed from its frozen script and filled with syncs (one
# an ordinary role's) and foreign tables, then ALTER EXTENSION pg_salesforce
# UPDATE. Everything keeps working, each sync keeps its owner, and the
# extension's objects, grants and policies equal those of a fresh install.
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
-- An ordinary role with what 0.1.0 asked of a sync user: DML on the
-- extension's tables, USAGE on the server, a mapping, a schema of its own.
CREATE ROLE legacy LOGIN;
GRANT USAGE ON SCHEMA salesforce TO legacy;
GRANT SELECT, INSERT, UPDATE, DELETE ON salesforce.syncs, salesforce.sync_runs, salesforce.pacing TO legacy;
GRANT USAGE ON FOREIGN SERVER org TO legacy;
CREATE USER MAPPING FOR legacy SERVER org OPTIONS (grant_type 'password', client_id 'sfsim-client-id',
  client_secret 'sfsim-client-secret', username 'admin@sfsim.example', password 'sfsim-password', security_token 'SFSIMTOKEN');
CREATE SCHEMA legacy AUTHORIZATION legacy;
CREATE SCHEMA copies;
SQL
# Syncs as 0.1.0's sync_enable left them (this library needs the new
# schema to make one): each copy made by its owner, each row naming it.
old_sync() { # ROLE OBJECT TABLE
  sql -q <<SQL
SET ROLE $1;
CREATE TABLE $3 (id text PRIMARY KEY, name text, system_modstamp timestamptz, _synced_at timestamptz NOT NULL);
INSERT INTO salesforce.syncs (server, object, target_schema, target_table, every, options, fields, columns, owner)
VALUES ('org', '$2', split_part('$3', '.', 1), split_part('$3', '.', 2), '5 minutes', '{"fields": ["Name"]}',
        '{Id,Name,SystemModstamp}', '{id,name,system_modstamp}', '$1'::regrole);
SQL
}
old_sync postgres Lead copies.lead
old_sync legacy Account legacy.account
# A row already in the copy, as a write-through before the first run leaves it.
sql -q -c "INSERT INTO copies.lead (id, _synced_at) SELECT id, now() FROM crm.lead ORDER BY id LIMIT 1"
# The new library refuses to run or make syncs against 0.1.0's tables, and says why.
for call in "CALL salesforce.sync_now('org', 'Lead')" "SELECT salesforce.sync_enable('org', 'Account', 'copies.account')"; do
  err=$(sql -c "$call" 2>&1) && fail "$call ran against the old schema"
  grep -q "the extension installed in this database is 0.1.0" <<<"$err" || fail "unexpected error: $err"
  grep -q "ALTER EXTENSION pg_salesforce UPDATE" <<<"$err" || fail "no hint: $err"
done

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

# The ordinary role's sync is still its own and runs, as that role, with
# the grants it held; those on the extension's tables are gone.
as_legacy() { PGUSER=legacy as_postgres psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U legacy -d postgres "$@"; }
[ "$(sql -tA -c "SELECT owner::regrole FROM salesforce.syncs WHERE object = 'Account'")" = legacy ] || fail "the sync changed hands"
as_legacy -c "CALL salesforce.sync_now('org', 'Account')" >/dev/null || fail "the owner cannot run its sync after the update"
[ "$(as_legacy -tA -c "SELECT count(*) FROM legacy.account")" = "$(sql -tA -c "SELECT count(*) FROM crm.account")" ] || fail "the owner's copy is incomplete"
[ "$(as_legacy -tA -c "SELECT string_agg(object || ' ' || owner, ',') FROM salesforce.sync_status")" = "Account legacy" ] || fail "the owner does not see just its own sync"
err=$(as_legacy -c "UPDATE salesforce.syncs SET every = '1 second'" 2>&1) && fail "the old grants survived the update"
grep -q "permission denied for table syncs" <<<"$err" || fail "unexpected error: $err"
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
  UNION ALL
  SELECT 'relation ' || c.relname || ' acl ' || coalesce(c.relacl::text, '-') || ' rls ' || c.relrowsecurity
         || ' options ' || coalesce(c.reloptions::text, '-')
    FROM pg_class c WHERE c.relnamespace = 'salesforce'::regnamespace AND c.relkind IN ('r', 'v')
  UNION ALL
  SELECT 'policy ' || tablename || ' ' || policyname || ' ' || cmd || ' ' || roles::text || ' ' || coalesce(qual, '-')
    FROM pg_policies WHERE schemaname = 'salesforce'
  UNION ALL
  SELECT 'routine acl ' || p.oid::regprocedure || ' ' || coalesce(p.proacl::text, '-')
    FROM pg_proc p WHERE p.pronamespace = 'salesforce'::regnamespace
) objects
SQL
}
sql -q -c "CREATE DATABASE fresh"
PGDATABASE=fresh sql -q -c "CREATE EXTENSION pg_salesforce"
describe_extension postgres >"$dir/upgraded.txt"
describe_extension fresh >"$dir/fresh.txt"
[ -s "$dir/fresh.txt" ] || fail "the description is empty"
diff -u "$dir/fresh.txt" "$dir/upgraded.txt" || fail "the upgraded extension differs from a fresh install"
