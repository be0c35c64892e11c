#!/usr/bin/env bash
# Writes tied to real transactions: ROLLBACK undoes them (statement mode),
# commit mode sends nothing before COMMIT, savepoints, and the signup
# transaction that creates a user and its Salesforce Contact together or not at all,
# and write-through to a synced copy.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
dir=/tmp/pg_salesforce-e2e-writes
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed demo
start_cluster "$dir"
trap 'stop_cluster "$dir"; stop_sfsim' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

token=$(curl -s "$SFSIM_URL/services/oauth2/token" -d grant_type=client_credentials -d client_id=sfsim-client-id -d client_secret=sfsim-client-secret |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
# What Salesforce itself holds, asked through its REST API, not the extension.
in_salesforce() {
  curl -s -G "$SFSIM_URL/services/data/v62.0/query" -H "Authorization: Bearer $token" --data-urlencode "q=$1" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["records"][0][sys.argv[1]] if len(sys.argv) > 1 and r["records"] else r["totalSize"])' "${@:2}"
}
psql_out() { sql -v ON_ERROR_STOP=0 "$@" 2>&1; }

setup_org sf contact
sql -q -c "CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE NOT NULL, first_name text, last_name text)"
seeded=$(sql -tA -c "SELECT id FROM sf.contact ORDER BY id LIMIT 1")
old_title=$(in_salesforce "SELECT Title FROM Contact WHERE Id = '$seeded'" Title)

# statement mode: ROLLBACK deletes what was created and restores what was updated.
out=$(psql_out <<SQL
BEGIN;
INSERT INTO sf.contact (last_name, user_id__c) VALUES ('Rolled', 'e2e-rollback');
UPDATE sf.contact SET title = 'Temporary' WHERE id = '$seeded';
SELECT 'mid:' || count(*) FROM sf.contact WHERE user_id__c = 'e2e-rollback';
ROLLBACK;
SQL
)
grep -q "mid:1" <<<"$out" || fail "the insert was not visible inside its transaction: $out"
grep -q "2 write(s) in Salesforce were undone" <<<"$out" || fail "no notice of the undo: $out"
[ "$(in_salesforce "SELECT COUNT() FROM Contact WHERE User_Id__c = 'e2e-rollback'")" = 0 ] || fail "ROLLBACK left the created contact"
[ "$(in_salesforce "SELECT Title FROM Contact WHERE Id = '$seeded'" Title)" = "$old_title" ] || fail "ROLLBACK left the update"

# A delete cannot be undone through the API: the ROLLBACK says so.
doomed=$(sql -tA -c "INSERT INTO sf.contact (last_name) VALUES ('Doomed') RETURNING id")
out=$(psql_out -c "BEGIN" -c "DELETE FROM sf.contact WHERE id = '$doomed'" -c "ROLLBACK")
grep -q "WARNING:.*cannot be restored through its API.*Contact $doomed" <<<"$out" || fail "no warning for the lost delete: $out"

# commit mode: nothing reaches Salesforce before COMMIT; ROLLBACK sends nothing.
out=$(psql_out <<SQL
BEGIN;
SET LOCAL salesforce.write_mode = 'commit';
INSERT INTO sf.contact (last_name, user_id__c) VALUES ('Queued', 'e2e-commit-a');
SAVEPOINT s;
INSERT INTO sf.contact (last_name, user_id__c) VALUES ('Dropped', 'e2e-commit-b');
ROLLBACK TO SAVEPOINT s;
\! curl -s -G "$SFSIM_URL/services/data/v62.0/query" -H "Authorization: Bearer $token" --data-urlencode "q=SELECT COUNT() FROM Contact WHERE User_Id__c = 'e2e-commit-a'" | python3 -c 'import json,sys; print("before-commit:" + str(json.load(sys.stdin)["totalSize"]))'
COMMIT;
SQL
)
grep -q "before-commit:0" <<<"$out" || fail "commit mode sent before COMMIT: $out"
[ "$(in_salesforce "SELECT COUNT() FROM Contact WHERE User_Id__c = 'e2e-commit-a'")" = 1 ] || fail "COMMIT did not send the queued insert"
[ "$(in_salesforce "SELECT COUNT() FROM Contact WHERE User_Id__c = 'e2e-commit-b'")" = 0 ] || fail "the rolled-back savepoint's insert was sent"
sql -c "BEGIN; SET LOCAL salesforce.write_mode = 'commit'; INSERT INTO sf.contact (last_name, user_id__c) VALUES ('Never', 'e2e-never'); ROLLBACK;"
[ "$(in_salesforce "SELECT COUNT() FROM Contact WHERE User_Id__c = 'e2e-never'")" = 0 ] || fail "a rolled-back commit-mode insert was sent"

# commit mode: a rejection makes COMMIT fail, and nothing of the transaction stays.
taken=$(sql -tA -c "SELECT email FROM sf.contact WHERE email IS NOT NULL ORDER BY id LIMIT 1")
out=$(psql_out <<SQL
BEGIN;
SET LOCAL salesforce.write_mode = 'commit';
INSERT INTO users (email) VALUES ('committed-too-early@example.net');
INSERT INTO sf.contact (last_name, email, user_id__c) VALUES ('Fine', 'fine@example.net', 'e2e-fine');
INSERT INTO sf.contact (last_name, email) VALUES ('Clash', '$taken');
COMMIT;
SQL
)
grep -q "ERROR:  Salesforce rejected row 1 of the INSERT into contact (LastName 'Clash'.*DUPLICATES_DETECTED" <<<"$out" || fail "COMMIT did not fail on the rejection: $out"
[ "$(in_salesforce "SELECT COUNT() FROM Contact WHERE User_Id__c = 'e2e-fine'")" = 0 ] || fail "the failed COMMIT left a contact behind"
[ "$(sql -tA -c "SELECT count(*) FROM users WHERE email = 'committed-too-early@example.net'")" = 0 ] || fail "the failed COMMIT kept the local row"

