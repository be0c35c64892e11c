// The sync engine inside one transaction (CALL commits nothing here): tables
// made through the type map, backfill, changes, deletes, drift, pacing,
// resync and the status view, each proven against sfsim's records. Lead,
// Opportunity and Case are left to these tests; edits made through the
// control API stay, so every check compares with sfsim itself.

#[pgrx::pg_schema]
mod tests {
    use crate::db_tests::support::*;
    use pgrx::prelude::*;

    /// The counted requests since `before`, and the subrequests composite calls ran.
    fn counted_and_subrequests(before: u64) -> (Vec<String>, Vec<String>) {
        let log = requests_since(before);
        let paths = |counted: bool| -> Vec<String> {
            log.iter()
                .filter(|r| r["counted"].as_bool() == Some(counted))
                .map(|r| r["path"].as_str().unwrap().to_string())
                .collect()
        };
        (paths(true), paths(false))
    }

    #[pg_test]
    fn a_poll_is_one_composite_call_with_its_deletions() {
        server_with_remote("pc", "batch_size '200'", "lead");
        // Other tests count the demo org's Leads: delete only one made here.
        control(
            "POST",
            "records/Lead",
            Some(serde_json::json!({"LastName": "Deleted by the poll test", "Company": "Poll"})),
        );
        Spi::run("SELECT salesforce.sync_enable('pc', 'Lead')").unwrap();
        assert_eq!(sync_now("pc", "Lead").1, "succeeded");
        Spi::run("UPDATE pc_remote.lead SET company = 'Composite paging' WHERE id IN (SELECT id FROM pc_remote.lead ORDER BY id LIMIT 250)").unwrap();
        let gone = Spi::get_one::<String>(
            "SELECT id FROM pc.lead WHERE last_name = 'Deleted by the poll test'",
        )
        .unwrap()
        .unwrap();
        control("DELETE", &format!("records/Lead/{gone}?hard=true"), None);
        control(
            "POST",
            "time/advance",
            Some(serde_json::json!({"seconds": 61})),
        );
        let before = mark();
        let (kind, status, _, deleted, error) = sync_now("pc", "Lead");
        assert_eq!(
            (kind.as_str(), status.as_str(), deleted, error),
            ("incremental", "succeeded", 1, None)
        );
        let (counted, subrequests) = counted_and_subrequests(before);
        assert_copy_matches("pc", "lead", "");
        assert_eq!(
            counted.len(),
            3,
            "a describe, then a call per page of changes: {counted:?}"
        );
        assert!(
            counted[0].ends_with("/sobjects/Lead/describe"),
            "{counted:?}"
        );
        assert!(
            counted[1..].iter().all(|p| p.ends_with("/composite")),
            "{counted:?}"
        );
        assert_eq!(subrequests.len(), 3, "{subrequests:?}");
        assert!(subrequests[0].ends_with("/queryAll"), "{subrequests:?}");
        assert!(
            subrequests[1].ends_with("/sobjects/Lead/deleted/"),
            "the deletions share the first call: {subrequests:?}"
        );
        assert!(
            subrequests[2].contains("/query/"),
            "the next page goes on from nextRecordsUrl: {subrequests:?}"
        );
        let runs = Spi::get_one::<i64>("SELECT api_requests FROM salesforce.sync_runs WHERE server = 'pc' ORDER BY id DESC LIMIT 1").unwrap();
        assert_eq!(runs, Some(3), "the log counts what the org counts");

        control(
            "PATCH",
            "faults",
            Some(serde_json::json!({"server_unavailable": 0.5, "seed": 7})),
        );
        let before = mark();
        let (_, status, _, _, error) = sync_now("pc", "Lead");
        let injected = control("GET", "faults", None)["injected"].as_u64().unwrap();
        control("PATCH", "faults", Some(serde_json::json!({})));
        assert_eq!((status.as_str(), error), ("succeeded", None));
        assert!(injected > 0);
        let refused = requests_since(before)
            .iter()
            .filter(|r| r["path"].as_str().unwrap().ends_with("/composite") && r["status"] == 503)
            .count();
        assert!(refused > 0, "a 503 on the composite call is tried again");
        assert_copy_matches("pc", "lead", "");
    }

