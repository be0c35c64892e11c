// Queued writes inside the transaction: enqueue checks who calls and what
// it is asked, stores the write for its caller, and sends nothing; writes
// through a foreign table in queued mode do the same. Delivery itself
// needs the sync worker: tests/e2e/16_queued.sh.

#[pgrx::pg_schema]
mod tests {
    use crate::db_tests::support::*;
    use pgrx::prelude::*;

    fn run(sql: &str) {
        Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The error a statement raises, run in a subtransaction as a client's
    /// statement would be: its message and SQLSTATE name.
    fn refused(sql: &str) -> (String, String) {
        match crate::pg::in_subtransaction(|| Spi::run(sql).map_err(crate::error::Error::from)) {
            Ok(()) => ("no error".into(), String::new()),
            Err(e) => (e.message(), format!("{:?}", e.code())),
        }
    }

    #[pg_test]
    fn enqueue_checks_its_caller_and_arguments_and_sends_nothing() {
        create_server("dq_org", "");
        run("CREATE ROLE dq_dan");
        run("GRANT USAGE ON SCHEMA salesforce TO dq_dan");
        let since = mark();
        run("SET ROLE dq_dan");
        let (message, _) = refused(
            "SELECT salesforce.enqueue('dq_org', 'Contact', 'insert', '{\"LastName\": \"Ng\"}')",
        );
        assert_eq!(
            message,
            "permission denied for foreign server dq_org: role dq_dan has no USAGE on it"
        );
        run("RESET ROLE");
        for (call, message) in [
            (
                "'Contact/../x', 'insert', '{\"LastName\": \"Ng\"}'",
                "\"Contact/../x\" is not a Salesforce object name",
            ),
            (
                "'Contact', 'merge', '{\"LastName\": \"Ng\"}'",
                "unknown operation \"merge\"",
            ),
            (
                "'Contact', 'update', '{\"LastName\": \"Ng\"}'",
                "an update needs the record's Id",
            ),
            (
                "'Contact', 'insert', '{\"LastName\": \"Ng\"}', 'User_Id__c'",
                "the record has no value for its key User_Id__c",
            ),
            (
                "'Contact', 'insert', '[1, 2]'",
                "record must be a JSON object of field values",
            ),
        ] {
            let (got, code) = refused(&format!("SELECT salesforce.enqueue('dq_org', {call})"));
            assert_eq!(got, message, "{call}");
            assert_eq!(code, "ERRCODE_INVALID_PARAMETER_VALUE", "{call}");
        }
        let id = Spi::get_one::<i64>(
            "SELECT salesforce.enqueue('dq_org', 'Contact', 'insert', '{\"LastName\": \"Ng\", \"User_Id__c\": \"dq-1\"}', 'User_Id__c')",
        )
        .unwrap()
        .unwrap();
        let (owner, operation, state) = Spi::get_three::<bool, String, String>(&format!(
            "SELECT owner = (SELECT oid FROM pg_roles WHERE rolname = current_user), operation, state FROM salesforce.outbox WHERE id = {id}"
        ))
        .unwrap();
        assert_eq!(
            (owner, operation.as_deref(), state.as_deref()),
            (Some(true), Some("upsert"), Some("pending"))
        );
        assert_eq!(
            count(
                "SELECT * FROM salesforce.queued_writes WHERE id = 0 OR role::text = current_user"
            ),
            1
        );
        assert!(
            requests_since(since).is_empty(),
            "enqueue called Salesforce"
        );
    }

    #[pg_test]
    fn queued_mode_stores_a_foreign_tables_inserts_for_after_commit() {
        import_demo("dq_table", "");
        let since = mark();
        run("SET LOCAL salesforce.write_mode = queued");
        run("INSERT INTO dq_table.contact (last_name, email) VALUES ('Queued', 'q@example.com'), ('Queued', 'r@example.com')");
        let (message, _) =
            refused("INSERT INTO dq_table.contact (last_name) VALUES ('x') RETURNING id");
        assert_eq!(
            message,
            "INSERT ... RETURNING needs salesforce.write_mode = statement"
        );
        assert_eq!(
            count("SELECT * FROM salesforce.queued_writes WHERE server = 'dq_table' AND operation = 'insert' AND object = 'Contact' AND record->>'LastName' = 'Queued'"),
            2
        );
        assert!(
            requests_since(since).is_empty(),
            "queued inserts called Salesforce"
        );
    }

    #[pg_test]
    fn a_queued_write_is_stored_whole_without_sql() {
        create_server("dq_rows", "");
        let first = Spi::get_one::<i64>(
            "SELECT salesforce.enqueue('dq_rows', 'Contact', 'update', '{\"Id\": \"003000000000001AAA\", \"Title\": \"CTO\"}')",
        )
        .unwrap()
        .unwrap();
        let second = Spi::get_one::<i64>(
            "SELECT salesforce.enqueue('dq_rows', 'Contact', 'insert', '{\"LastName\": \"Ng\"}')",
        )
        .unwrap()
        .unwrap();
        assert_eq!(second, first + 1, "ids come from the identity, in order");
        // Seen by the next statement of the same transaction, every column
        // as SQL would have stored it (defaults included).
        let row = Spi::get_one::<String>(&format!(
            "SELECT concat_ws('|', server, object, operation, record::text, coalesce(key, '-'), record_id, state, attempts,
                              queued_at = now(), next_attempt_at = '-infinity', coalesce(done_at::text, '-'), coalesce(depends_on, 0))
               FROM salesforce.outbox WHERE id = {first}"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            row,
            "dq_rows|Contact|update|{\"Title\": \"CTO\"}|-|003000000000001AAA|pending|0|t|t|-|0"
        );
        let delete = Spi::get_one::<i64>(&format!(
            "SELECT salesforce.enqueue('dq_rows', 'Contact', 'delete', '{{}}', id_of => {second})"
        ))
        .unwrap()
        .unwrap();
        let waiting = Spi::get_one::<i64>(&format!(
            "SELECT depends_on FROM salesforce.outbox WHERE id = {delete}"
        ))
        .unwrap();
        assert_eq!(waiting, Some(second));
        // An insert's record is stored as given; one with something to
        // take out (attributes) is stored without it.
        let kept = Spi::get_one::<String>(&format!(
            "SELECT record::text FROM salesforce.outbox WHERE id = {second}"
        ))
        .unwrap();
        assert_eq!(kept.as_deref(), Some("{\"LastName\": \"Ng\"}"));
        let third = Spi::get_one::<i64>(
            "SELECT salesforce.enqueue('dq_rows', 'Contact', 'insert', '{\"attributes\": {\"type\": \"Contact\"}, \"LastName\": \"Li\"}')",
        )
        .unwrap()
        .unwrap();
        let trimmed = Spi::get_one::<String>(&format!(
            "SELECT record::text FROM salesforce.outbox WHERE id = {third}"
        ))
        .unwrap();
        assert_eq!(trimmed.as_deref(), Some("{\"LastName\": \"Li\"}"));
        // Found through the delivery's partial index like any pending write.
        assert_eq!(
            count("SELECT * FROM salesforce.outbox WHERE server = 'dq_rows' AND state IN ('pending', 'sending')"),
            4
        );
    }

    #[pg_test]
    fn a_row_added_without_sql_is_checked_against_its_table() {
        use crate::row_insert::{insert, value};
        run("CREATE TABLE public.dq_plain (id bigint NOT NULL, note text)");
        let missing = insert("public", "dq_plain", &[value("note", "x")]).unwrap_err();
        assert_eq!(missing.message(), "no value for column id");
        let mistyped = insert("public", "dq_plain", &[value("id", "1")]).unwrap_err();
        assert!(
            mistyped.message().starts_with("column id is of type"),
            "{}",
            mistyped.message()
        );
        let unknown = insert(
            "public",
            "dq_plain",
            &[value("id", 1i64), value("nope", 1i64)],
        )
        .unwrap_err();
        assert_eq!(unknown.message(), "the table has no column nope");
        insert(
            "public",
            "dq_plain",
            &[value("id", 7i64), value("note", "kept")],
        )
        .unwrap();
        assert_eq!(
            count("SELECT * FROM public.dq_plain WHERE id = 7 AND note = 'kept'"),
            1
        );
    }
}
