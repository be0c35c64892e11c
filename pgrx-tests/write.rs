// The write path inside a transaction: batching, what is sent, read-only
// columns, rejections, upsert and savepoints. (Each test's transaction rolls
// back at its end, which also exercises compensation.)

#[pgrx::pg_schema]
mod tests {
    use crate::db_tests::support::*;
    use pgrx::prelude::*;

    /// Data API writes logged after `since`: (method, path, body).
    fn writes_since(since: u64) -> Vec<(String, String, serde_json::Value)> {
        requests_since(since)
            .into_iter()
            .filter(|r| {
                r["method"] != "GET" && r["path"].as_str().unwrap().starts_with("/services/data/")
            })
            .map(|r| {
                (
                    r["method"].as_str().unwrap().to_string(),
                    r["path"].as_str().unwrap().to_string(),
                    r["body"].clone(),
                )
            })
            .collect()
    }

    fn one(sql: &str) -> Option<String> {
        Spi::get_one::<String>(sql).unwrap()
    }

    #[pg_test]
    fn insert_sends_only_the_columns_named_and_returns_the_new_id() {
        import_demo("w1", "");
        let before = mark();
        let id = one("INSERT INTO w1.contact (last_name, email, languages__c, birthdate) VALUES ('Writer', 'writer@example.net', ARRAY['English','French'], '1990-05-06') RETURNING id").unwrap();
        assert!(id.starts_with("003") && id.len() == 18, "{id}");
        let writes = writes_since(before);
        assert_eq!(writes.len(), 1);
        assert_eq!(
            (writes[0].0.as_str(), writes[0].1.as_str()),
            ("POST", "/services/data/v62.0/composite/sobjects")
        );
        let record = &writes[0].2["records"][0];
        assert_eq!(
            record,
            &serde_json::json!({"LastName": "Writer", "Email": "writer@example.net", "Languages__c": "English;French", "Birthdate": "1990-05-06", "attributes": {"type": "Contact"}})
        );
        assert_eq!(writes[0].2["allOrNone"], true);
        let back = one(&format!("SELECT concat_ws('|', last_name, languages__c, birthdate) FROM w1.contact WHERE id = '{id}'"));
        assert_eq!(back, Some("Writer|{English,French}|1990-05-06".into()));
    }

