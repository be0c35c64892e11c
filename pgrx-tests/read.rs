// The read path: import, types, pushdown (checked in sfsim's request log),
// paging, joins, connections and errors.

#[pgrx::pg_schema]
mod tests {
    use crate::db_tests::support::*;
    use pgrx::prelude::*;

    /// The same query evaluated by PostgreSQL alone: OFFSET 0 keeps the outer
    /// WHERE from being pushed into the scan.
    fn unpushed(table: &str, condition: &str) -> String {
        format!("SELECT * FROM (SELECT * FROM {table} OFFSET 0) all_rows WHERE {condition}")
    }

    /// The message and hint of the error a query raises.
    fn query_error(sql: &str) -> String {
        let e = sql_error(sql);
        format!("{} HINT: {}", e.message, e.hint)
    }

    fn column_type(table: &str, column: &str) -> String {
        Spi::get_one::<String>(&format!("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = '{table}'::regclass AND attname = '{column}'"))
            .unwrap()
            .unwrap_or_else(|| panic!("no column {table}.{column}"))
    }

    #[pg_test]
    fn import_creates_typed_tables_for_standard_and_custom_objects() {
        import_demo("imp", "");
        assert_eq!(count("SELECT 1 FROM information_schema.foreign_tables WHERE foreign_table_schema = 'imp'"), 3);
        for (table, column, pg_type) in [
            ("imp.contact", "email", "text"),
            ("imp.contact", "languages__c", "text[]"),
            ("imp.contact", "birthdate", "date"),
            ("imp.contact", "mailing_address", "jsonb"),
            (
                "imp.contact",
                "preferred_call_time__c",
                "time without time zone",
            ),
            ("imp.contact", "system_modstamp", "timestamp with time zone"),
            ("imp.contact", "has_opted_out_of_email", "boolean"),
            ("imp.account", "number_of_employees", "integer"),
            ("imp.account", "billing_latitude", "double precision"),
            ("imp.invoice__c", "amount__c", "numeric"),
            ("imp.invoice__c", "account__c", "text"),
        ] {
            assert_eq!(column_type(table, column), pg_type, "{table}.{column}");
        }
        let options = Spi::get_one::<String>("SELECT array_to_string(attfdwoptions, ',') FROM pg_attribute WHERE attrelid = 'imp.contact'::regclass AND attname = 'user_id__c'");
        assert_eq!(options, Ok(Some("field=User_Id__c".into())));
        let table_options = Spi::get_one::<String>("SELECT array_to_string(ftoptions, ',') FROM pg_foreign_table WHERE ftrelid = 'imp.invoice__c'::regclass");
        assert_eq!(
            table_options,
            Ok(Some(
                "object=Invoice__c,rowid_column=id,estimated_rows=150".into()
            ))
        );
        assert_eq!(count("SELECT * FROM imp.invoice__c"), 150);
    }

    #[pg_test]
    fn import_can_keep_api_names() {
        create_server("api_names", "");
        Spi::run("CREATE SCHEMA api_names").unwrap();
        Spi::run("IMPORT FOREIGN SCHEMA salesforce LIMIT TO (\"Invoice__c\") FROM SERVER api_names INTO api_names OPTIONS (naming 'api')").unwrap();
        assert_eq!(
            count("SELECT \"Amount__c\" FROM api_names.\"Invoice__c\""),
            150
        );
    }