    #[pg_test]
    fn polls_of_several_syncs_share_calls_and_fail_apart() {
        use crate::sync::fetch::{poll_together, Request};
        use crate::sync::run::{Next, Run, Started};
        use salesforce_core::sync::poll_batch::PollQuery;
        create_server("pm", "");
        let objects = ["Lead", "Case", "Opportunity", "Account", "Contact", "Task"];
        let ids: Vec<i64> = objects
            .iter()
            .map(|o| {
                let id =
                    Spi::get_one::<i64>(&format!("SELECT salesforce.sync_enable('pm', '{o}')"))
                        .unwrap()
                        .unwrap();
                assert_eq!(sync_now("pm", o).1, "succeeded");
                id
            })
            .collect();
        let mut runs: Vec<Run> = ids
            .iter()
            .map(|id| match Run::start(*id, "test", false).unwrap() {
                Started::Run(run) => run,
                Started::Paused { error, .. } => panic!("paused: {}", error.message()),
            })
            .collect();
        let mut polls = Vec::new();
        for run in &mut runs {
            loop {
                match run.prepare().unwrap() {
                    Next::Fetch(Request::Poll(poll)) => break polls.push(poll),
                    Next::Fetch(other) => {
                        let fetched = run.fetch(other);
                        run.apply(fetched).unwrap();
                    }
                    _ => panic!("an incremental run polls"),
                }
            }
        }
        polls[1].query = PollQuery::Changes("SELECT Nope__c FROM Case".into());
        let mapping = runs[0].mapping();
        let before = mark();
        let answered = crate::connection::with_prepared_session(mapping.0, mapping.1, |s| {
            Ok(poll_together(s, polls))
        })
        .unwrap();
        let (counted, subrequests) = counted_and_subrequests(before);
        assert_eq!(counted.len(), 2, "six polls in two calls: {counted:?}");
        assert_eq!(subrequests.len(), 12, "{subrequests:?}");
        assert_eq!(answered.iter().map(|(_, f)| f.requests).sum::<i64>(), 2);
        for ((sync_id, fetched), run) in answered.into_iter().zip(&mut runs) {
            assert_eq!(sync_id, run.sync_id());
            let failed = fetched.answer.as_ref().err().map(|e| e.message());
            if sync_id == ids[1] {
                assert!(
                    failed.unwrap().contains("Nope__c"),
                    "the bad query fails alone"
                );
                continue;
            }
            assert_eq!(failed, None);
            run.apply(fetched).unwrap();
            assert!(run.finished());
        }
    }

    #[pg_test]
    fn formulas_are_read_again_when_due_and_change_only_their_rows() {
        server_with_remote("pf", "", "contact");
        Spi::run("SELECT salesforce.sync_enable('pf', 'Contact', options => '{\"fields\": [\"AccountId\", \"LastName\", \"Account_Name__c\"]}')").unwrap();
        assert_eq!(sync_now("pf", "Contact").1, "succeeded");
        let account = Spi::get_one::<String>("SELECT account_id FROM pf.contact WHERE account_id IS NOT NULL GROUP BY 1 HAVING count(*) >= 2 ORDER BY 1 LIMIT 1").unwrap().unwrap();
        let children = count(&format!(
            "SELECT 1 FROM pf.contact WHERE account_id = '{account}'"
        ));
        let (other, other_xmin) = Spi::get_two::<String, String>(&format!("SELECT id, xmin::text FROM pf.contact WHERE account_id <> '{account}' ORDER BY id LIMIT 1")).unwrap();
        control(
            "PATCH",
            &format!("records/Account/{account}"),
            Some(serde_json::json!({"Name": "Renamed Formula Co"})),
        );
        let renamed = format!("SELECT 1 FROM pf.contact WHERE account_id = '{account}' AND account_name__c = 'Renamed Formula Co'");
        assert_eq!(sync_now("pf", "Contact").1, "succeeded");
        assert_eq!(
            count(&renamed),
            0,
            "the Contacts' SystemModstamp did not move, and the refresh is not due"
        );

        Spi::run("UPDATE salesforce.syncs SET formulas_refreshed_at = now() - interval '7 hours' WHERE server = 'pf'").unwrap();
        let before = mark();
        let (_, status, upserted, _, error) = sync_now("pf", "Contact");
        assert_eq!((status.as_str(), error), ("succeeded", None));
        assert_eq!(
            count(&renamed),
            children,
            "a refresh brings the new formula values"
        );
        assert_eq!(
            upserted, children as i64,
            "and writes only the rows whose formulas changed"
        );
        let xmin = Spi::get_one::<String>(&format!(
            "SELECT xmin::text FROM pf.contact WHERE id = '{}'",
            other.unwrap()
        ))
        .unwrap();
        assert_eq!(xmin, other_xmin, "an unchanged row keeps its version");
        assert!(soql_since(before).contains(&"SELECT Id, Account_Name__c FROM Contact".to_string()));
        let fresh = Spi::get_one::<bool>("SELECT formulas_refreshed_at > now() - interval '1 minute' FROM salesforce.sync_status WHERE server = 'pf'").unwrap();
        assert_eq!(fresh, Some(true));
        assert!(sql_error("SELECT salesforce.sync_enable('pf', 'Lead', options => '{\"formula_refresh\": \"soon\"}')").message.contains("formula_refresh"));
    }

