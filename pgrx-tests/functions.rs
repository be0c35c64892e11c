// salesforce.query, salesforce.limits and salesforce.describe, each proven
// against the same data read through foreign tables and against sfsim's
// request log.

#[pgrx::pg_schema]
mod tests {
    use crate::db_tests::support::*;
    use pgrx::prelude::*;

    fn one<T: IntoDatum + FromDatum>(sql: &str) -> T {
        Spi::get_one::<T>(sql).unwrap().unwrap()
    }

    #[pg_test]
    fn query_reads_every_page_without_attributes() {
        import_demo("fq", "batch_size '200'");
        let before = mark();
        let rows: i64 = one("SELECT count(*) FROM salesforce.query('fq', 'SELECT Id, LastName, Account.Name FROM Contact')");
        let pages = requests_since(before)
            .iter()
            .filter(|r| r["path"].as_str().unwrap().contains("/query"))
            .count();
        assert_eq!(rows, count("SELECT id FROM fq.contact"));
        assert!(rows > 200, "more than one page: {rows}");
        assert_eq!(pages as i64, (rows + 199) / 200);
        let with_attributes: i64 = one("SELECT count(*) FROM salesforce.query('fq', 'SELECT Id, Account.Name FROM Contact') r WHERE r ? 'attributes' OR r->'Account' ? 'attributes'");
        assert_eq!(with_attributes, 0);
        let named: i64 = one("SELECT count(*) FROM salesforce.query('fq', 'SELECT Id, Account.Name FROM Contact') r JOIN fq.contact c ON c.id = r->>'Id' JOIN fq.account a ON a.id = c.account_id WHERE r->'Account'->>'Name' = a.name");
        assert_eq!(
            named,
            count("SELECT c.id FROM fq.contact c JOIN fq.account a ON a.id = c.account_id")
        );
    }

    #[pg_test]
    fn query_nests_each_subquery_as_an_array_of_its_records() {
        import_demo("fs", "");
        let mismatched: i64 = one(
            "SELECT count(*) FROM salesforce.query('fs', 'SELECT Id, Name, (SELECT Id, LastName FROM Contacts) FROM Account') r
              WHERE coalesce(jsonb_array_length(r->'Contacts'), 0) <> (SELECT count(*) FROM fs.contact c WHERE c.account_id = r->>'Id')",
        );
        assert_eq!(mismatched, 0);
        let accounts: i64 = one("SELECT count(*) FROM salesforce.query('fs', 'SELECT Id, (SELECT Id FROM Contacts) FROM Account')");
        assert_eq!(accounts, count("SELECT id FROM fs.account"));
        let child_attributes: i64 = one("SELECT count(*) FROM salesforce.query('fs', 'SELECT Id, (SELECT LastName FROM Contacts) FROM Account') r, jsonb_array_elements(r->'Contacts') c WHERE c ? 'attributes'");
        assert_eq!(child_attributes, 0);
        // Aggregates, which the wrapper does not push yet, through SOQL.
        let groups: i64 = one("SELECT count(*) FROM salesforce.query('fs', 'SELECT AccountId, COUNT(Id) n FROM Contact GROUP BY AccountId') r
              WHERE (r->>'n')::bigint = (SELECT count(*) FROM fs.contact c WHERE c.account_id IS NOT DISTINCT FROM r->>'AccountId')");
        assert_eq!(groups, count("SELECT DISTINCT account_id FROM fs.contact"));
        let e = sql_error("SELECT * FROM salesforce.query('fs', 'SELECT Nope__c FROM Contact')");
        assert!(e.message.contains("Nope__c"), "{}", e.message);
    }

    #[pg_test]
    fn limits_and_describe_cost_one_request_each() {
        import_demo("fl", "");
        let before = mark();
        let (max, remaining): (i64, i64) = Spi::get_two::<i64, i64>(
            "SELECT max, remaining FROM salesforce.limits('fl') WHERE name = 'DailyApiRequests'",
        )
        .map(|(m, r)| (m.unwrap(), r.unwrap()))
        .unwrap();
        assert_eq!(max, 1_000_000);
        assert!(remaining < max && remaining > 0);
        let calls = |since| {
            requests_since(since)
                .iter()
                .filter(|r| !r["path"].as_str().unwrap().contains("oauth2"))
                .count()
        };
        assert_eq!(calls(before), 1);
        let before = mark();
        let birthdate = Spi::get_three::<String, String, bool>(
            "SELECT type, column_type, nillable FROM salesforce.describe('fl', 'Contact') WHERE name = 'Birthdate'",
        )
        .unwrap();
        assert_eq!(
            birthdate,
            (Some("date".into()), Some("date".into()), Some(true))
        );
        assert_eq!(calls(before), 1);
        let id: (Option<bool>, Option<bool>) = Spi::get_two(
            "SELECT createable, filterable FROM salesforce.describe('fl', 'Contact') WHERE name = 'Id'",
        )
        .unwrap();
        assert_eq!(id, (Some(false), Some(true)));
        let e = sql_error("SELECT * FROM salesforce.describe('fl', 'Nope__c')");
        assert_eq!(e.message, "Salesforce has no object Nope__c");
    }

    #[pg_test]
    fn the_functions_see_the_org_as_the_users_mapping_does() {
        import_demo("fu", "");
        Spi::run("CREATE ROLE fu_limited").unwrap();
        Spi::run("GRANT USAGE ON FOREIGN SERVER fu TO fu_limited").unwrap();
        Spi::run("GRANT USAGE ON SCHEMA salesforce TO fu_limited").unwrap();
        Spi::run("CREATE USER MAPPING FOR fu_limited SERVER fu OPTIONS (grant_type 'password', client_id 'sfsim-client-id', \
                  client_secret 'sfsim-client-secret', username 'limited@sfsim.example', password 'sfsim-password', security_token 'SFSIMTOKEN')").unwrap();
        Spi::run("SET ROLE fu_limited").unwrap();
        let email: i64 =
            one("SELECT count(*) FROM salesforce.describe('fu', 'Contact') WHERE name = 'Email'");
        let e = sql_error("SELECT * FROM salesforce.query('fu', 'SELECT Email FROM Contact')");
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(email, 0, "field-level security hides Email");
        assert!(e.message.contains("Email"), "{}", e.message);
        let admin: i64 =
            one("SELECT count(*) FROM salesforce.describe('fu', 'Contact') WHERE name = 'Email'");
        assert_eq!(admin, 1);
    }
}
