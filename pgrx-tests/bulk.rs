// Backfills and resyncs through Bulk API 2.0 against sfsim's query jobs:
// what was asked (sfsim's request log), the copy against the foreign table
// over REST, the fallbacks and the errors.

#[pgrx::pg_schema]
mod tests {
    use crate::db_tests::support::*;
    use pgrx::prelude::*;

    /// Bulk calls logged after `since`: (method, path, the job's SOQL if any).
    fn bulk_calls(since: u64) -> Vec<(String, String, Option<String>)> {
        requests_since(since)
            .into_iter()
            .filter(|r| r["path"].as_str().unwrap().contains("/jobs/query"))
            .map(|r| {
                (
                    r["method"].as_str().unwrap().to_string(),
                    r["path"].as_str().unwrap().to_string(),
                    r["soql"].as_str().map(String::from),
                )
            })
            .collect()
    }

    fn enable(server: &str, object: &str, options: &str) {
        Spi::run(&format!(
            "SELECT salesforce.sync_enable('{server}', '{object}', options => '{options}')"
        ))
        .unwrap();
    }

    fn last_notes(server: &str) -> String {
        Spi::get_one::<String>(&format!("SELECT array_to_string(notes, ' | ') FROM salesforce.sync_runs WHERE server = '{server}' ORDER BY id DESC LIMIT 1"))
            .unwrap()
            .unwrap_or_default()
    }

    #[pg_test]
    fn bulk_backfill_equals_salesforce_reading_compound_parts() {
        server_with_remote("bk", "", "contact");
        enable("bk", "Contact", r#"{"api": "bulk"}"#);
        let before = mark();
        let (kind, status, upserted, _, error) = sync_now("bk", "Contact");
        assert_eq!(
            (kind.as_str(), status.as_str(), error),
            ("backfill", "succeeded", None)
        );
        let rest: Vec<String> = requests_since(before)
            .iter()
            .filter(|r| {
                let path = r["path"].as_str().unwrap();
                path.ends_with("/query") && !path.contains("/jobs/")
            })
            .map(|r| r["soql"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            rest,
            vec!["SELECT COUNT() FROM Contact".to_string()],
            "no REST pages"
        );
        assert_copy_matches("bk", "contact", "");
        let rows = Spi::get_one::<i64>("SELECT count(*) FROM bk.contact")
            .unwrap()
            .unwrap();
        assert_eq!(upserted, rows, "every row copied once");
        let calls = bulk_calls(before);
        let creates: Vec<&String> = calls
            .iter()
            .filter(|(m, _, _)| m == "POST")
            .filter_map(|(_, _, soql)| soql.as_ref())
            .collect();
        assert_eq!(creates.len(), 1, "{calls:?}");
        assert!(
            creates[0].contains("MailingStreet") && !creates[0].contains("MailingAddress"),
            "compound fields are selected as components: {}",
            creates[0]
        );
        assert!(!creates[0].contains("ORDER BY"), "{}", creates[0]);
        assert!(calls
            .iter()
            .any(|(m, p, _)| m == "GET" && p.contains("/results")));
        let address = Spi::get_one::<bool>(
            "SELECT count(*) > 0 FROM bk.contact WHERE mailing_address ? 'city'",
        )
        .unwrap();
        assert_eq!(
            address,
            Some(true),
            "addresses are rebuilt as REST returns them"
        );

        let (kind, status, _, _, _) = sync_now("bk", "Contact");
        assert_eq!(
            (kind.as_str(), status.as_str()),
            ("incremental", "succeeded")
        );
    }

    #[pg_test]
    fn an_aborted_job_is_replaced_and_no_row_is_lost_or_doubled() {
        server_with_remote("bf", "", "account");
        enable("bf", "Account", r#"{"api": "bulk"}"#);
        let sync = Spi::get_one::<i64>("SELECT id FROM salesforce.syncs WHERE server = 'bf'")
            .unwrap()
            .unwrap();
        let run = Spi::get_one::<i64>("SELECT salesforce._sync_begin('bf', 'Account')")
            .unwrap()
            .unwrap();
        // describe, COUNT(), the job's creation
        for _ in 0..3 {
            assert_eq!(
                Spi::get_one::<bool>(&format!("SELECT salesforce._sync_step({run})")).unwrap(),
                Some(true)
            );
        }
        let job = Spi::get_one::<String>(&format!(
            "SELECT bulk_job FROM salesforce.syncs WHERE id = {sync}"
        ))
        .unwrap()
        .expect("a job was started");
        let token = access_token();
        let client =
            salesforce_core::client::http::client(std::time::Duration::from_secs(10)).unwrap();
        let url = format!("{}/services/data/v62.0/jobs/query/{job}", sim());
        salesforce_core::client::http::send(
            || {
                client
                    .patch(&url)
                    .bearer_auth(&token)
                    .header("Content-Type", "application/json")
                    .body(r#"{"state":"Aborted"}"#)
            },
            || false,
        )
        .unwrap();
        let before = mark();
        while Spi::get_one::<bool>(&format!("SELECT salesforce._sync_step({run})")).unwrap()
            == Some(true)
        {}
        Spi::run(&format!(
            "SELECT salesforce._sync_finish(ARRAY[{run}::bigint])"
        ))
        .unwrap();
        let notes = last_notes("bf");
        assert!(
            notes.contains(&format!("Bulk query job {job} was aborted"))
                && notes.contains("a new job reads the records again"),
            "{notes}"
        );
        let creates = bulk_calls(before)
            .iter()
            .filter(|(m, _, _)| m == "POST")
            .count();
        assert_eq!(creates, 1, "one new job");
        assert_copy_matches("bf", "account", "");
    }

    #[pg_test]
    fn a_resync_through_bulk_replaces_a_tampered_copy() {
        server_with_remote("br", "", "account");
        enable("br", "Account", r#"{"api": "bulk"}"#);
        sync_now("br", "Account");
        Spi::run("UPDATE br.account SET name = 'tampered'").unwrap();
        Spi::run("INSERT INTO br.account (id, _synced_at) VALUES ('001000000000000ZZZ', now())")
            .unwrap();
        let before = mark();
        Spi::run("CALL salesforce.resync('br', 'Account')").unwrap();
        assert_copy_matches("br", "account", "");
        assert!(
            bulk_calls(before).iter().any(|(m, _, _)| m == "POST"),
            "the resync ran a job"
        );
        let kind = Spi::get_one::<String>("SELECT kind || ' ' || status FROM salesforce.sync_runs WHERE server = 'br' ORDER BY id DESC LIMIT 1").unwrap();
        assert_eq!(kind.as_deref(), Some("resync succeeded"));
    }

    #[pg_test]
    fn auto_uses_rest_for_small_objects_bulk_refuses_base64() {
        create_server("ba", "");
        enable("ba", "Lead", "{}");
        let before = mark();
        sync_now("ba", "Lead");
        assert!(
            bulk_calls(before).is_empty(),
            "a few hundred records need no job"
        );
        enable("ba", "Document", r#"{"api": "bulk"}"#);
        let e = sql_error("CALL salesforce.sync_now('ba', 'Document')");
        assert!(
            e.message
                .contains("Bulk API 2.0 cannot return field Body of Document"),
            "{}",
            e.message
        );
        let bad = sql_error(
            "SELECT salesforce.sync_enable('ba', 'Case', options => '{\"api\": \"soap\"}')",
        );
        assert_eq!(
            bad.message,
            "sync option \"api\" must be 'auto', 'bulk' or 'rest'"
        );
        assert_eq!(bad.code, "ERRCODE_INVALID_PARAMETER_VALUE");
    }
}