    #[pg_test]
    fn rows_go_two_hundred_to_a_request() {
        import_demo("w2", "");
        let before = mark();
        Spi::run("INSERT INTO w2.contact (last_name, user_id__c) SELECT 'Batch', 'batch-' || n FROM generate_series(1, 450) n").unwrap();
        let sizes: Vec<usize> = writes_since(before)
            .iter()
            .map(|(_, _, b)| b["records"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, vec![200, 200, 50]);
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM w2.contact WHERE last_name = 'Batch'")
                .unwrap(),
            Some(450)
        );
        let before = mark();
        Spi::run("UPDATE w2.contact SET title = 'Bulk' WHERE last_name = 'Batch'").unwrap();
        let patches: Vec<usize> = writes_since(before)
            .iter()
            .filter(|(m, _, _)| m == "PATCH")
            .map(|(_, _, b)| b["records"].as_array().unwrap().len())
            .collect();
        assert_eq!(patches, vec![200, 200, 50]);
        let before = mark();
        Spi::run("DELETE FROM w2.contact WHERE last_name = 'Batch'").unwrap();
        let deletes = writes_since(before);
        assert_eq!(deletes.len(), 3);
        assert!(deletes
            .iter()
            .all(|(m, p, _)| m == "DELETE" && p == "/services/data/v62.0/composite/sobjects"));
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM w2.contact WHERE last_name = 'Batch'")
                .unwrap(),
            Some(0)
        );
    }

    #[pg_test]
    fn update_sends_changed_fields_and_null_clears() {
        import_demo("w3", "");
        let id = one("INSERT INTO w3.contact (last_name, email, title) VALUES ('Nulls', 'nulls@example.net', 'Old') RETURNING id").unwrap();
        let before = mark();
        Spi::run(&format!(
            "UPDATE w3.contact SET title = 'New', email = NULL WHERE id = '{id}'"
        ))
        .unwrap();
        let writes = writes_since(before);
        let patch = writes
            .iter()
            .find(|(m, _, _)| m == "PATCH")
            .expect("an update");
        assert_eq!(
            patch.2["records"][0],
            serde_json::json!({"Title": "New", "Email": null, "id": id, "attributes": {"type": "Contact"}})
        );
        assert_eq!(
            one(&format!(
                "SELECT coalesce(email, 'null') || '|' || title FROM w3.contact WHERE id = '{id}'"
            )),
            Some("null|New".into())
        );
    }

    #[pg_test]
    fn read_only_columns_fail_before_any_request() {
        import_demo("w4", "");
        for (sql, column) in [
            (
                "INSERT INTO w4.contact (last_name, system_modstamp) VALUES ('x', now())",
                "system_modstamp",
            ),
            (
                "INSERT INTO w4.contact (id, last_name) VALUES ('003000000000000AAA', 'x')",
                "id",
            ),
            (
                "UPDATE w4.contact SET name = 'x' WHERE last_name = 'Turing'",
                "name",
            ),
            ("UPDATE w4.invoice__c SET total__c = 1", "total__c"),
        ] {
            let before = mark();
            let e = sql_error(sql).message;
            assert!(
                e.contains(&format!("column \"{column}\"")) && e.contains("is read-only"),
                "{e}"
            );
            assert!(
                writes_since(before).is_empty(),
                "no write reached Salesforce"
            );
        }
    }

    fn write_error(sql: &str) -> (String, String, String) {
        let e = sql_error(sql);
        (e.message, e.code, e.detail)
    }

    #[pg_test]
    fn rejections_name_the_row_and_salesforces_reason() {
        import_demo("w5", "");
        let taken = one("SELECT email FROM w5.contact ORDER BY email LIMIT 1").unwrap();
        let (message, code, detail) = write_error(&format!("INSERT INTO w5.contact (last_name, email) VALUES ('A', 'a1@example.net'), ('B', 'b1@example.net'), ('C', '{taken}')"));
        assert!(
            message.starts_with(
                "Salesforce rejected row 3 of the INSERT into contact (LastName 'C', Email '"
            ),
            "{message}"
        );
        assert!(
            message.contains("DUPLICATES_DETECTED: You're creating a duplicate record"),
            "{message}"
        );
        assert_eq!(code, "ERRCODE_UNIQUE_VIOLATION");
        assert_eq!(detail, "");
        let (message, code, detail) =
            write_error("INSERT INTO w5.contact (first_name) VALUES ('No last name')");
        assert!(
            message.contains("REQUIRED_FIELD_MISSING: Required fields are missing: [LastName]"),
            "{message}"
        );
        assert_eq!(
            (code.as_str(), detail.as_str()),
            ("ERRCODE_NOT_NULL_VIOLATION", "Fields: LastName")
        );
        let (message, code, _) = write_error("INSERT INTO w5.invoice__c (amount__c) VALUES (-5)");
        assert!(
            message.contains("FIELD_CUSTOM_VALIDATION_EXCEPTION: Amount must not be negative."),
            "{message}"
        );
        assert_eq!(code, "ERRCODE_CHECK_VIOLATION");
        let id = one("SELECT id FROM w5.contact ORDER BY id LIMIT 1").unwrap();
        let (message, _, _) = write_error(&format!(
            "UPDATE w5.contact SET level__c = 'Quaternary' WHERE id = '{id}'"
        ));
        assert!(message.starts_with(&format!("Salesforce rejected row 1 of the UPDATE of contact (Id {id}): INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")), "{message}");
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM w5.contact WHERE email IN ('a1@example.net', 'b1@example.net')").unwrap(), Some(0), "all or none");
    }

    #[pg_test]
    fn upsert_key_makes_a_repeated_insert_an_update() {
        create_server("w6", "");
        Spi::run("CREATE FOREIGN TABLE w6_contact (id text, last_name text, user_id__c text) SERVER w6 OPTIONS (object 'Contact', upsert_key 'user_id__c')").unwrap();
        let before = mark();
        let first = one("INSERT INTO w6_contact (last_name, user_id__c) VALUES ('First', 'signup-42') RETURNING id").unwrap();
        let again = one("INSERT INTO w6_contact (last_name, user_id__c) VALUES ('Again', 'signup-42') RETURNING id").unwrap();
        assert_eq!(first, again, "the retried signup found the same record");
        assert_eq!(
            one("SELECT string_agg(last_name, ',') FROM w6_contact WHERE user_id__c = 'signup-42'"),
            Some("Again".into())
        );
        let upserts = writes_since(before)
            .iter()
            .filter(|(m, p, _)| {
                m == "PATCH" && p.ends_with("/composite/sobjects/Contact/User_Id__c")
            })
            .count();
        assert_eq!(upserts, 2);
    }

    #[pg_test]
    fn a_rolled_back_savepoint_undoes_its_writes() {
        import_demo("w7", "");
        let id = one(
            "INSERT INTO w7.contact (last_name, title) VALUES ('Keeper', 'Before') RETURNING id",
        )
        .unwrap();
        Spi::run(&format!(
            "DO $$ BEGIN
               INSERT INTO w7.contact (last_name) VALUES ('Ephemeral');
               UPDATE w7.contact SET title = 'During' WHERE id = '{id}';
               RAISE EXCEPTION 'roll back to the savepoint';
             EXCEPTION WHEN raise_exception THEN NULL;
             END $$"
        ))
        .unwrap();
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM w7.contact WHERE last_name = 'Ephemeral'")
                .unwrap(),
            Some(0),
            "the created record was deleted"
        );
        assert_eq!(
            one(&format!("SELECT title FROM w7.contact WHERE id = '{id}'")),
            Some("Before".into()),
            "the update was undone"
        );
    }

    #[pg_test]
    fn a_create_whose_answer_is_lost_is_not_sent_twice() {
        import_demo("lost", "");
        control(
            "PATCH",
            "faults",
            Some(serde_json::json!({"drop_connection": 1.0})),
        );
        let before = mark();
        let e = sql_error(
            "INSERT INTO lost.contact (last_name, user_id__c) VALUES ('Lost', 'lost-answer')",
        );
        control("PATCH", "faults", Some(serde_json::json!({})));
        assert!(
            e.message.starts_with("cannot reach Salesforce"),
            "{}",
            e.message
        );
        let posts = writes_since(before)
            .iter()
            .filter(|(m, _, _)| m == "POST")
            .count();
        // Salesforce did create it; the id never reached us, so the abort cannot delete it.
        let id = one("SELECT id FROM lost.contact WHERE user_id__c = 'lost-answer'")
            .expect("created once");
        control("DELETE", &format!("records/Contact/{id}?hard=true"), None);
        assert_eq!(
            posts, 1,
            "a create is never retried once Salesforce may have applied it"
        );
    }

    #[pg_test]
    fn json_and_timestamp_columns_can_be_written() {
        create_server("wj", "");
        Spi::run("CREATE FOREIGN TABLE invoice_typed (id text, name text, amount__c numeric, notes__c json, paid_at__c timestamp, delivery jsonb OPTIONS (field 'Delivery_Location__c')) SERVER wj OPTIONS (object 'Invoice__c')").unwrap();
        let before = mark();
        let id = one(r#"INSERT INTO invoice_typed (amount__c, notes__c, paid_at__c) VALUES (10, '"paid in full"', '2024-02-06 20:48:32.25') RETURNING id"#).unwrap();
        let record = &writes_since(before)[0].2["records"][0];
        assert_eq!(record["Notes__c"], "paid in full");
        assert_eq!(
            record["Paid_At__c"], "2024-02-06T20:48:32.250Z",
            "a timestamp without time zone is UTC"
        );
        let back = one(&format!(
            "SELECT concat_ws('|', notes__c, paid_at__c) FROM invoice_typed WHERE id = '{id}'"
        ));
        assert_eq!(
            back,
            Some(r#""paid in full"|2024-02-06 20:48:32.25"#.into())
        );
        Spi::run(&format!(r#"UPDATE invoice_typed SET notes__c = '"reopened"', paid_at__c = NULL WHERE id = '{id}'"#)).unwrap();
        let back = one(&format!("SELECT concat_ws('|', notes__c, coalesce(paid_at__c::text, 'null')) FROM invoice_typed WHERE id = '{id}'"));
        assert_eq!(back, Some(r#""reopened"|null"#.into()));
    }
}
