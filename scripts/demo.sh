#!/usr/bin/env bash
# The demo: pg_salesforce against the bundled Salesforce simulator, end to end.
# Builds and installs the extension, starts sfsim with the demo org and a
# PostgreSQL cluster, and shows them working together. Pass --keep to leave
# both running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/lib.sh

echo "== building and installing pg_salesforce"
# The dev profile, as the tests build: a release build with LTO takes
# minutes longer, and nothing in the demo needs its speed.
quietly cargo pgrx install --pg-config /usr/lib/postgresql/15/bin/pg_config
cargo build -q -p sfsim

DEMO_DIR=${DEMO_DIR:-/tmp/pg_salesforce-demo}
start_sfsim target/debug/sfsim --seed demo
start_cluster "$DEMO_DIR"
if [ "${1:-}" != "--keep" ]; then trap 'stop_cluster "$DEMO_DIR"; stop_sfsim' EXIT; fi
echo "== sfsim serves the demo org at $SFSIM_URL; PostgreSQL listens in $PGHOST on port $PGPORT"

echo "== the simulator, as any Salesforce client sees it"
token=$(curl -s "$SFSIM_URL/services/oauth2/token" -d grant_type=password -d client_id=sfsim-client-id \
  -d client_secret=sfsim-client-secret -d username=admin@sfsim.example -d password=sfsim-passwordSFSIMTOKEN |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
for soql in "SELECT COUNT() FROM Contact" "SELECT Name, Industry, BillingCity FROM Account ORDER BY AnnualRevenue DESC NULLS LAST LIMIT 3"; do
  echo "SOQL> $soql"
  curl -s -G "$SFSIM_URL/services/data/v62.0/query" -H "Authorization: Bearer $token" --data-urlencode "q=$soql" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print("  totalSize:", r["totalSize"]); [print("  ", {k: v for k, v in x.items() if k != "attributes"}) for x in r["records"]]'
done

echo "== the extension"
sql <<SQL
CREATE EXTENSION pg_salesforce;
\dx pg_salesforce
SELECT * FROM salesforce.salesforce_fdw_meta();
CREATE SERVER demo_org FOREIGN DATA WRAPPER salesforce
  OPTIONS (login_url '$SFSIM_URL', api_version '62.0');
CREATE USER MAPPING FOR CURRENT_USER SERVER demo_org
  OPTIONS (grant_type 'password', client_id 'sfsim-client-id', client_secret 'sfsim-client-secret',
           username 'admin@sfsim.example', password 'sfsim-password', security_token 'SFSIMTOKEN');
SELECT srvname, srvoptions FROM pg_foreign_server WHERE srvname = 'demo_org';
CREATE SCHEMA crm;
IMPORT FOREIGN SCHEMA salesforce LIMIT TO (account, contact, opportunity, invoice__c) FROM SERVER demo_org INTO crm;
SQL
echo "== the imported tables"
sql -c "SELECT foreign_table_name AS table, (SELECT count(*) FROM information_schema.columns c WHERE c.table_schema = 'crm' AND c.table_name = t.foreign_table_name) AS columns FROM information_schema.foreign_tables t WHERE foreign_table_schema = 'crm' ORDER BY 1"
run() {
  echo "SQL> $1"
  sql -c "$1"
}
curl -s -X DELETE "$SFSIM_URL/__sim/requests" >/dev/null
run "SELECT count(*) FROM crm.contact WHERE has_opted_out_of_email"
run "SELECT a.name, count(*) AS open_invoices, sum(i.total__c) AS total
       FROM crm.invoice__c i JOIN crm.account a ON a.id = i.account__c
      WHERE NOT i.paid__c GROUP BY a.name ORDER BY total DESC LIMIT 5"
run "SELECT first_name, last_name, email, languages__c FROM crm.contact
      WHERE 'Japanese' = ANY(languages__c) AND birthdate < '1970-01-01' ORDER BY last_name LIMIT 5"
run "EXPLAIN (COSTS OFF) SELECT name, amount FROM crm.opportunity WHERE amount >= 150000 AND stage_name <> 'Closed Lost' ORDER BY amount DESC LIMIT 3"
run "EXPLAIN (COSTS OFF) SELECT stage_name, count(*), sum(amount), avg(amount) FROM crm.opportunity GROUP BY stage_name"
run "EXPLAIN (COSTS OFF) SELECT i.name, a.name AS account, a.rating FROM crm.invoice__c i JOIN crm.account a ON a.id = i.account__c WHERE a.rating = 'Hot'"
echo "== the signup: a user row and its Salesforce Contact, together or not at all"
sql -q -c "CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE NOT NULL, first_name text, last_name text)"
run "BEGIN;
     WITH u AS (INSERT INTO users (email, first_name, last_name) VALUES ('grace@example.net', 'Grace', 'Hopper') RETURNING *)
     INSERT INTO crm.contact (first_name, last_name, email, user_id__c) SELECT first_name, last_name, email, id::text FROM u RETURNING id, user_id__c;
     COMMIT;"
taken=$(sql -tA -c "SELECT email FROM crm.contact WHERE email LIKE 'ada.%' ORDER BY email LIMIT 1")
echo "SQL> a second signup whose email Salesforce's duplicate rule already knows ($taken)"
sql -v ON_ERROR_STOP=0 2>&1 <<SQL | sed 's/^/   /'
BEGIN;
INSERT INTO users (email, first_name, last_name) VALUES ('$taken', 'Ada', 'Again');
INSERT INTO crm.contact (first_name, last_name, email) VALUES ('Ada', 'Again', '$taken');
COMMIT;
SQL
run "SELECT u.email, c.id AS salesforce_contact FROM users u LEFT JOIN crm.contact c ON c.user_id__c = u.id::text"
echo "== what reached Salesforce (sfsim's request log)"
curl -s "$SFSIM_URL/__sim/requests" | python3 -c 'import json,sys; [print("  ", r["method"], r["soql"] or r["path"], "(%d records)" % len(r["body"]["records"]) if r["body"] and "records" in r["body"] else "") for r in json.load(sys.stdin)["requests"] if "/oauth2/" not in r["path"]]'
echo "== sync: a local copy of Account, kept current"
run "SELECT salesforce.sync_enable('demo_org', 'Account', every => '1 minute')"
run "CALL salesforce.sync_now('demo_org', 'Account')"
acct=$(sql -tA -c "SELECT id FROM demo_org.account ORDER BY id LIMIT 1")
echo "   (an admin renames account $acct in Salesforce, through sfsim's control API)"
curl -s -X PATCH "$SFSIM_URL/__sim/records/Account/$acct" -H 'Content-Type: application/json' -d '{"Name": "Renamed in Salesforce"}' >/dev/null
run "CALL salesforce.sync_now('demo_org', 'Account')"
run "SELECT id, name, _synced_at IS NOT NULL AS synced FROM demo_org.account WHERE id = '$acct'"
echo "   (write-through: an insert through the foreign table is in the copy before COMMIT)"
run "BEGIN;
     INSERT INTO crm.account (name, industry) VALUES ('Write-Through Works', 'Technology');
     SELECT id, name, industry, system_modstamp FROM demo_org.account WHERE name = 'Write-Through Works';
     COMMIT;"
run "SELECT id, kind, status, rows_upserted, rows_deleted, api_requests, cursor_to FROM salesforce.sync_runs ORDER BY id"
run "SELECT object, target, stage, last_status, rows, backfill_percent, api_requests_24h, api_requests_left FROM salesforce.sync_status"
echo "== the validator refuses plain http to anything but loopback:"
sql -c "CREATE SERVER leaky FOREIGN DATA WRAPPER salesforce OPTIONS (login_url 'http://login.salesforce.com')" 2>&1 | sed 's/^/  /' || true
echo "== demo finished"