    #[pg_test]
    fn sync_now_of_a_server_runs_its_syncs_together() {
        create_server("pt", "");
        Spi::run(
            "SELECT salesforce.sync_enable('pt', 'Lead'), salesforce.sync_enable('pt', 'Case')",
        )
        .unwrap();
        Spi::run("CALL salesforce.sync_now('pt')").unwrap();
        let succeeded = count("SELECT 1 FROM salesforce.sync_runs WHERE server = 'pt' AND kind = 'backfill' AND status = 'succeeded'");
        assert_eq!(succeeded, 2, "each sync logs its own run");
        let lead = Spi::get_one::<String>("SELECT id FROM pt.lead ORDER BY id LIMIT 1")
            .unwrap()
            .unwrap();
        let case = Spi::get_one::<String>("SELECT id FROM pt.\"case\" ORDER BY id LIMIT 1")
            .unwrap()
            .unwrap();
        control(
            "PATCH",
            &format!("records/Lead/{lead}"),
            Some(serde_json::json!({"LastName": "Together"})),
        );
        control(
            "PATCH",
            &format!("records/Case/{case}"),
            Some(serde_json::json!({"Subject": "Together"})),
        );
        let before = mark();
        Spi::run("CALL salesforce.sync_now('pt')").unwrap();
        let (counted, subrequests) = counted_and_subrequests(before);
        assert_eq!(
            counted.iter().filter(|p| p.ends_with("/composite")).count(),
            1,
            "both polls in one call: {counted:?}"
        );
        assert_eq!(counted.len(), 3, "and a describe each: {counted:?}");
        assert_eq!(subrequests.len(), 4, "{subrequests:?}");
        assert_eq!(
            count("SELECT 1 FROM pt.lead WHERE last_name = 'Together'"),
            1
        );
        assert_eq!(
            count("SELECT 1 FROM pt.\"case\" WHERE subject = 'Together'"),
            1
        );

        // A copy given away fails its sync's checks; the other runs on.
        Spi::run("CREATE ROLE pt_other").unwrap();
        Spi::run("ALTER TABLE pt.\"case\" OWNER TO pt_other").unwrap();
        let e = sql_error("CALL salesforce.sync_now('pt')").message;
        assert!(
            e.contains("syncs on server pt failed: Case (run") && !e.contains("Lead"),
            "{e}"
        );
        assert!(sql_error("CALL salesforce.sync_now('nosuch')")
            .message
            .contains("has no enabled syncs"));
    }

    #[pg_test]
    fn sync_enable_makes_a_typed_table_keyed_by_id() {
        create_server("se", "");
        let id = Spi::get_one::<i64>("SELECT salesforce.sync_enable('se', 'Lead')")
            .unwrap()
            .unwrap();
        assert!(id > 0);
        let types = Spi::get_one::<String>(
            "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'se.lead'::regclass AND attnum > 0 AND attname IN ('id', 'annual_revenue', 'number_of_employees', 'is_converted', 'system_modstamp', '_synced_at')",
        )
        .unwrap()
        .unwrap();
        assert_eq!(types, "id text, annual_revenue numeric, number_of_employees integer, is_converted boolean, system_modstamp timestamp with time zone, _synced_at timestamp with time zone");
        let key = Spi::get_one::<String>("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'se.lead'::regclass AND contype = 'p'").unwrap();
        assert_eq!(key.as_deref(), Some("PRIMARY KEY (id)"));
        assert!(sql_error("SELECT salesforce.sync_enable('se', 'Lead')")
            .message
            .contains("already synced"));
        assert!(sql_error(
            "SELECT salesforce.sync_enable('se', 'Case', options => '{\"fields\": [\"Nope__c\"]}')"
        )
        .message
        .contains("has no field Nope__c"));
        assert!(sql_error(
            "SELECT salesforce.sync_enable('se', 'Case', options => '{\"soft\": true}')"
        )
        .message
        .contains("invalid sync option \"soft\""));
        assert!(sql_error("SELECT salesforce.sync_enable('se', 'Nope__c')")
            .message
            .contains("Nope__c"));
        assert!(sql_error("CALL salesforce.sync_now('se', 'Case')")
            .message
            .contains("is not synced"));
    }