    #[pg_test]
    fn values_arrive_as_their_postgres_types() {
        import_demo("vals", "");
        let id = control(
            "POST",
            "records/Contact",
            Some(serde_json::json!({
                "LastName": "Typed", "FirstName": "Val", "Birthdate": "1985-07-04", "Languages__c": "English;German",
                "Lifetime_Value__c": 1234.56, "Preferred_Call_Time__c": "09:30:00.000Z", "HasOptedOutOfEmail": true,
                "MailingCity": "Oslo", "User_Id__c": "typed-1"
            })),
        )["id"]
        .as_str()
        .unwrap()
        .to_string();
        let row = Spi::get_one::<String>(
            "SELECT concat_ws('|', birthdate, languages__c, lifetime_value__c, preferred_call_time__c, has_opted_out_of_email,
                    mailing_address->>'city', name, abs(extract(epoch FROM now() - system_modstamp)) < 600, length(id))
             FROM vals.contact WHERE user_id__c = 'typed-1'",
        );
        control("DELETE", &format!("records/Contact/{id}?hard=true"), None);
        assert_eq!(
            row,
            Ok(Some(
                "1985-07-04|{English,German}|1234.56|09:30:00|t|Oslo|Val Typed|t|18".into()
            ))
        );
    }

    #[pg_test]
    fn comparisons_are_pushed_as_soql() {
        import_demo("ops", "");
        let cases = [
            (
                "email = 'ada.lovelace0@example.com'",
                "Email = 'ada.lovelace0@example.com'",
            ),
            (
                "account_id <> '001000000000000AAA'",
                "AccountId != '001000000000000AAA'",
            ),
            ("lifetime_value__c > 100", "Lifetime_Value__c > 100"),
            ("lifetime_value__c <= 100.5", "Lifetime_Value__c <= 100.5"),
            ("100 < lifetime_value__c", "Lifetime_Value__c > 100"),
            ("birthdate >= '1990-01-31'", "Birthdate >= 1990-01-31"),
            (
                "created_date < '2026-01-01 00:00:00+00'",
                "CreatedDate < 2026-01-01T00:00:00Z",
            ),
            (
                "last_name IN ('Turing', 'Hopper')",
                "LastName IN ('Turing', 'Hopper')",
            ),
            ("last_name = ANY(ARRAY['Turing'])", "LastName IN ('Turing')"),
            (
                "account_id NOT IN ('001000000000000AAA', '001000000000001AAA')",
                "AccountId NOT IN ('001000000000000AAA', '001000000000001AAA')",
            ),
            (
                "last_name = 'Turing' OR last_name = 'Hopper'",
                "(LastName = 'Turing' OR LastName = 'Hopper')",
            ),
            ("last_name LIKE 'Tur%'", "LastName LIKE 'Tur%'"),
            ("last_name ILIKE 'tur%'", "LastName LIKE 'tur%'"),
            ("email IS NULL", "Email = null"),
            ("email IS NOT NULL", "Email != null"),
            ("has_opted_out_of_email", "HasOptedOutOfEmail = true"),
            ("NOT has_opted_out_of_email", "HasOptedOutOfEmail = false"),
            ("last_name = 'O''Neil'", r"LastName = 'O\'Neil'"),
            ("last_name = 'TURING'", "LastName = 'TURING'"),
            (
                "lifetime_value__c >= 0 AND email LIKE '%.com'",
                "Lifetime_Value__c >= 0 AND Email LIKE '%.com'",
            ),
        ];
        for (condition, soql) in cases {
            let before = mark();
            let got = count(&format!("SELECT id FROM ops.contact WHERE {condition}"));
            let sent = soql_since(before);
            assert_eq!(sent.len(), 1, "{condition}: {sent:?}");
            assert!(
                sent[0].ends_with(&format!(" FROM Contact WHERE {soql}")),
                "{condition}: {}",
                sent[0]
            );
            assert_eq!(
                got,
                count(&unpushed("ops.contact", condition)),
                "{condition}: PostgreSQL semantics"
            );
        }
        assert_eq!(
            count("SELECT id FROM ops.contact WHERE last_name = 'TURING'"),
            0,
            "Salesforce ignores case; the result must not"
        );
    }

    #[pg_test]
    fn unpushable_conditions_stay_local() {
        import_demo("local", "");
        for condition in [
            "last_name < 'M'",
            "description = 'x'",
            "lower(email) = 'ada.lovelace0@example.com'",
            "email <> 'x@y.z'",
            "last_name NOT IN ('turing', 'Hopper')",
            "last_name = 'Turing' OR lower(email) = 'x'",
            "languages__c @> ARRAY['French']",
            "tax_id__c = 'x'",
            "email = NULL",
        ] {
            let before = mark();
            let got = count(&format!("SELECT id FROM local.contact WHERE {condition}"));
            let sent = soql_since(before);
            assert!(
                sent.iter().all(|s| !s.contains(" WHERE ")),
                "{condition}: {sent:?}"
            );
            assert_eq!(
                got,
                count(&unpushed("local.contact", condition)),
                "{condition}"
            );
        }
    }

    #[pg_test]
    fn sort_and_limit_are_pushed_only_when_salesforce_order_is_exact() {
        import_demo("ord", "");
        let ordered = "SELECT lifetime_value__c FROM ord.contact ORDER BY lifetime_value__c DESC NULLS LAST, birthdate LIMIT 5 OFFSET 2";
        let before = mark();
        let got = Spi::get_one::<String>(&format!(
            "SELECT string_agg(lifetime_value__c::text, ',') FROM ({ordered}) q"
        ))
        .unwrap();
        let sent = soql_since(before);
        assert_eq!(sent, vec!["SELECT Id, Birthdate, Lifetime_Value__c FROM Contact ORDER BY Lifetime_Value__c DESC NULLS LAST, Birthdate ASC NULLS LAST LIMIT 7".to_string()]);
        let local = Spi::get_one::<String>(
            "SELECT string_agg(lifetime_value__c::text, ',') FROM (SELECT lifetime_value__c FROM (SELECT * FROM ord.contact OFFSET 0) c
             ORDER BY lifetime_value__c DESC NULLS LAST, birthdate LIMIT 5 OFFSET 2) q",
        )
        .unwrap();
        assert_eq!(got, local);

        for (query, expected_tail) in [
            (
                "SELECT id FROM ord.contact ORDER BY last_name LIMIT 5",
                " FROM Contact",
            ),
            (
                "SELECT id FROM ord.contact WHERE lifetime_value__c > 10 LIMIT 3",
                " FROM Contact WHERE Lifetime_Value__c > 10 LIMIT 3",
            ),
            (
                "SELECT id FROM ord.contact WHERE email LIKE '%a%' LIMIT 3",
                " FROM Contact WHERE Email LIKE '%a%'",
            ),
            (
                "SELECT DISTINCT last_name FROM ord.contact LIMIT 3",
                " FROM Contact",
            ),
        ] {
            let before = mark();
            count(query);
            let sent = soql_since(before);
            assert!(
                sent.len() == 1 && sent[0].ends_with(expected_tail),
                "{query}: {sent:?}"
            );
        }
        let before = mark();
        count("SELECT c.id FROM ord.contact c JOIN ord.account a ON c.account_id = a.id LIMIT 3");
        assert!(
            soql_since(before).iter().all(|s| !s.contains("LIMIT")),
            "a join's LIMIT is not the scan's"
        );
    }

    #[pg_test]
    fn pages_are_fetched_only_as_rows_are_needed() {
        import_demo("lazy", "batch_size '200'");
        let before = mark();
        assert_eq!(count("SELECT id FROM lazy.contact"), 400);
        let paths: Vec<String> = requests_since(before)
            .iter()
            .map(|r| r["path"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(paths.len(), 2, "{paths:?}");
        assert!(paths[0].ends_with("/query") && paths[1].contains("/query/01g"));
        let before = mark();
        assert_eq!(
            count("SELECT id FROM lazy.contact WHERE email LIKE '%' LIMIT 3"),
            3
        );
        assert_eq!(
            requests_since(before).len(),
            1,
            "no page beyond the first when three rows suffice"
        );
    }

    #[pg_test]
    fn or_and_not_are_pushed_and_answer_as_local_rows_do() {
        import_demo("por", "");
        let start = mark();
        Spi::run("CREATE TABLE por_local AS SELECT * FROM por.contact").unwrap();
        let name = Spi::get_one::<String>(
            "SELECT last_name FROM por_local WHERE last_name IS NOT NULL ORDER BY id LIMIT 1",
        )
        .unwrap()
        .unwrap();
        let lower = name.to_lowercase().replace('\'', "''");
        let exact = "lifetime_value__c > 5000 OR birthdate < '1970-01-01'";
        let cases = [
            (exact.to_string(), "WHERE (Lifetime_Value__c > 5000 OR Birthdate < 1970-01-01)"),
            (
                format!("last_name = '{lower}' OR (lifetime_value__c > 9000 AND birthdate >= '1990-01-01')"),
                "OR (Lifetime_Value__c > 9000 AND Birthdate >= 1990-01-01))",
            ),
            (format!("NOT (lifetime_value__c > 5000 OR last_name = '{lower}')"), "WHERE Lifetime_Value__c <= 5000"),
            ("lifetime_value__c > 5000 OR upper(last_name) = 'X'".into(), "FROM Contact"),
        ];
        for (condition, sent) in cases {
            let before = mark();
            let foreign = count(&format!("SELECT id FROM por.contact WHERE {condition}"));
            let soql = soql_since(before);
            let local = count(&format!("SELECT id FROM por_local WHERE {condition}"));
            assert_eq!(foreign, local, "{condition}");
            assert!(
                soql.iter().any(|q| q.contains(sent)),
                "{condition}: {soql:?}"
            );
        }
        assert!(
            soql_since(start).iter().all(|q| !q.contains("UPPER")),
            "a side that cannot be sent keeps the whole OR local"
        );
        let plan = explain(&format!("SELECT count(*) FROM por.contact WHERE {exact}"));
        assert!(
            plan.contains("SELECT COUNT() FROM Contact WHERE (Lifetime_Value__c > 5000 OR Birthdate < 1970-01-01)"),
            "an exact OR lets count(*) be sent: {plan}"
        );
        let plan = explain(&format!(
            "SELECT id FROM por.contact WHERE last_name = '{lower}' OR lifetime_value__c > 9000"
        ));
        assert!(
            plan.contains("Filter:"),
            "text is rechecked locally: {plan}"
        );
    }

    #[pg_test]
    fn joins_match_the_same_join_over_local_copies() {
        import_demo("j", "");
        Spi::run("CREATE TABLE local_contact AS SELECT * FROM j.contact").unwrap();
        Spi::run("CREATE TABLE local_account AS SELECT * FROM j.account").unwrap();
        let foreign = count("SELECT c.id FROM j.contact c JOIN j.account a ON c.account_id = a.id WHERE a.rating = 'Hot'");
        let local = count("SELECT c.id FROM local_contact c JOIN local_account a ON c.account_id = a.id WHERE a.rating = 'Hot'");
        assert!(foreign > 0);
        assert_eq!(foreign, local);
        Spi::run("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; SET LOCAL enable_material = off").unwrap();
        let before = mark();
        let nested = count("SELECT c.id FROM local_contact c JOIN j.account a ON c.account_id = a.id WHERE a.rating = 'Hot'");
        assert_eq!(nested, local);
        assert_eq!(
            soql_since(before).len(),
            1,
            "rescans replay the single page instead of asking again"
        );
    }

    #[pg_test]
    fn hand_written_tables_match_columns_to_fields() {
        create_server("hand", "");
        Spi::run(
            "CREATE FOREIGN TABLE hand_contacts (id text, lastname text, \"EMAIL\" text, first_name text, value numeric OPTIONS (field 'Lifetime_Value__c'))
             SERVER hand OPTIONS (object 'Contact')",
        )
        .unwrap();
        assert_eq!(count("SELECT 1 FROM hand_contacts WHERE lastname IS NOT NULL AND \"EMAIL\" LIKE '%@%' AND first_name IS NOT NULL AND value >= 0"), 400);
        Spi::run("CREATE FOREIGN TABLE hand_bad (id text, x text OPTIONS (field 'Nope__c')) SERVER hand OPTIONS (object 'Contact')").unwrap();
        let e = query_error("SELECT * FROM hand_bad");
        assert!(
            e.contains(
                "field \"Nope__c\" of column \"x\" does not exist on Salesforce object Contact"
            ),
            "{e}"
        );
    }

    #[pg_test]
    fn every_grant_type_connects() {
        let key = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sfsim/fixtures/jwt/private.pem"
        ));
        let token = access_token();
        let mappings = [
            "grant_type 'password', client_id 'sfsim-client-id', client_secret 'sfsim-client-secret', username 'admin@sfsim.example', password 'sfsim-password', security_token 'SFSIMTOKEN'".to_string(),
            "grant_type 'refresh_token', client_id 'sfsim-client-id', refresh_token '5Aep861sfsim.demo.refresh.token'".to_string(),
            "grant_type 'client_credentials', client_id 'sfsim-client-id', client_secret 'sfsim-client-secret'".to_string(),
            format!("grant_type 'jwt_bearer', client_id 'sfsim-client-id', username 'admin@sfsim.example', private_key '{key}'"),
            format!("grant_type 'access_token', access_token '{token}'"),
        ];
        for (i, mapping) in mappings.iter().enumerate() {
            Spi::run(&format!(
                "CREATE SERVER grant_{i} FOREIGN DATA WRAPPER salesforce OPTIONS (login_url '{}')",
                sim()
            ))
            .unwrap();
            Spi::run(&format!(
                "CREATE USER MAPPING FOR CURRENT_USER SERVER grant_{i} OPTIONS ({mapping})"
            ))
            .unwrap();
            Spi::run(&format!("CREATE FOREIGN TABLE grant_{i}_account (id text, name text) SERVER grant_{i} OPTIONS (object 'Account')")).unwrap();
            assert_eq!(
                count(&format!("SELECT * FROM grant_{i}_account")),
                40,
                "{mapping}"
            );
        }
    }

    #[pg_test]
    fn an_expired_session_logs_in_again_once() {
        import_demo("expiry", "");
        count("SELECT id FROM expiry.account");
        control("POST", "tokens/expire", None);
        let before = mark();
        assert_eq!(count("SELECT id FROM expiry.account"), 40);
        let logins = requests_since(before)
            .iter()
            .filter(|r| r["path"] == "/services/oauth2/token")
            .count();
        assert_eq!(logins, 1);
    }

    #[pg_test]
    fn explain_shows_the_soql_and_what_stays_local_but_no_secrets() {
        import_demo("ex", "");
        let plan = explain("SELECT email FROM ex.contact WHERE lifetime_value__c > 5 AND email LIKE 'a%' AND lower(last_name) = 'x'");
        assert!(plan.contains("Salesforce Query: SELECT Id, LastName, Email FROM Contact WHERE Lifetime_Value__c > 5 AND Email LIKE 'a%'"), "{plan}");
        assert!(plan.contains("Filter: ((contact.email ~~ 'a%'::text) AND (lower(contact.last_name) = 'x'::text))"), "{plan}");
        for secret in ["sfsim-password", "SFSIMTOKEN", "sfsim-client-secret"] {
            assert!(!plan.contains(secret), "{plan}");
        }
    }

    #[pg_test]
    fn salesforce_errors_become_clear_postgres_errors() {
        Spi::run(&format!(
            "CREATE SERVER bad_login FOREIGN DATA WRAPPER salesforce OPTIONS (login_url '{}')",
            sim()
        ))
        .unwrap();
        Spi::run(
            "CREATE USER MAPPING FOR CURRENT_USER SERVER bad_login OPTIONS (grant_type 'password', client_id 'sfsim-client-id',
             client_secret 'sfsim-client-secret', username 'admin@sfsim.example', password 'wrong-secret-value')",
        )
        .unwrap();
        Spi::run("CREATE FOREIGN TABLE bad_login_account (id text) SERVER bad_login OPTIONS (object 'Account')").unwrap();
        let e = query_error("SELECT * FROM bad_login_account");
        assert!(e.starts_with("Salesforce login failed: invalid_grant: authentication failure HINT: Check the credentials"), "{e}");
        assert!(!e.contains("wrong-secret-value"));

        create_server("no_object", "");
        Spi::run("CREATE FOREIGN TABLE no_object_t (id text) SERVER no_object OPTIONS (object 'Nope__c')").unwrap();
        let e = query_error("SELECT * FROM no_object_t");
        assert!(
            e.contains("Salesforce NOT_FOUND")
                && e.contains("HINT: Check the foreign table's object option"),
            "{e}"
        );

        import_demo("limited", "");
        let used = control("GET", "usage", None)["api_requests_used"]
            .as_u64()
            .unwrap();
        control(
            "PATCH",
            "settings",
            Some(serde_json::json!({"daily_limit": used})),
        );
        let e = query_error("SELECT * FROM limited.account");
        control(
            "PATCH",
            "settings",
            Some(serde_json::json!({"daily_limit": 1_000_000})),
        );
        assert!(e.starts_with("Salesforce REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded. HINT: The org's daily API request limit"), "{e}");
    }

    #[pg_test]
    fn count_star_is_one_count_request_when_conditions_are_exact() {
        import_demo("cnt", "");
        let before = mark();
        let n = Spi::get_one::<i64>("SELECT count(*) FROM cnt.contact WHERE lifetime_value__c >= 100 AND birthdate IS NOT NULL").unwrap().unwrap();
        let sent = requests_since(before);
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0]["soql"],
            "SELECT COUNT() FROM Contact WHERE Lifetime_Value__c >= 100 AND Birthdate != null"
        );
        assert_eq!(sent[0]["records"], 0, "no rows transferred");
        assert_eq!(
            n,
            count(&unpushed(
                "cnt.contact",
                "lifetime_value__c >= 100 AND birthdate IS NOT NULL"
            ))
        );
        assert!(explain("SELECT count(*) FROM cnt.contact")
            .contains("Salesforce Query: SELECT COUNT() FROM Contact"));

        let before = mark();
        let n = Spi::get_one::<i64>("SELECT count(*) FROM cnt.contact WHERE last_name = 'TURING'")
            .unwrap()
            .unwrap();
        assert_eq!(
            n, 0,
            "an inexact condition is rechecked, so rows are fetched and counted here"
        );
        assert!(soql_since(before)[0].starts_with("SELECT Id, LastName FROM Contact WHERE"));
        let grouped = count("SELECT level__c, count(*) FROM cnt.contact GROUP BY level__c");
        assert!(grouped >= 3);
    }

    /// Whether two queries return the same rows, duplicates included.
    fn same_rows(a: &str, b: &str) -> bool {
        count(&format!(
            "(({a}) EXCEPT ALL ({b})) UNION ALL (({b}) EXCEPT ALL ({a}))"
        )) == 0
    }

    #[pg_test]
    fn parent_joins_are_one_query_on_the_child_equal_to_local_joins() {
        create_server("pj", "");
        Spi::run("CREATE SCHEMA pj; IMPORT FOREIGN SCHEMA salesforce LIMIT TO (contact, account, invoice__c, \"case\") FROM SERVER pj INTO pj").unwrap();
        Spi::run("INSERT INTO pj.contact (last_name) VALUES ('Orphan')").unwrap();
        Spi::run("INSERT INTO pj.invoice__c (amount__c) VALUES (1)").unwrap();
        for t in ["contact", "account", "invoice__c", "case"] {
            Spi::run(&format!("CREATE TABLE pj_{t} AS SELECT * FROM pj.\"{t}\"")).unwrap();
        }
        let cases = [
            (
                "SELECT c.id, c.last_name, a.name, a.rating FROM {contact} c JOIN {account} a ON c.account_id = a.id WHERE a.rating = 'Hot'",
                "FROM Contact WHERE AccountId != null AND Account.Rating = 'Hot'",
                "Account.Name",
            ),
            (
                "SELECT i.name, a.name AS account, a.id FROM {invoice__c} i LEFT JOIN {account} a ON a.id = i.account__c",
                "SELECT Id, Name, Account__r.Name, Account__r.Id FROM Invoice__c",
                "Account__r.Name",
            ),
            (
                "SELECT k.subject, c.last_name, a.name FROM {case} k JOIN {contact} c ON k.contact_id = c.id JOIN {account} a ON c.account_id = a.id WHERE c.birthdate < '1990-01-01'",
                "FROM Case WHERE ContactId != null AND Contact.Birthdate < 1990-01-01 AND Contact.AccountId != null",
                "Contact.Account.Name",
            ),
            (
                "SELECT c.last_name, a.name FROM {contact} c LEFT JOIN {account} a ON c.account_id = a.id WHERE a.name IS NULL",
                "FROM Contact",
                "Account.Name",
            ),
        ];
        let at = |sql: &str, local: bool| {
            ["contact", "account", "invoice__c", "case"]
                .iter()
                .fold(sql.to_string(), |q, t| {
                    let table = if local {
                        format!("pj_{t}")
                    } else {
                        format!("pj.\"{t}\"")
                    };
                    q.replace(&format!("{{{t}}}"), &table)
                })
        };
        for (sql, condition, parent_field) in cases {
            let foreign = at(sql, false);
            let plan = explain(&foreign);
            assert_eq!(plan.matches("Salesforce Query").count(), 1, "{plan}");
            let before = mark();
            let rows = Spi::connect(|c| c.select(&foreign, None, &[]).unwrap().len());
            assert!(rows > 0, "{foreign}");
            let sent = soql_since(before);
            assert_eq!(sent.len(), 1, "one request: {sent:?}");
            assert!(
                sent[0].contains(condition) && sent[0].contains(parent_field),
                "{sent:?}"
            );
            assert!(same_rows(&foreign, &at(sql, true)), "{sql}");
        }
        let before = mark();
        assert!(same_rows(
            "SELECT c.id FROM pj.contact c JOIN pj.account a ON c.last_name = a.name",
            "SELECT c.id FROM pj_contact c JOIN pj_account a ON c.last_name = a.name"
        ));
        assert!(
            soql_since(before).iter().all(|q| !q.contains("Account.")),
            "a join on other columns stays local"
        );
    }

    #[pg_test]
    fn exact_aggregates_are_one_soql_query_equal_to_local_ones() {
        create_server("pag", "");
        Spi::run("CREATE SCHEMA pag; IMPORT FOREIGN SCHEMA salesforce LIMIT TO (opportunity) FROM SERVER pag INTO pag").unwrap();
        Spi::run("CREATE TABLE pag_local AS SELECT * FROM pag.opportunity").unwrap();
        let cases = [
            (
                "SELECT stage_name, count(*), sum(amount) FROM {t} GROUP BY 1",
                "SELECT StageName, COUNT(Id) a0, SUM(Amount) a1 FROM Opportunity GROUP BY StageName",
            ),
            (
                "SELECT stage_name, avg(amount), avg(probability), min(close_date), max(amount), count(DISTINCT account_id), count(next_step) \
                 FROM {t} WHERE close_date >= '2020-01-01' GROUP BY stage_name HAVING count(*) > 1 AND sum(amount) >= 10",
                "SELECT StageName, SUM(Amount) a0, COUNT(Amount) a1, SUM(Probability) a2, COUNT(Probability) a3, MIN(CloseDate) a4, MAX(Amount) a5, COUNT_DISTINCT(AccountId) a6, COUNT(NextStep) a7 \
                 FROM Opportunity WHERE CloseDate >= 2020-01-01 GROUP BY StageName HAVING COUNT(Id) > 1 AND SUM(Amount) >= 10",
            ),
            (
                "SELECT sum(amount), avg(total_opportunity_quantity), max(close_date) FROM {t} WHERE amount > 1000000000",
                "SELECT SUM(Amount) a0, SUM(TotalOpportunityQuantity) a1, COUNT(TotalOpportunityQuantity) a2, MAX(CloseDate) a3 FROM Opportunity WHERE Amount > 1000000000",
            ),
            (
                "SELECT count(*) + 1 AS n, type, account_id FROM {t} GROUP BY type, account_id ORDER BY n DESC",
                "SELECT Type, AccountId, COUNT(Id) a0 FROM Opportunity GROUP BY Type, AccountId",
            ),
        ];
        for (sql, soql) in cases {
            let before = mark();
            let foreign = sql.replace("{t}", "pag.opportunity");
            let local = sql.replace("{t}", "pag_local");
            let rows = Spi::connect(|c| c.select(&foreign, None, &[]).unwrap().len());
            assert!(rows > 0, "{foreign}");
            let sent = requests_since(before);
            assert_eq!(sent.len(), 1, "one request: {sent:?}");
            assert_eq!(sent[0]["soql"], soql);
            assert!(same_rows(&foreign, &local), "{sql}");
        }
        let sum = Spi::get_one::<String>(
            "SELECT sum(amount)::text FROM pag.opportunity WHERE amount > 1000000000",
        )
        .unwrap();
        assert_eq!(sum, None, "a sum over no rows is null, as PostgreSQL's");
    }

    #[pg_test]
    fn aggregates_salesforce_would_answer_differently_stay_local() {
        create_server("plc", "");
        Spi::run("CREATE SCHEMA plc; IMPORT FOREIGN SCHEMA salesforce LIMIT TO (opportunity) FROM SERVER plc INTO plc").unwrap();
        Spi::run("INSERT INTO plc.opportunity (name, stage_name, close_date, next_step) VALUES ('a', 'Prospecting', '2024-01-01', 'Call back'), ('A', 'Prospecting', '2024-01-01', 'CALL BACK')").unwrap();
        Spi::run("CREATE TABLE plc_local AS SELECT * FROM plc.opportunity").unwrap();
        let cases = [
            ("SELECT next_step, count(*) FROM {t} GROUP BY next_step", "Salesforce groups NextStep (string) ignoring case"),
            ("SELECT stage_name, max(name) FROM {t} GROUP BY stage_name", "Salesforce orders Name (string) otherwise than PostgreSQL"),
            ("SELECT min(stage_name) FROM {t}", "Salesforce orders StageName (picklist) otherwise than PostgreSQL"),
            ("SELECT count(*) FROM {t} WHERE upper(name) <> 'X'", "a condition of the scan is checked locally"),
            ("SELECT stage_name, count(*) FROM {t} GROUP BY stage_name HAVING avg(amount) > 5", "an average is divided locally"),
            ("SELECT stage_name, string_agg(name, ',' ORDER BY name) FROM {t} GROUP BY stage_name", "Salesforce has no equivalent of this call of string_agg"),
        ];
        for (sql, reason) in cases {
            let foreign = sql.replace("{t}", "plc.opportunity");
            let plan = explain(&foreign);
            assert!(
                plan.contains(&format!("Aggregates Computed Locally: {reason}")),
                "{plan}"
            );
            let before = mark();
            assert!(
                same_rows(&foreign, &sql.replace("{t}", "plc_local")),
                "{sql}"
            );
            assert!(soql_since(before)
                .iter()
                .all(|q| !q.contains("GROUP BY") && !q.contains("MAX(")));
        }
        assert_eq!(
            count("SELECT next_step FROM plc.opportunity WHERE upper(next_step) = 'CALL BACK' GROUP BY next_step"),
            2,
            "text differing in case makes two groups, as in PostgreSQL"
        );
        assert_eq!(
            count("SELECT 1 FROM plc.opportunity GROUP BY stage_name, upper(name) HAVING count(DISTINCT name) = 2"),
            1,
            "and two distinct values"
        );
        Spi::run("ALTER FOREIGN TABLE plc.opportunity OPTIONS (SET estimated_rows '50000')")
            .unwrap();
        assert!(explain("SELECT account_id, count(*) FROM plc.opportunity GROUP BY account_id")
            .contains("Aggregates Computed Locally: Salesforce answers at most 2,000 groups, and about 50000 are expected"));
        Spi::run("SET LOCAL salesforce.pushdown_aggregates = off").unwrap();
        assert!(
            explain("SELECT stage_name, count(*) FROM plc.opportunity GROUP BY 1")
                .contains("Aggregates Computed Locally: salesforce.pushdown_aggregates is off")
        );
    }

    #[pg_test]
    fn a_nested_loop_sends_the_join_key_per_outer_row() {
        import_demo("nl", "");
        Spi::run("CREATE TABLE signups (account_id text)").unwrap();
        Spi::run("INSERT INTO signups SELECT id FROM nl.account WHERE name IN ('Acme Corp', 'Globex Corp', 'Initech Corp')").unwrap();
        Spi::run("ANALYZE signups").unwrap();
        // At a million contacts, three requests beat reading them all.
        Spi::run("ALTER FOREIGN TABLE nl.contact OPTIONS (SET estimated_rows '1000000')").unwrap();
        let join = "SELECT c.id FROM signups s JOIN nl.contact c ON c.account_id = s.account_id";
        assert!(
            explain(join).contains(
                "Salesforce Query: SELECT Id, AccountId FROM Contact WHERE AccountId = $1"
            ),
            "{}",
            explain(join)
        );
        let before = mark();
        let joined = count(join);
        let sent = soql_since(before);
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert!(
            sent.iter()
                .all(|s| s.starts_with("SELECT Id, AccountId FROM Contact WHERE AccountId = '001")),
            "{sent:?}"
        );
        assert!(joined > 0);
        assert_eq!(joined, count("SELECT c.id FROM signups s JOIN (SELECT * FROM nl.contact OFFSET 0) c ON c.account_id = s.account_id"));
    }

    #[pg_test]
    fn a_wide_object_is_read_in_field_groups_stitched_by_id() {
        let fields: Vec<serde_json::Value> = (0..600)
            .map(|i| serde_json::json!({"name": format!("Quarterly_Revenue_Forecast_Region_{i:03}__c"), "type": "string", "length": 40}))
            .collect();
        control(
            "POST",
            "objects/Document/fields",
            Some(serde_json::Value::Array(fields)),
        );
        create_server("wide", "");
        Spi::run("CREATE SCHEMA wide").unwrap();
        Spi::run("IMPORT FOREIGN SCHEMA salesforce LIMIT TO (document) FROM SERVER wide INTO wide")
            .unwrap();
        let id = Spi::get_one::<String>("SELECT id FROM wide.document WHERE name = 'Price list 2'")
            .unwrap()
            .unwrap();
        control(
            "PATCH",
            &format!("records/Document/{id}"),
            Some(serde_json::json!({"Quarterly_Revenue_Forecast_Region_599__c": "last one"})),
        );
        let before = mark();
        let rows = Spi::get_one::<String>(
            "SELECT string_agg(d.name || '=' || coalesce(d.quarterly_revenue_forecast_region_599__c, '-') || ':' || (length(d::text) > 600), ',' ORDER BY d.name)
             FROM wide.document d",
        )
        .unwrap();
        assert_eq!(
            rows,
            Some("Price list 1=-:true,Price list 2=last one:true,Price list 3=-:true".to_string())
        );
        let requests = requests_since(before);
        assert!(
            requests.len() >= 2,
            "the fields were read by several statements"
        );
        for r in &requests {
            assert_eq!(r["status"], 200);
            assert!(
                r["soql"]
                    .as_str()
                    .unwrap()
                    .ends_with("FROM Document ORDER BY Id ASC NULLS LAST"),
                "{}",
                r["soql"]
            );
            let uri_len =
                r["path"].as_str().unwrap().len() + r["query"].as_str().unwrap_or("").len();
            assert!(uri_len < 15_000, "{uri_len}");
        }
    }

    #[pg_test]
    fn caches_last_until_alter_server_or_user_mapping() {
        create_server("cache", "");
        Spi::run("CREATE FOREIGN TABLE cache_account (id text, name text) SERVER cache OPTIONS (object 'Account')").unwrap();
        let describes = |since| {
            requests_since(since)
                .iter()
                .filter(|r| r["path"].as_str().unwrap().ends_with("/describe"))
                .count()
        };
        let logins = |since| {
            requests_since(since)
                .iter()
                .filter(|r| r["path"] == "/services/oauth2/token")
                .count()
        };
        let before = mark();
        count("SELECT * FROM cache_account");
        count("SELECT * FROM cache_account WHERE name = 'x'");
        assert_eq!(
            (describes(before), logins(before)),
            (1, 1),
            "one describe and one login serve both queries"
        );
        let before = mark();
        Spi::run("ALTER SERVER cache OPTIONS (ADD batch_size '500')").unwrap();
        count("SELECT * FROM cache_account");
        assert_eq!(
            (describes(before), logins(before)),
            (1, 1),
            "ALTER SERVER drops both caches"
        );
        Spi::run(
            "ALTER USER MAPPING FOR CURRENT_USER SERVER cache OPTIONS (SET password 'now-wrong')",
        )
        .unwrap();
        let e = query_error("SELECT * FROM cache_account");
        assert!(
            e.starts_with("Salesforce login failed"),
            "ALTER USER MAPPING forces a new login: {e}"
        );
    }

    #[pg_test]
    fn import_except_leaves_out_the_named_objects() {
        create_server("except_org", "");
        Spi::run("CREATE SCHEMA except_schema").unwrap();
        Spi::run("IMPORT FOREIGN SCHEMA salesforce EXCEPT (contact, lead, task, \"case\", document, campaign) FROM SERVER except_org INTO except_schema").unwrap();
        let tables = Spi::get_one::<String>(
            "SELECT string_agg(foreign_table_name::text, ',' ORDER BY foreign_table_name) FROM information_schema.foreign_tables WHERE foreign_table_schema = 'except_schema'",
        );
        assert_eq!(
            tables,
            Ok(Some("account,invoice__c,opportunity,user".into()))
        );
    }

    #[pg_test]
    fn reads_survive_unavailable_servers_and_dropped_connections() {
        import_demo("flaky", "batch_size '200'");
        control(
            "PATCH",
            "faults",
            Some(serde_json::json!({"server_unavailable": 0.2, "drop_connection": 0.1, "seed": 3})),
        );
        let got = count("SELECT id, email FROM flaky.contact");
        let injected = control("GET", "faults", None)["injected"].as_u64().unwrap();
        control("PATCH", "faults", Some(serde_json::json!({})));
        assert_eq!(got, 400);
        assert!(injected > 0, "faults were injected, and retried");
    }

    #[pg_test]
    fn a_bad_value_in_an_answer_names_its_column_and_record() {
        import_demo("bv", "");
        let id = Spi::get_one::<String>(
            "SELECT id FROM bv.contact WHERE birthdate IS NOT NULL ORDER BY id LIMIT 1",
        )
        .unwrap()
        .unwrap();
        control(
            "POST",
            "faults/bad_value",
            Some(
                serde_json::json!({"object": "Contact", "field": "Birthdate", "value": "not-a-date", "count": 1}),
            ),
        );
        let e = sql_error(&format!(
            "SELECT birthdate FROM bv.contact WHERE id = '{id}'"
        ));
        assert_eq!(
            e.message,
            format!("cannot convert the value of column \"birthdate\" (Salesforce field Birthdate of record {id}): a string value \"not-a-date\" is not a date")
        );
        assert_eq!(e.code, "ERRCODE_FDW_INVALID_DATA_TYPE_DESCRIPTORS");
    }

    #[pg_test]
    fn a_column_that_cannot_hold_its_field_is_refused_when_planned() {
        create_server("ct", "");
        Spi::run("CREATE FOREIGN TABLE contact_ints (id text, birthdate int) SERVER ct OPTIONS (object 'Contact')").unwrap();
        let before = mark();
        let e = sql_error("SELECT birthdate FROM contact_ints");
        assert_eq!(e.message, "column \"birthdate\" of foreign table \"contact_ints\" is integer, which cannot hold Salesforce field Birthdate of type date");
        assert_eq!(e.hint, "Declare the column as date (or text).");
        assert!(soql_since(before).is_empty(), "refused before any query");
        assert!(
            count("SELECT id FROM contact_ints") > 0,
            "the other columns still read"
        );
    }

    #[pg_test]
    fn two_user_mappings_on_one_server_each_see_their_own_describe() {
        import_demo("fls", "");
        Spi::run("CREATE ROLE fls_limited").unwrap();
        Spi::run("GRANT USAGE ON FOREIGN SERVER fls TO fls_limited").unwrap();
        Spi::run("GRANT CREATE, USAGE ON SCHEMA public TO fls_limited").unwrap();
        Spi::run("GRANT CREATE ON DATABASE pgrx_tests TO fls_limited").unwrap();
        Spi::run("GRANT USAGE ON SCHEMA fls TO fls_limited").unwrap();
        Spi::run("GRANT SELECT ON fls.contact TO fls_limited").unwrap();
        Spi::run("CREATE USER MAPPING FOR fls_limited SERVER fls OPTIONS (grant_type 'password', client_id 'sfsim-client-id', \
                  client_secret 'sfsim-client-secret', username 'limited@sfsim.example', password 'sfsim-password', security_token 'SFSIMTOKEN')").unwrap();
        let columns = |schema: &str| {
            Spi::get_one::<String>(&format!("SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = '{schema}.contact'::regclass AND attnum > 0 AND attname IN ('email', 'birthdate', 'last_name')"))
                .unwrap()
                .unwrap()
        };
        Spi::run("SET ROLE fls_limited").unwrap();
        Spi::run("CREATE SCHEMA fls_mine").unwrap();
        Spi::run(
            "IMPORT FOREIGN SCHEMA salesforce LIMIT TO (contact) FROM SERVER fls INTO fls_mine",
        )
        .unwrap();
        let e = sql_error("SELECT email FROM fls.contact LIMIT 1");
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(columns("fls"), "last_name,email,birthdate");
        assert_eq!(
            columns("fls_mine"),
            "last_name",
            "the limited user's describe hides Email and Birthdate"
        );
        assert_eq!(
            e.message,
            "field \"Email\" of column \"email\" does not exist on Salesforce object Contact",
            "the limited user plans with its own describe"
        );
        assert!(
            count("SELECT email FROM fls.contact WHERE email IS NOT NULL") > 0,
            "the administrator still reads Email"
        );
    }
}