# The signup: the user row and its Contact together...
sql -q <<'SQL'
BEGIN;
WITH u AS (INSERT INTO users (email, first_name, last_name) VALUES ('grace@example.net', 'Grace', 'Hopper') RETURNING id, email, first_name, last_name)
INSERT INTO sf.contact (first_name, last_name, email, user_id__c) SELECT first_name, last_name, email, id::text FROM u;
COMMIT;
SQL
user_id=$(sql -tA -c "SELECT id FROM users WHERE email = 'grace@example.net'")
[ "$(in_salesforce "SELECT COUNT() FROM Contact WHERE User_Id__c = '$user_id' AND Email = 'grace@example.net'")" = 1 ] || fail "the signup's contact is missing"
# ...or neither, when Salesforce's duplicate rule refuses the contact.
out=$(psql_out <<SQL
BEGIN;
INSERT INTO users (email, first_name, last_name) VALUES ('$taken', 'Dup', 'Licate');
INSERT INTO sf.contact (first_name, last_name, email, user_id__c) VALUES ('Dup', 'Licate', '$taken', 'dup-signup');
COMMIT;
SQL
)
grep -q "DUPLICATES_DETECTED" <<<"$out" || fail "the duplicate signup was not refused: $out"
[ "$(sql -tA -c "SELECT count(*) FROM users WHERE first_name = 'Dup'")" = 0 ] || fail "the refused signup kept its user row"
[ "$(in_salesforce "SELECT COUNT() FROM Contact WHERE User_Id__c = 'dup-signup'")" = 0 ] || fail "the refused signup left a contact"

# Write-through: a synced object's local copy takes each write in the same transaction.
notice=$(sql -q -c "SELECT salesforce.sync_enable('org', 'Contact', target => 'copies.contact', options => '{\"fields\": [\"LastName\", \"Email\", \"User_Id__c\"]}')" 2>&1 >/dev/null)
# Not preloaded here: no worker, and the NOTICE says so.
grep -q "no sync worker runs for this database" <<<"$notice" || fail "sync_enable's NOTICE, with no worker: $notice"
sql -q -c "CALL salesforce.sync_now('org', 'Contact')" >/dev/null
copy_matches() {
  local columns=${2:-id, last_name, email, user_id__c, system_modstamp}
  [ "$(sql -tA -c "SELECT md5(string_agg(x::text, '|' ORDER BY x.id)) FROM (SELECT $columns FROM copies.contact) x")" = \
    "$(sql -tA -c "SELECT md5(string_agg(x::text, '|' ORDER BY x.id)) FROM (SELECT $columns FROM sf.contact) x")" ] || fail "copies.contact differs from Salesforce $1"
}
# commit mode: the insert reaches the copy when COMMIT sends it.
sql -q -c "BEGIN" -c "SET LOCAL salesforce.write_mode = 'commit'" \
  -c "INSERT INTO sf.contact (last_name, user_id__c) VALUES ('Through', 'e2e-through')" -c "COMMIT"
through=$(in_salesforce "SELECT Id FROM Contact WHERE User_Id__c = 'e2e-through'" Id)
[ "$(sql -tA -c "SELECT last_name FROM copies.contact WHERE id = '$through'")" = Through ] || fail "the committed insert is not in the copy"
copy_matches "after a commit-mode insert"
# statement mode: the copy shows the update at once, and ROLLBACK takes it back there too.
out=$(psql_out <<SQL
BEGIN;
UPDATE sf.contact SET last_name = 'Midway' WHERE id = '$through';
SELECT 'copy:' || last_name FROM copies.contact WHERE id = '$through';
ROLLBACK;
SQL
)
grep -q "copy:Midway" <<<"$out" || fail "the copy did not show the update inside the transaction: $out"
[ "$(sql -tA -c "SELECT last_name FROM copies.contact WHERE id = '$through'")" = Through ] || fail "ROLLBACK left the update in the copy"
# Undoing the update was a new write in Salesforce: only its SystemModstamp
# is newer than the copy's, until the next run.
copy_matches "after a rolled-back update" "id, last_name, email, user_id__c"
sql -q -c "CALL salesforce.sync_now('org', 'Contact')" >/dev/null
copy_matches "after the run that followed the rollback"
# commit mode: a COMMIT that Salesforce refuses leaves the copy as it was.
out=$(psql_out <<SQL
BEGIN;
SET LOCAL salesforce.write_mode = 'commit';
UPDATE sf.contact SET last_name = 'Refused' WHERE id = '$through';
INSERT INTO sf.contact (last_name, email) VALUES ('Clash', '$taken');
COMMIT;
SQL
)
grep -q "DUPLICATES_DETECTED" <<<"$out" || fail "the clashing COMMIT was not refused: $out"
[ "$(sql -tA -c "SELECT last_name FROM copies.contact WHERE id = '$through'")" = Through ] || fail "the refused COMMIT changed the copy"
sql -q -c "BEGIN" -c "SET LOCAL salesforce.write_mode = 'commit'" -c "DELETE FROM sf.contact WHERE id = '$through'" -c "COMMIT"
[ "$(sql -tA -c "SELECT count(*) FROM copies.contact WHERE id = '$through'")" = 0 ] || fail "the committed delete is still in the copy"
copy_matches "after a commit-mode delete"