    #[pg_test]
    fn sync_backfills_in_id_order_then_follows_changes_and_deletes() {
        server_with_remote("sn", "", "lead");
        Spi::run("SELECT salesforce.sync_enable('sn', 'Lead')").unwrap();
        let before = mark();
        let (kind, status, upserted, _, error) = sync_now("sn", "Lead");
        assert_eq!(
            (kind.as_str(), status.as_str(), error),
            ("backfill", "succeeded", None)
        );
        let total = Spi::get_one::<i64>("SELECT count(*) FROM sn.lead")
            .unwrap()
            .unwrap();
        assert!(upserted >= total && total >= 300, "{upserted} {total}");
        assert_copy_matches("sn", "lead", "");
        let soql = soql_since(before);
        assert!(
            soql.iter().any(|q| q.starts_with("SELECT Id, ")
                && q.ends_with("FROM Lead ORDER BY Id ASC NULLS LAST")),
            "{soql:?}"
        );
        assert!(soql.contains(&"SELECT COUNT() FROM Lead".to_string()));

        let edited = first_id("sn", "lead");
        control(
            "PATCH",
            &format!("records/Lead/{edited}"),
            Some(serde_json::json!({"LastName": "Changed-in-Salesforce"})),
        );
        control(
            "POST",
            "records/Lead",
            Some(serde_json::json!({"LastName": "New", "Company": "Sync Test"})),
        );
        let ids: Vec<String> = (0..2)
            .map(|i| {
                Spi::get_one::<String>(&format!(
                    "SELECT id FROM sn.lead ORDER BY id DESC OFFSET {i} LIMIT 1"
                ))
                .unwrap()
                .unwrap()
            })
            .collect();
        control("DELETE", &format!("records/Lead/{}", ids[0]), None);
        control(
            "DELETE",
            &format!("records/Lead/{}?hard=true", ids[1]),
            None,
        );
        // getDeleted counts whole minutes: a deletion shows once its minute is over.
        control(
            "POST",
            "time/advance",
            Some(serde_json::json!({"seconds": 61})),
        );
        let before = mark();
        let (kind, status, _, deleted, _) = sync_now("sn", "Lead");
        assert_eq!(
            (kind.as_str(), status.as_str(), deleted),
            ("incremental", "succeeded", 2)
        );
        assert_copy_matches("sn", "lead", "");
        assert_eq!(
            Spi::get_one::<String>(&format!(
                "SELECT last_name FROM sn.lead WHERE id = '{edited}'"
            ))
            .unwrap()
            .as_deref(),
            Some("Changed-in-Salesforce")
        );
        let paths: Vec<String> = requests_since(before)
            .iter()
            .map(|r| r["path"].as_str().unwrap().to_string())
            .collect();
        assert!(
            paths.iter().any(|p| p.ends_with("/queryAll")),
            "changes are read with queryAll: {paths:?}"
        );
        assert!(
            paths.iter().any(|p| p.ends_with("/sobjects/Lead/deleted/")),
            "hard deletes come from getDeleted: {paths:?}"
        );
        control("POST", &format!("records/Lead/{}/undelete", ids[0]), None);
    }

