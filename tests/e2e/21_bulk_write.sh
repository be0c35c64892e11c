#!/usr/bin/env bash
# Large writes through Bulk API 2.0 ingest jobs: a statement that reaches
# bulk_threshold goes through one job (proven by sfsim's request log); a
# job's rejections abort the statement naming the first rejected row, and
# what the job applied is undone; commit mode sends nothing before COMMIT;
# upsert, update and delete; bulk_threshold '0' keeps collections.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$(dirname "$0")/helpers.sh"
dir=/tmp/pg_salesforce-e2e-bulk-write
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed demo --daily-limit 1000000
start_cluster "$dir"
trap 'stop_cluster "$dir"; stop_sfsim' EXIT

token=$(curl -s "$SFSIM_URL/services/oauth2/token" -d grant_type=client_credentials -d client_id=sfsim-client-id -d client_secret=sfsim-client-secret |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
in_salesforce() { # the COUNT() Salesforce itself answers, through its REST API
  curl -s -G "$SFSIM_URL/services/data/v62.0/query" -H "Authorization: Bearer $token" --data-urlencode "q=$1" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["totalSize"])'
}
mark() { curl -sf "$SFSIM_URL/__sim/requests" | python3 -c 'import json,sys; r=json.load(sys.stdin)["requests"]; print(r[-1]["seq"] if r else 0)'; }
# requests since SEQ: "<counted> <ingest calls> <collections calls>"
requests_since() {
  curl -sf "$SFSIM_URL/__sim/requests?since=$1" | python3 -c '
import json, sys
r = [x for x in json.load(sys.stdin)["requests"] if not x["path"].startswith("/services/oauth2")]
print(sum(x["counted"] for x in r), sum("/jobs/ingest" in x["path"] for x in r), sum("/composite/sobjects" in x["path"] for x in r))'
}
psql_out() { sql -v ON_ERROR_STOP=0 "$@" 2>&1 || true; }

setup_org sf contact
sql -q -c "CREATE FOREIGN TABLE sf.contact_by_key (user_id__c text, last_name text, title text)
  SERVER org OPTIONS (object 'Contact', upsert_key 'user_id__c')"

# 5,000 rows in one INSERT: one ingest job, no collections calls.
m=$(mark)
sql -q -c "INSERT INTO sf.contact (last_name, user_id__c) SELECT 'Bulk ' || g, 'bulk-' || g FROM generate_series(1, 5000) g"
read -r counted ingest collections <<<"$(requests_since "$m")"
[ "$(in_salesforce "SELECT COUNT() FROM Contact WHERE User_Id__c LIKE 'bulk-%'")" = 5000 ] || fail "the Bulk insert did not create 5,000 contacts"
[ "$collections" = 0 ] && [ "$ingest" -ge 4 ] || fail "expected an ingest job and no collections calls, got ingest=$ingest collections=$collections"
[ "$counted" -le 12 ] || fail "5,000 rows cost $counted API requests"
echo "5,000-row INSERT: $counted API requests ($ingest to the ingest job)"

# A CSV of several 16 MB parts: the full parts go out on a thread of their
# own while the next is written; every row arrives once.
m=$(mark)
sql -q -c "INSERT INTO sf.contact (last_name, user_id__c, description) SELECT 'Parts ' || g, 'parts-' || g, repeat('p', 600) FROM generate_series(1, 60000) g"
uploads=$(curl -sf "$SFSIM_URL/__sim/requests?since=$m" | python3 -c 'import json, sys; print(sum(r["method"] == "PUT" and r["path"].endswith("/batches") for r in json.load(sys.stdin)["requests"]))')
[ "$uploads" -ge 3 ] || fail "a 36 MB CSV went in $uploads upload(s)"
[ "$(in_salesforce "SELECT COUNT() FROM Contact WHERE User_Id__c LIKE 'parts-%'")" = 60000 ] || fail "the CSV in parts did not create 60,000 contacts"
echo "60,000 rows of 36 MB: $uploads uploads"

