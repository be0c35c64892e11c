// Write-through: writes through a foreign table reach the object's local
// copy in the same statement, as Salesforce applied them.

#[pgrx::pg_schema]
mod tests {
    use crate::db_tests::support::*;
    use pgrx::prelude::*;

    /// A server `name` with Account imported into `{name}_remote` and synced
    /// into `{name}.account`, backfilled.
    fn synced_accounts(name: &str, options: &str) {
        server_with_remote(name, "", "account");
        Spi::run(&format!(
            "SELECT salesforce.sync_enable('{name}', 'Account', options => '{options}')"
        ))
        .unwrap();
        sync_now(name, "Account");
    }

    fn copy_value(sql: &str) -> Option<String> {
        Spi::get_one::<String>(sql).unwrap()
    }

    #[pg_test]
    fn writes_through_a_foreign_table_reach_the_copy_at_once() {
        synced_accounts("wt", r#"{"fields": ["Name", "Industry", "OwnerId"]}"#);
        let before = mark();
        let id = copy_value("INSERT INTO wt_remote.account (name, industry) VALUES ('Write-through Ltd', 'Energy') RETURNING id").unwrap();
        assert_eq!(
            copy_value(&format!("SELECT concat_ws('|', name, industry, owner_id IS NOT NULL, system_modstamp IS NOT NULL) FROM wt.account WHERE id = '{id}'")),
            Some("Write-through Ltd|Energy|t|t".into()),
            "the copy holds the record as Salesforce stored it, defaults included"
        );
        let reads: Vec<serde_json::Value> = requests_since(before)
            .into_iter()
            .filter(|r| {
                r["method"] == "POST"
                    && r["path"]
                        .as_str()
                        .unwrap()
                        .ends_with("/composite/sobjects/Account")
            })
            .collect();
        assert_eq!(reads.len(), 1, "one read-back for the statement");
        assert_eq!(reads[0]["body"]["ids"], serde_json::json!([id]));

        Spi::run(&format!(
            "UPDATE wt_remote.account SET industry = 'Banking' WHERE id = '{id}'"
        ))
        .unwrap();
        assert_eq!(
            copy_value(&format!(
                "SELECT industry FROM wt.account WHERE id = '{id}'"
            )),
            Some("Banking".into())
        );
        assert_copy_matches("wt", "account", "");

        Spi::run(&format!("DELETE FROM wt_remote.account WHERE id = '{id}'")).unwrap();
        assert_eq!(
            count(&format!("SELECT 1 FROM wt.account WHERE id = '{id}'")),
            0
        );
        assert_copy_matches("wt", "account", "");

        Spi::run(
            "IMPORT FOREIGN SCHEMA salesforce LIMIT TO (contact) FROM SERVER wt INTO wt_remote",
        )
        .unwrap();
        let untouched = mark();
        Spi::run("INSERT INTO wt_remote.contact (last_name) VALUES ('No copy of contacts')")
            .unwrap();
        assert!(
            requests_since(untouched).iter().all(|r| !r["path"]
                .as_str()
                .unwrap()
                .ends_with("/composite/sobjects/Contact")),
            "objects without a copy are not read back"
        );
    }

    #[pg_test]
    fn a_write_reaches_the_writers_own_copy_and_no_other() {
        synced_accounts("wtr", r#"{"fields": ["Name"]}"#);
        // The superuser's copy refuses every row: another role's writes
        // must neither fail on it nor reach it.
        Spi::run("ALTER TABLE wtr.account ADD CONSTRAINT squatted CHECK (false) NOT VALID")
            .unwrap();
        Spi::run("CREATE ROLE wt_writer").unwrap();
        Spi::run("GRANT USAGE ON SCHEMA salesforce TO wt_writer").unwrap();
        Spi::run("CREATE SCHEMA wt_writer AUTHORIZATION wt_writer").unwrap();
        Spi::run("GRANT USAGE ON FOREIGN SERVER wtr TO wt_writer").unwrap();
        Spi::run(
            "CREATE USER MAPPING FOR wt_writer SERVER wtr OPTIONS (grant_type 'password', client_id 'sfsim-client-id', \
             client_secret 'sfsim-client-secret', username 'admin@sfsim.example', password 'sfsim-password', security_token 'SFSIMTOKEN')",
        )
        .unwrap();
        Spi::run("GRANT USAGE ON SCHEMA wtr_remote TO wt_writer").unwrap();
        Spi::run("GRANT SELECT, INSERT, DELETE ON wtr_remote.account TO wt_writer").unwrap();
        Spi::run("SET ROLE wt_writer").unwrap();
        Spi::run("SELECT salesforce.sync_enable('wtr', 'Account', 'wt_writer.account', options => '{\"fields\": [\"Name\"], \"soft_delete\": true}')").unwrap();
        sync_now("wtr", "Account");
        let id = copy_value(
            "INSERT INTO wtr_remote.account (name) VALUES ('Least Privilege Inc') RETURNING id",
        )
        .unwrap();
        Spi::run(&format!("DELETE FROM wtr_remote.account WHERE id = '{id}'")).unwrap();
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(Spi::get_one::<bool>("SELECT has_table_privilege('wt_writer', 'wtr.account', 'SELECT, INSERT, UPDATE, DELETE')").unwrap(), Some(false));
        assert_eq!(
            copy_value(&format!("SELECT concat_ws('|', name, _deleted_at IS NOT NULL) FROM wt_writer.account WHERE id = '{id}'")),
            Some("Least Privilege Inc|t".into()),
            "the writer's soft-delete copy keeps the deleted record, marked"
        );
        assert_eq!(
            count(&format!("SELECT 1 FROM wtr.account WHERE id = '{id}'")),
            0,
            "another role's copy catches up on its own runs"
        );
    }

    #[pg_test]
    fn a_copy_that_cannot_take_a_write_rolls_it_back() {
        synced_accounts("wtf", r#"{"fields": ["Name"]}"#);
        Spi::run(
            "ALTER TABLE wtf.account ADD CONSTRAINT no_refusals CHECK (name <> 'Refused Ltd')",
        )
        .unwrap();
        // A real subtransaction, so its abort undoes the Salesforce write now.
        Spi::run(
            "DO $$ DECLARE hint text; BEGIN
               INSERT INTO wtf_remote.account (name) VALUES ('Refused Ltd');
             EXCEPTION WHEN others THEN
               GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
               PERFORM set_config('wtf.message', SQLERRM, true), set_config('wtf.hint', hint, true);
             END $$",
        )
        .unwrap();
        let message = copy_value("SELECT current_setting('wtf.message')").unwrap();
        assert!(message.starts_with("a write to Account reached Salesforce, but its local copy wtf.account could not take it:"), "{message}");
        assert!(message.contains("no_refusals"), "{message}");
        assert!(copy_value("SELECT current_setting('wtf.hint')")
            .unwrap()
            .contains("Salesforce writes are undone"));
        assert_eq!(
            count("SELECT 1 FROM wtf_remote.account WHERE name = 'Refused Ltd'"),
            0,
            "the created record was deleted again"
        );
    }
}