    #[pg_test]
    fn a_backfill_batch_meeting_copied_rows_is_upserted_not_doubled() {
        server_with_remote("sc", "", "lead");
        Spi::run("SELECT salesforce.sync_enable('sc', 'Lead')").unwrap();
        // Written through before the backfill reached it, and since edited in Salesforce.
        let id = first_id("sc", "lead");
        Spi::run(&format!(
            "INSERT INTO sc.lead (id, last_name, _synced_at) VALUES ('{id}', 'Stale', now())"
        ))
        .unwrap();
        let (kind, status, _, _, error) = sync_now("sc", "Lead");
        assert_eq!(
            (kind.as_str(), status.as_str(), error),
            ("backfill", "succeeded", None)
        );
        assert_copy_matches("sc", "lead", "");
        let stale = Spi::get_one::<i64>("SELECT count(*) FROM sc.lead WHERE last_name = 'Stale'")
            .unwrap()
            .unwrap();
        assert_eq!(stale, 0);
    }

    #[pg_test]
    fn a_reread_writes_nothing_and_an_older_version_never_wins() {
        server_with_remote("rr", "", "lead");
        Spi::run("SELECT salesforce.sync_enable('rr', 'Lead')").unwrap();
        sync_now("rr", "Lead");
        let edited = first_id("rr", "lead");
        control(
            "PATCH",
            &format!("records/Lead/{edited}"),
            Some(serde_json::json!({"LastName": "Reread"})),
        );
        let (_, _, written, _, _) = sync_now("rr", "Lead");
        assert_eq!(written, 1);
        // A new row version has a new ctid, whatever the transaction.
        let version = || {
            Spi::get_one::<String>(&format!(
                "SELECT ctid::text || last_name FROM rr.lead WHERE id = '{edited}'"
            ))
            .unwrap()
            .unwrap()
        };
        let before = version();
        let (kind, status, written, _, _) = sync_now("rr", "Lead");
        let read = Spi::get_one::<i64>("SELECT rows_read FROM salesforce.sync_runs WHERE server = 'rr' ORDER BY id DESC LIMIT 1")
            .unwrap()
            .unwrap();
        assert_eq!(
            (kind.as_str(), status.as_str()),
            ("incremental", "succeeded")
        );
        assert!(read >= 1, "the lookback read the record again");
        assert_eq!(written, 0, "and wrote nothing");
        assert_eq!(version(), before, "the row keeps its version");
        // The copy holds a newer version than Salesforce sends: it stays.
        Spi::run(&format!("UPDATE rr.lead SET last_name = 'Newer', system_modstamp = system_modstamp + interval '1 day' WHERE id = '{edited}'")).unwrap();
        sync_now("rr", "Lead");
        assert!(version().ends_with("Newer"));
    }

    #[pg_test]
    fn soft_delete_keeps_deleted_rows_marked() {
        server_with_remote("sd", "", "case");
        Spi::run("SELECT salesforce.sync_enable('sd', 'Case', options => '{\"soft_delete\": true, \"fields\": [\"Subject\", \"Status\"]}')").unwrap();
        sync_now("sd", "Case");
        assert_eq!(synced_columns("sd"), "id, subject, status, system_modstamp");
        let id = first_id("sd", "case");
        control("DELETE", &format!("records/Case/{id}"), None);
        sync_now("sd", "Case");
        assert_eq!(
            count(&format!(
                "SELECT 1 FROM sd.\"case\" WHERE id = '{id}' AND _deleted_at IS NOT NULL"
            )),
            1
        );
        assert_copy_matches("sd", "case", "WHERE _deleted_at IS NULL");
        control("POST", &format!("records/Case/{id}/undelete"), None);
        sync_now("sd", "Case");
        assert_eq!(
            count(&format!(
                "SELECT 1 FROM sd.\"case\" WHERE id = '{id}' AND _deleted_at IS NULL"
            )),
            1
        );
        assert_copy_matches("sd", "case", "WHERE _deleted_at IS NULL");
    }

    #[pg_test]
    fn a_field_added_in_salesforce_becomes_a_column() {
        server_with_remote("drift", "", "opportunity");
        Spi::run("SELECT salesforce.sync_enable('drift', 'Opportunity')").unwrap();
        sync_now("drift", "Opportunity");
        control(
            "POST",
            "objects/Opportunity/fields",
            Some(serde_json::json!([{"name": "Sync_Tier__c", "type": "string", "length": 20}])),
        );
        let (_, status, _, _, _) = sync_now("drift", "Opportunity");
        assert_eq!(status, "succeeded");
        let notes = Spi::get_one::<String>("SELECT array_to_string(notes, '; ') FROM salesforce.sync_runs WHERE server = 'drift' ORDER BY id DESC LIMIT 1").unwrap().unwrap();
        assert!(
            notes.contains("new field Sync_Tier__c copied into new column sync_tier__c"),
            "{notes}"
        );
        assert_eq!(Spi::get_one::<String>("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'drift.opportunity'::regclass AND attname = 'sync_tier__c'").unwrap().as_deref(), Some("text"));
    }