# Below the threshold: collections, 200 to a call.
m=$(mark)
sql -q -c "INSERT INTO sf.contact (last_name, user_id__c) SELECT 'Small ' || g, 'small-' || g FROM generate_series(1, 400) g"
read -r counted ingest collections <<<"$(requests_since "$m")"
[ "$ingest" = 0 ] && [ "$collections" = 2 ] || fail "400 rows: expected 2 collections calls, got ingest=$ingest collections=$collections"

# 100,000 rows with 1% rejected (no LastName), in statement mode: the
# statement fails naming the first rejected row, and nothing the job
# created remains.
out=$(psql_out -c "INSERT INTO sf.contact (last_name, user_id__c)
  SELECT CASE WHEN g % 100 = 37 THEN NULL ELSE 'Rejecting ' || g END, 'rej-' || g FROM generate_series(1, 100000) g")
grep -q "ERROR:  Salesforce rejected row 37 of the INSERT into contact" <<<"$out" || fail "the error does not name row 37: $out"
grep -q "REQUIRED_FIELD_MISSING" <<<"$out" || fail "the error does not carry Salesforce's code: $out"
grep -q "99000 write(s) in Salesforce were undone" <<<"$out" || fail "no notice of the undo: $out"
[ "$(in_salesforce "SELECT COUNT() FROM Contact WHERE User_Id__c LIKE 'rej-%'")" = 0 ] || fail "rejected Bulk insert left records"

# Upsert by key: 3,000 new, then the same keys again update them.
sql -q -c "INSERT INTO sf.contact_by_key (user_id__c, last_name) SELECT 'up-' || g, 'Up ' || g FROM generate_series(1, 3000) g"
m=$(mark)
sql -q -c "INSERT INTO sf.contact_by_key (user_id__c, last_name, title) SELECT 'up-' || g, 'Up ' || g, 'Again' FROM generate_series(1, 3000) g"
read -r counted ingest collections <<<"$(requests_since "$m")"
[ "$(in_salesforce "SELECT COUNT() FROM Contact WHERE User_Id__c LIKE 'up-%'")" = 3000 ] || fail "the upsert duplicated records"
[ "$(in_salesforce "SELECT COUNT() FROM Contact WHERE User_Id__c LIKE 'up-%' AND Title = 'Again'")" = 3000 ] || fail "the upsert did not update"
[ "$collections" = 0 ] || fail "the upsert used collections"

# UPDATE and DELETE of 5,000 rows go through jobs too.
m=$(mark)
sql -q -c "UPDATE sf.contact SET title = 'Bulk updated' WHERE user_id__c LIKE 'bulk-%'"
[ "$(in_salesforce "SELECT COUNT() FROM Contact WHERE User_Id__c LIKE 'bulk-%' AND Title = 'Bulk updated'")" = 5000 ] || fail "the Bulk update"
sql -q -c "DELETE FROM sf.contact WHERE user_id__c LIKE 'bulk-%'"
[ "$(in_salesforce "SELECT COUNT() FROM Contact WHERE User_Id__c LIKE 'bulk-%'")" = 0 ] || fail "the Bulk delete"
read -r counted ingest collections <<<"$(requests_since "$m")"
[ "$collections" = 0 ] || fail "the update or delete used collections ($collections calls)"

# commit mode: nothing before COMMIT, a ROLLBACK sends nothing, COMMIT one job.
m=$(mark)
out=$(psql_out <<SQL
BEGIN;
SET LOCAL salesforce.write_mode = 'commit';
INSERT INTO sf.contact (last_name, user_id__c) SELECT 'Commit ' || g, 'commit-' || g FROM generate_series(1, 3000) g;
ROLLBACK;
SQL
)
read -r counted ingest collections <<<"$(requests_since "$m")"
[ "$ingest" = 0 ] && [ "$collections" = 0 ] || fail "commit mode sent on ROLLBACK: $out"
sql -q -c "BEGIN" -c "SET LOCAL salesforce.write_mode = 'commit'" \
  -c "INSERT INTO sf.contact (last_name, user_id__c) SELECT 'Commit ' || g, 'commit-' || g FROM generate_series(1, 3000) g" -c "COMMIT"
[ "$(in_salesforce "SELECT COUNT() FROM Contact WHERE User_Id__c LIKE 'commit-%'")" = 3000 ] || fail "COMMIT did not send the Bulk insert"
read -r counted ingest collections <<<"$(requests_since "$m")"
[ "$collections" = 0 ] && [ "$ingest" -ge 4 ] || fail "commit mode: ingest=$ingest collections=$collections"

# commit mode: a rejection fails the COMMIT naming the row, and nothing stays.
out=$(psql_out -c "BEGIN" -c "SET LOCAL salesforce.write_mode = 'commit'" \
  -c "INSERT INTO sf.contact (last_name, user_id__c) SELECT CASE WHEN g = 5 THEN NULL ELSE 'Cr ' || g END, 'cr-' || g FROM generate_series(1, 3000) g" -c "COMMIT")
grep -q "rejected row 5 of the INSERT into contact" <<<"$out" || fail "commit-mode rejection: $out"
[ "$(in_salesforce "SELECT COUNT() FROM Contact WHERE User_Id__c LIKE 'cr-%'")" = 0 ] || fail "a rejected commit-mode Bulk insert left records"

# A savepoint around a Bulk insert: ROLLBACK TO takes the job's records back.
sql -q <<SQL
BEGIN;
SAVEPOINT s;
INSERT INTO sf.contact (last_name, user_id__c) SELECT 'Sp ' || g, 'sp-' || g FROM generate_series(1, 3000) g;
ROLLBACK TO SAVEPOINT s;
INSERT INTO sf.contact (last_name, user_id__c) VALUES ('After', 'sp-after');
COMMIT;
SQL
[ "$(in_salesforce "SELECT COUNT() FROM Contact WHERE User_Id__c LIKE 'sp-%'")" = 1 ] || fail "ROLLBACK TO SAVEPOINT left the Bulk insert"

# Inserted then updated through Bulk, rolled back: the records go, and no
# warning about updates that could not be undone (they were the new ones).
out=$(psql_out <<SQL
BEGIN;
INSERT INTO sf.contact (last_name, user_id__c) SELECT 'Iu ' || g, 'iu-' || g FROM generate_series(1, 3000) g;
UPDATE sf.contact SET title = 'Changed' WHERE user_id__c LIKE 'iu-%';
ROLLBACK;
SQL
)
grep -q WARNING <<<"$out" && fail "warnings for the rollback of created-then-updated records: $out"
[ "$(in_salesforce "SELECT COUNT() FROM Contact WHERE User_Id__c LIKE 'iu-%'")" = 0 ] || fail "the rollback left inserted-then-updated records"

# An upsert that updated through Bulk, rolled back, says its updates stay.
out=$(psql_out -c "BEGIN" -c "INSERT INTO sf.contact_by_key (user_id__c, last_name, title) SELECT 'up-' || g, 'Up ' || g, 'Third' FROM generate_series(1, 3000) g" -c "ROLLBACK")
grep -q "3000 record(s) of Contact updated through a Bulk ingest job keep their new values" <<<"$out" || fail "no warning for the Bulk updates: $out"

# bulk_threshold '0' on the table: collections even for 3,000 rows.
sql -q -c "ALTER FOREIGN TABLE sf.contact OPTIONS (ADD bulk_threshold '0')"
m=$(mark)
sql -q -c "INSERT INTO sf.contact (last_name, user_id__c) SELECT 'Rest ' || g, 'rest-' || g FROM generate_series(1, 3000) g"
read -r counted ingest collections <<<"$(requests_since "$m")"
[ "$ingest" = 0 ] && [ "$collections" = 15 ] || fail "bulk_threshold 0: ingest=$ingest collections=$collections"
out=$(psql_out -c "ALTER SERVER org OPTIONS (ADD bulk_threshold 'many')")
grep -q 'invalid value for option "bulk_threshold"' <<<"$out" || fail "a bad bulk_threshold was accepted: $out"
echo "bulk writes: ok"
