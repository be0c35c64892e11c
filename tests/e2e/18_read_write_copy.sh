#!/usr/bin/env bash
# Read-write copies (sync option "write": true): inserts, updates and
# deletes on the copy reach Salesforce through the outbox, as the role that
# made them; a new row holds queued:<n> until Salesforce's Id is written
# back; a rejected row shows Salesforce's error beside it; a change made in
# Salesforce while a local one waits is resolved by the documented rule
# (the local write's fields win, Salesforce's other changes stay); and the
# sync's own re-reads queue nothing.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
dir=/tmp/pg_salesforce-e2e-rw
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed demo
start_cluster "$dir" "shared_preload_libraries = 'pg_salesforce'" "salesforce.sync_naptime = 1"
trap 'stop_cluster "$dir"; stop_sfsim' EXIT
source "$(dirname "$0")/helpers.sh"
as() { local role=$1; shift; sql -v ON_ERROR_STOP=1 -c "SET ROLE $role" "$@"; }
in_salesforce() { try_sql "SELECT coalesce(string_agg(concat(r->>'LastName', '|', r->>'Title', '|', r->>'Email'), ','), '-') FROM salesforce.query('sf', \$\$SELECT LastName, Title, Email FROM Contact WHERE $1\$\$) r"; }
{ two_orgs_sql; cat <<SQL; } | sql -q >/dev/null
CREATE ROLE alice LOGIN;
GRANT USAGE ON FOREIGN SERVER sf TO alice;
GRANT USAGE ON SCHEMA salesforce TO alice;
CREATE SCHEMA crm AUTHORIZATION alice;
SQL
as alice -q -c "SELECT salesforce.sync_enable('sf', 'Contact', 'crm.contact', '2 seconds', '{\"write\": true, \"fields\": [\"LastName\", \"FirstName\", \"Title\", \"Email\"]}')" >/dev/null 2>&1
wait_for 120 "SELECT stage = 'incremental' FROM salesforce.syncs WHERE object = 'Contact'"
caught_up() {
  local t; t=$(try_sql "SELECT clock_timestamp()")
  wait_for 60 "SELECT EXISTS (SELECT 1 FROM salesforce.sync_runs WHERE object = 'Contact' AND status = 'succeeded' AND started_at > '$t')"
}
caught_up

