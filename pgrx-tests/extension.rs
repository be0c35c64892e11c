// Creating the extension and validating options.

#[pgrx::pg_schema]
mod tests {
    use crate::db_tests::support::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn extension_creates_schema_and_wrapper() {
        let schema = Spi::get_one::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'salesforce')",
        );
        assert_eq!(schema, Ok(Some(true)));
        let wrapper = Spi::get_one::<String>(
            "SELECT h.proname::text || '/' || v.proname::text FROM pg_foreign_data_wrapper w
             JOIN pg_proc h ON h.oid = w.fdwhandler JOIN pg_proc v ON v.oid = w.fdwvalidator
             WHERE w.fdwname = 'salesforce'",
        );
        assert_eq!(
            wrapper,
            Ok(Some(
                "salesforce_fdw_handler/salesforce_fdw_validator".to_string()
            ))
        );
    }

    #[pg_test]
    fn validator_accepts_known_options() {
        Spi::run("CREATE SERVER ok_org FOREIGN DATA WRAPPER salesforce OPTIONS (login_url 'http://127.0.0.1:7777', api_version '62.0')")
            .unwrap();
        Spi::run("CREATE USER MAPPING FOR CURRENT_USER SERVER ok_org OPTIONS (grant_type 'access_token', access_token 'x')").unwrap();
        let servers =
            Spi::get_one::<i64>("SELECT count(*) FROM pg_foreign_server WHERE srvname = 'ok_org'");
        assert_eq!(servers, Ok(Some(1)));
    }

    #[pg_test]
    fn upsert_key_and_rowid_column_name_columns_of_the_table() {
        // Each case on a table of its own: an error caught here undoes
        // nothing, and leaves the event trigger's search_path in place.
        Spi::run("CREATE SERVER keyed FOREIGN DATA WRAPPER salesforce OPTIONS (login_url 'http://127.0.0.1:7777')").unwrap();
        let table = |name: &str| {
            Spi::run(&format!(
                "CREATE FOREIGN TABLE public.{name} (id text, ext text OPTIONS (field 'User_Id__c'), last_name text)
                 SERVER keyed OPTIONS (object 'Contact', rowid_column 'id', upsert_key 'User_Id__c')"
            ))
            .unwrap();
        };
        table("keyed_a");
        Spi::run("ALTER FOREIGN TABLE public.keyed_a OPTIONS (SET upsert_key 'ext')").unwrap();
        let e = sql_error("ALTER FOREIGN TABLE public.keyed_a OPTIONS (SET upsert_key 'user_id')");
        assert_eq!(
            e.message,
            "upsert_key 'user_id' of foreign table public.keyed_a names none of its columns",
        );
        assert!(e.hint.contains("external id"), "{}", e.hint);
        table("keyed_b");
        let e = sql_error("ALTER FOREIGN TABLE public.keyed_b OPTIONS (SET rowid_column 'Id')");
        assert_eq!(
            e.message,
            "rowid_column 'Id' of foreign table public.keyed_b names none of its columns"
        );
        table("keyed_c");
        let e = sql_error("ALTER TABLE public.keyed_c DROP COLUMN ext");
        assert!(
            e.message.starts_with("upsert_key 'User_Id__c'"),
            "{}",
            e.message
        );
        table("keyed_d");
        let e = sql_error("ALTER TABLE public.keyed_d RENAME COLUMN id TO record_id");
        assert!(e.message.starts_with("rowid_column 'id'"), "{}", e.message);
        // A column without a field option reads the field its name is the
        // snake_case of.
        Spi::run("CREATE FOREIGN TABLE public.keyed_f (id text, account_number text) SERVER keyed OPTIONS (object 'Account', upsert_key 'AccountNumber')").unwrap();
        let e = sql_error("CREATE FOREIGN TABLE public.keyed_e (id text) SERVER keyed OPTIONS (object 'Lead', upsert_key 'Email')");
        assert!(e.message.starts_with("upsert_key 'Email'"), "{}", e.message);
        // Other wrappers' tables are not ours to check.
        Spi::run("CREATE FOREIGN DATA WRAPPER other_fdw").unwrap();
        Spi::run("CREATE SERVER other FOREIGN DATA WRAPPER other_fdw").unwrap();
        Spi::run("CREATE FOREIGN TABLE public.other_table (a int) SERVER other OPTIONS (upsert_key 'nope')").unwrap();
    }

    #[pg_test]
    fn an_error_names_the_rust_function_that_raised_it() {
        let e = sql_error("SELECT salesforce.sync_enable('no_such_server', 'Account')");
        assert!(
            e.location.starts_with("sync_enable, api.rs:"),
            "{} at {}",
            e.message,
            e.location
        );
        let e = sql_error(
            "SELECT salesforce.sync_alter('no_such_server', 'Account', every => '1 minute')",
        );
        assert!(
            e.location.starts_with("find_sync, api.rs:"),
            "{} at {}",
            e.message,
            e.location
        );
    }

    #[pg_test(error = "invalid option \"logon_url\" for a salesforce server")]
    fn validator_names_an_unknown_server_option() {
        Spi::run("CREATE SERVER typo FOREIGN DATA WRAPPER salesforce OPTIONS (logon_url 'https://login.salesforce.com')").unwrap();
    }

    #[pg_test(
        error = "invalid value for option \"login_url\": plain http is only allowed to loopback addresses"
    )]
    fn validator_refuses_plain_http_off_loopback() {
        Spi::run("CREATE SERVER clear FOREIGN DATA WRAPPER salesforce OPTIONS (login_url 'http://login.salesforce.com')").unwrap();
    }

    #[pg_test(
        error = "grant_type \"password\" needs user mapping option(s): client_secret, username, password"
    )]
    fn validator_refuses_an_incomplete_grant() {
        Spi::run("CREATE SERVER grant_org FOREIGN DATA WRAPPER salesforce").unwrap();
        Spi::run("CREATE USER MAPPING FOR CURRENT_USER SERVER grant_org OPTIONS (grant_type 'password', client_id 'c')").unwrap();
    }

    #[pg_test]
    fn a_bad_option_already_stored_is_reported_not_replaced() {
        import_demo("stored", "");
        // A value the validator refuses, stored past it as a superuser could.
        Spi::run("UPDATE pg_foreign_server SET srvoptions = array_append(srvoptions, 'batch_size=5') WHERE srvname = 'stored'").unwrap();
        let e = sql_error("SELECT count(*) FROM stored.account WHERE name = 'x'");
        assert_eq!(e.message, "server \"stored\" has a bad option: invalid value for option \"batch_size\": expected a whole number from 200 to 2000");
        assert_eq!(e.code, "ERRCODE_FDW_INVALID_OPTION_NAME");
        assert!(e.hint.contains("ALTER"), "{}", e.hint);
    }
}