    #[pg_test]
    fn a_spent_daily_share_throttles_the_run_and_keeps_progress() {
        create_server("paced", "max_requests_per_day '1'");
        Spi::run("SELECT salesforce.sync_enable('paced', 'Case')").unwrap();
        let (_, status, _, _, error) = sync_now("paced", "Case");
        assert_eq!(status, "throttled");
        assert!(error
            .unwrap()
            .contains("max_requests_per_day (1) is used up"));
        assert_eq!(count("SELECT 1 FROM salesforce.syncs WHERE server = 'paced' AND next_due > now() + interval '1 hour'"), 1);
    }

    #[pg_test]
    fn an_exhausted_org_limit_is_tried_again_soon_then_less_often() {
        server_with_remote("lx", "", "case");
        Spi::run("SELECT salesforce.sync_enable('lx', 'Case')").unwrap();
        let limit = control("GET", "settings", None)["daily_limit"].clone();
        control(
            "PATCH",
            "settings",
            Some(serde_json::json!({"daily_limit": 1})),
        );
        let mut waits = Vec::new();
        let mut errors = Vec::new();
        for _ in 0..3 {
            let (_, status, _, _, error) = sync_now("lx", "Case");
            errors.push((status, error.unwrap_or_default()));
            waits.push(Spi::get_one::<i32>("SELECT round(extract(epoch FROM next_due - clock_timestamp()))::int FROM salesforce.syncs WHERE server = 'lx'").unwrap().unwrap());
        }
        control(
            "PATCH",
            "settings",
            Some(serde_json::json!({"daily_limit": limit})),
        );
        for (status, error) in &errors {
            assert_eq!(status, "throttled");
            assert!(error.contains("REQUEST_LIMIT_EXCEEDED"), "{error}");
        }
        let near = |got: i32, want: i32| (want - 5..=want).contains(&got);
        assert!(
            near(waits[0], 60) && near(waits[1], 120) && near(waits[2], 240),
            "{waits:?}"
        );
        let (kind, status, _, _, _) = sync_now("lx", "Case");
        assert_eq!((kind.as_str(), status.as_str()), ("backfill", "succeeded"));
    }

    #[pg_test]
    fn resync_replaces_the_copy_and_status_shows_it() {
        server_with_remote("rs", "", "case");
        Spi::run("SELECT salesforce.sync_enable('rs', 'Case', target => 'rs_copy.cases', every => '1 minute')").unwrap();
        sync_now("rs", "Case");
        Spi::run("INSERT INTO rs_copy.cases (id, _synced_at) VALUES ('500000000000000ZZZ', now())")
            .unwrap();
        Spi::run("UPDATE rs_copy.cases SET subject = 'stale'").unwrap();
        Spi::run("CALL salesforce.resync('rs', 'Case')").unwrap();
        let columns = synced_columns("rs");
        assert_eq!(
            checksum("rs_copy.cases", &columns, ""),
            checksum("rs_remote.\"case\"", &columns, "")
        );
        let status = Spi::get_one::<pgrx::JsonB>(
            "SELECT to_jsonb(s) FROM salesforce.sync_status s WHERE server = 'rs'",
        )
        .unwrap()
        .unwrap()
        .0;
        assert_eq!(status["target"], "rs_copy.cases");
        assert_eq!(status["last_status"], "succeeded");
        assert_eq!(status["backfill_percent"], 100.0);
        assert_eq!(
            status["rows"].as_i64(),
            Some(count("SELECT 1 FROM rs_remote.\"case\""))
        );
        assert!(status["api_requests_24h"].as_i64().unwrap() > 0);
        assert_eq!(Spi::get_one::<String>("SELECT kind FROM salesforce.sync_runs WHERE server = 'rs' ORDER BY id DESC LIMIT 1").unwrap().as_deref(), Some("resync"));
        Spi::run("SELECT salesforce.sync_disable('rs', 'Case', drop_table => true)").unwrap();
        assert_eq!(
            Spi::get_one::<bool>("SELECT to_regclass('rs_copy.cases') IS NULL").unwrap(),
            Some(true)
        );
    }
}