# An insert: queued:<n> at once, Salesforce's Id once delivered.
queued_id=$(as alice -tA -c "INSERT INTO crm.contact (last_name, title) VALUES ('Rw Insert', 'Engineer') RETURNING id")
[[ "$queued_id" == queued:* ]] || fail "a new row's id is $queued_id, not queued:<n>"
write=${queued_id#queued:}
wait_for 20 "SELECT state = 'delivered' FROM salesforce.queued_writes WHERE id = $write"
wait_for 10 "SELECT count(*) = 1 FROM crm.contact WHERE last_name = 'Rw Insert' AND id LIKE '003%'"
[ "$(try_sql "SELECT count(*) FROM crm.contact WHERE id = '$queued_id'")" = 0 ] || fail "the queued row kept its queued id"
[ "$(in_salesforce "LastName = 'Rw Insert'")" = "Rw Insert|Engineer|" ] || fail "the inserted Contact is not in Salesforce"
[ "$(try_sql "SELECT role FROM salesforce.queued_writes WHERE id = $write")" = alice ] || fail "the write was not queued as alice"
echo "insert: queued as $queued_id, delivered, Id written back"

# A row a session holds locked takes its Id once the lock is gone: the
# worker does not wait on it, and tries again.
sql -q -c "ALTER SYSTEM SET salesforce.sync_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
sleep 2
locked=$(as alice -tA -c "INSERT INTO crm.contact (last_name) VALUES ('Rw Locked') RETURNING id")
(as alice -q -c "BEGIN" -c "SELECT 1 FROM crm.contact WHERE id = '$locked' FOR UPDATE" -c "SELECT pg_sleep(6)" -c "COMMIT" >/dev/null) &
locker=$!
sleep 0.5
sql -q -c "ALTER SYSTEM SET salesforce.sync_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
wait_for 20 "SELECT state = 'delivered' FROM salesforce.queued_writes WHERE id = ${locked#queued:}"
sleep 3
[ "$(try_sql "SELECT count(*) FROM crm.contact WHERE id = '$locked'")" = 1 ] || fail "the locked row did not wait for its lock"
wait "$locker"
wait_for 20 "SELECT count(*) = 1 FROM crm.contact WHERE last_name = 'Rw Locked' AND id LIKE '003%'"
grep -q "the row $locked of a read-write copy cannot take its Id .* now, tried again later" "$dir/server.log" || fail "no WARNING for the locked row"
echo "write-back: a locked row took its Id once the lock was gone"

# An update and a delete; an insert and its update in one transaction, the
# update waiting for the insert's Id.
as alice -q -c "UPDATE crm.contact SET title = 'CTO' WHERE last_name = 'Rw Insert'"
as alice -q -c "BEGIN" -c "INSERT INTO crm.contact (last_name, email) VALUES ('Rw Pair', 'pair@example.com')" \
  -c "UPDATE crm.contact SET title = 'Paired' WHERE last_name = 'Rw Pair'" -c "COMMIT"
wait_for 20 "SELECT count(*) = 0 FROM salesforce.queued_writes WHERE state IN ('pending', 'sending')"
[ "$(in_salesforce "LastName = 'Rw Insert'")" = "Rw Insert|CTO|" ] || fail "the update did not reach Salesforce"
[ "$(in_salesforce "LastName = 'Rw Pair'")" = "Rw Pair|Paired|pair@example.com" ] || fail "the insert and its update did not reach Salesforce: $(in_salesforce "LastName = 'Rw Pair'")"
wait_for 10 "SELECT count(*) = 1 FROM crm.contact WHERE last_name = 'Rw Pair' AND id LIKE '003%' AND title = 'Paired'"
as alice -q -c "DELETE FROM crm.contact WHERE last_name = 'Rw Pair'"
wait_for 20 "SELECT count(*) = 0 FROM salesforce.queued_writes WHERE state IN ('pending', 'sending')"
[ "$(in_salesforce "LastName = 'Rw Pair'")" = "-" ] || fail "the delete did not reach Salesforce"
echo "update, delete, and an update waiting for its insert's Id: in Salesforce"

# A rejected row shows Salesforce's error beside it.
bad=$(as alice -tA -c "INSERT INTO crm.contact (first_name) VALUES ('No last name') RETURNING id")
wait_for 20 "SELECT w.state = 'failed' AND w.error_code = 'REQUIRED_FIELD_MISSING' FROM crm.contact c JOIN salesforce.queued_writes w ON w.copy_row_id = c.id WHERE c.id = '$bad'"
echo "rejected: $bad shows REQUIRED_FIELD_MISSING beside it"

# The trigger function runs only as the copy's row triggers.
err=$(as alice -c "CREATE TABLE crm.other (id text)" -c "CREATE TRIGGER t BEFORE UPDATE ON crm.other EXECUTE FUNCTION salesforce.capture_copy_write('1')" -c "UPDATE crm.other SET id = id" 2>&1) && fail "capture_copy_write ran as a statement trigger"
grep -q "runs only as a read-write copy's row triggers" <<<"$err" || fail "unexpected: $err"
err=$(as alice -c "TRUNCATE crm.contact" 2>&1) && fail "a read-write copy was truncated"
grep -q "TRUNCATE of a read-write copy would not reach Salesforce" <<<"$err" || fail "unexpected: $err"
sync_id=$(try_sql "SELECT id FROM salesforce.syncs WHERE object = 'Contact'")
err=$(as alice -c "CREATE TRIGGER t2 AFTER INSERT ON crm.other FOR EACH ROW EXECUTE FUNCTION salesforce.capture_copy_write('$sync_id')" -c "INSERT INTO crm.other VALUES ('x')" 2>&1) && fail "capture_copy_write ran on another table"
grep -q "this table is not the copy of sync" <<<"$err" || fail "unexpected: $err"

# Local ids are Salesforce's: a changed id or a given one is refused.
err=$(as alice -c "INSERT INTO crm.contact (id, last_name) VALUES ('003000000000000AAA', 'x')" 2>&1) && fail "an insert with an id was accepted"
grep -q "gets its id from Salesforce" <<<"$err" || fail "unexpected: $err"

# A conflict: Title changed here and in Salesforce before delivery, Email
# only in Salesforce. The local write's fields win; Salesforce's other
# change stays; the losing Title is recorded on the write; the copy ends
# equal to Salesforce. Updates without a conflict record none.
[ "$(try_sql "SELECT count(*) FROM salesforce.queued_writes WHERE conflict IS NOT NULL")" = 0 ] || fail "a conflict recorded where there was none"
caught_up
sql -q -c "ALTER SYSTEM SET salesforce.sync_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
sleep 2
id=$(try_sql "SELECT id FROM crm.contact WHERE last_name = 'Rw Insert'")
as alice -q -c "UPDATE crm.contact SET title = 'Local title' WHERE id = '$id'"
local_write=$(try_sql "SELECT max(id) FROM salesforce.outbox")
control PATCH "records/Contact/$id" '{"Title": "Remote title", "Email": "remote@example.com"}' >/dev/null
sql -q -c "ALTER SYSTEM SET salesforce.sync_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
wait_for 20 "SELECT count(*) = 0 FROM salesforce.queued_writes WHERE state IN ('pending', 'sending')"
[ "$(in_salesforce "Id = '$id'")" = "Rw Insert|Local title|remote@example.com" ] || fail "the conflict: Salesforce holds $(in_salesforce "Id = '$id'")"
[ "$(try_sql "SELECT conflict->>'Title' || '|' || (conflict ? 'Email')::text || '|' || (conflict ? 'SystemModstamp')::text FROM salesforce.queued_writes WHERE id = $local_write")" = "Remote title|false|true" ] \
  || fail "the losing version is not recorded: $(try_sql "SELECT conflict FROM salesforce.queued_writes WHERE id = $local_write")"
caught_up
[ "$(try_sql "SELECT concat_ws('|', last_name, title, email) FROM crm.contact WHERE id = '$id'")" = "Rw Insert|Local title|remote@example.com" ] \
  || fail "the copy did not converge after the conflict"
echo "conflict: the local Title won (Salesforce's recorded on the write), Salesforce's Email stayed, the copy converged"

# Re-reads write nothing: changes from Salesforce reach the copy, and no
# write is queued for them.
before=$(try_sql "SELECT count(*) FROM salesforce.outbox")
control PATCH "records/Contact/$id" '{"Title": "Changed in Salesforce"}' >/dev/null
caught_up
caught_up
[ "$(try_sql "SELECT title FROM crm.contact WHERE id = '$id'")" = "Changed in Salesforce" ] || fail "Salesforce's change did not reach the copy"
[ "$(try_sql "SELECT count(*) FROM salesforce.outbox")" = "$before" ] || fail "re-reads queued writes"
echo "re-reads: Salesforce's change copied, nothing queued back"

# sync_disable keeps the table, and writes to it stay local.
as alice -q -c "SELECT salesforce.sync_disable('sf', 'Contact')" >/dev/null
as alice -q -c "UPDATE crm.contact SET title = 'Local only' WHERE id = '$id'"
[ "$(try_sql "SELECT count(*) FROM salesforce.outbox")" = "$before" ] || fail "a write after sync_disable was queued"
echo "read-write copies: ok"
