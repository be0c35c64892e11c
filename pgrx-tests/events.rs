// Large writes through Bulk ingest, salesforce.publish and event feeds,
// inside PostgreSQL. (Each test's transaction rolls back at its end: a
// Bulk job's records are then deleted, and held events never go.)

#[pgrx::pg_schema]
mod tests {
    use crate::db_tests::support::*;
    use pgrx::prelude::*;

    fn paths_since(since: u64) -> Vec<String> {
        requests_since(since)
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["method"].as_str().unwrap(),
                    r["path"].as_str().unwrap()
                )
            })
            .collect()
    }

    #[pg_test]
    fn a_statement_at_the_threshold_goes_through_one_ingest_job() {
        import_demo("bw1", "bulk_threshold '50'");
        let before = mark();
        Spi::run("INSERT INTO bw1.contact (last_name, user_id__c) SELECT 'Bulk ' || g, 'bw1-' || g FROM generate_series(1, 120) g").unwrap();
        let paths = paths_since(before);
        assert!(
            paths
                .iter()
                .any(|p| p.starts_with("POST ") && p.ends_with("/jobs/ingest")),
            "{paths:?}"
        );
        assert!(
            paths
                .iter()
                .any(|p| p.starts_with("PUT ") && p.ends_with("/batches")),
            "{paths:?}"
        );
        assert!(
            !paths.iter().any(|p| p.contains("/composite/sobjects")),
            "{paths:?}"
        );
        assert_eq!(
            count("SELECT id FROM bw1.contact WHERE user_id__c LIKE 'bw1-%'"),
            120
        );
        // Below the threshold: one collections call.
        let before = mark();
        Spi::run("INSERT INTO bw1.contact (last_name, user_id__c) SELECT 'Small ' || g, 'bw1s-' || g FROM generate_series(1, 30) g").unwrap();
        let paths = paths_since(before);
        assert_eq!(
            paths
                .iter()
                .filter(|p| p.contains("/composite/sobjects"))
                .count(),
            1,
            "{paths:?}"
        );
        assert!(
            !paths.iter().any(|p| p.contains("/jobs/ingest")),
            "{paths:?}"
        );
    }

    #[pg_test]
    fn a_rejected_row_of_a_job_fails_the_statement_naming_it() {
        import_demo("bw2", "bulk_threshold '20'");
        let e = sql_error("INSERT INTO bw2.contact (last_name, user_id__c) SELECT CASE WHEN g = 13 THEN NULL ELSE 'R ' || g END, 'bw2-' || g FROM generate_series(1, 40) g");
        assert!(
            e.message.starts_with("Salesforce rejected row 13 of the INSERT into contact (User_Id__c 'bw2-13'): REQUIRED_FIELD_MISSING"),
            "{}",
            e.message
        );
        assert_eq!(e.code, "ERRCODE_NOT_NULL_VIOLATION");
    }

    #[pg_test]
    fn bulk_threshold_is_checked() {
        create_server("bw3", "");
        let e = sql_error("ALTER SERVER bw3 OPTIONS (ADD bulk_threshold '100001')");
        assert!(
            e.message
                .contains("invalid value for option \"bulk_threshold\""),
            "{}",
            e.message
        );
        Spi::run("ALTER SERVER bw3 OPTIONS (ADD bulk_threshold '0')").unwrap();
    }

    #[pg_test]
    fn publish_holds_events_until_commit_and_checks_its_arguments() {
        create_server("pe1", "");
        let before = control("GET", "events/Signup__e", None)["events"]
            .as_array()
            .map_or(0, Vec::len);
        Spi::run(
            "SELECT salesforce.publish('pe1', 'Signup__e', '{\"Email__c\": \"held@example.com\"}')",
        )
        .unwrap();
        let after = control("GET", "events/Signup__e", None)["events"]
            .as_array()
            .map_or(0, Vec::len);
        assert_eq!(before, after, "an event went before COMMIT");
        let e = sql_error("SELECT salesforce.publish('pe1', 'Contact', '{}')");
        assert_eq!(e.message, "\"Contact\" is not a platform event");
        let e = sql_error("SELECT salesforce.publish('pe1', 'Signup__e', '[1]')");
        assert!(
            e.message.starts_with("payload must be a JSON object"),
            "{}",
            e.message
        );
        let e = sql_error("SELECT salesforce.publish('nope', 'Signup__e', '{}')");
        assert!(e.message.contains("nope"), "{}", e.message);
    }

    #[pg_test]
    fn an_event_feed_makes_its_table_and_refuses_a_foreign_one() {
        create_server("pe2", "");
        Spi::run("CREATE SCHEMA pe2app").unwrap();
        let id = Spi::get_one::<i64>(
            "SELECT salesforce.event_feed('pe2', '/event/Signup__e', 'pe2app.signups')",
        )
        .unwrap();
        assert!(id.is_some_and(|i| i > 0));
        let columns = Spi::get_one::<String>(
            "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'pe2app.signups'::regclass AND attnum > 0",
        )
        .unwrap()
        .unwrap();
        assert_eq!(columns, "replay_id bytea, event_uuid text, created_date timestamp with time zone, payload jsonb, received_at timestamp with time zone");
        let e = sql_error("SELECT salesforce.event_feed('pe2', 'Signup__e', 'pe2app.signups')");
        assert!(e.message.contains("already feeds"), "{}", e.message);
        Spi::run("CREATE TABLE pe2app.wrong (id int)").unwrap();
        let e = sql_error("SELECT salesforce.event_feed('pe2', 'Signup__e', 'pe2app.wrong')");
        assert_eq!(e.message, "table pe2app.wrong has no column replay_id");
        let e = sql_error("SELECT salesforce.event_feed('pe2', 'Signup__e', 'unqualified')");
        assert!(
            e.message.contains("not a schema-qualified table name"),
            "{}",
            e.message
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT salesforce.event_feed_drop('pe2', 'Signup__e')").unwrap(),
            Some(1)
        );
    }
}
