// Who may do what (docs/security.md), routine by routine: each test makes
// its roles inside the test's transaction, acts as them with SET ROLE, and
// checks what each routine refuses and what it lets through. Refusals run
// in subtransactions, as a client's statement would, so a refused call
// leaves no role or search path behind.

#[pgrx::pg_schema]
mod tests {
    use crate::db_tests::support::*;
    use pgrx::prelude::*;

    /// The error a statement raises, run in a subtransaction; "no error" if none.
    fn refused(sql: &str) -> (String, String) {
        match crate::pg::in_subtransaction(|| Spi::run(sql).map_err(crate::error::Error::from)) {
            Ok(()) => ("no error".into(), String::new()),
            Err(e) => (e.message(), format!("{:?}", e.code())),
        }
    }

    fn run(sql: &str) {
        Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn one<T: IntoDatum + FromDatum>(sql: &str) -> Option<T> {
        Spi::get_one::<T>(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    const MAPPING: &str = "grant_type 'password', client_id 'sfsim-client-id', client_secret 'sfsim-client-secret', username 'admin@sfsim.example', password 'sfsim-password', security_token 'SFSIMTOKEN'";

    /// Roles that may log in to nothing but hold what a sync user needs:
    /// USAGE on the extension's schema, and a schema of their own.
    fn roles(names: &[&str]) {
        for r in names {
            run(&format!("CREATE ROLE {r}"));
            run(&format!("GRANT USAGE ON SCHEMA salesforce TO {r}"));
            run(&format!("CREATE SCHEMA {r} AUTHORIZATION {r}"));
        }
    }

    /// A server the roles may use, each with a user mapping of its own.
    fn server(name: &str, users: &[&str]) {
        run(&format!(
            "CREATE SERVER {name} FOREIGN DATA WRAPPER salesforce OPTIONS (login_url '{}')",
            sim()
        ));
        for u in users {
            run(&format!("GRANT USAGE ON FOREIGN SERVER {name} TO {u}"));
            run(&format!(
                "CREATE USER MAPPING FOR {u} SERVER {name} OPTIONS ({MAPPING})"
            ));
        }
    }

    fn as_role<T>(role: &str, f: impl FnOnce() -> T) -> T {
        run(&format!("SET ROLE {role}"));
        let out = f();
        run("RESET ROLE");
        out
    }

    #[pg_test]
    fn the_org_functions_need_usage_and_a_user_mapping() {
        roles(&["ac_carol"]);
        run(&format!(
            "CREATE SERVER ac_org FOREIGN DATA WRAPPER salesforce OPTIONS (login_url '{}')",
            sim()
        ));
        let calls = [
            "SELECT count(*) FROM salesforce.query('ac_org', 'SELECT Id FROM Campaign')",
            "SELECT count(*) FROM salesforce.limits('ac_org')",
            "SELECT count(*) FROM salesforce.describe('ac_org', 'Campaign')",
            "SELECT salesforce.sync_enable('ac_org', 'Campaign', 'ac_carol.campaign')",
        ];
        as_role("ac_carol", || {
            for call in calls {
                let (message, code) = refused(call);
                assert_eq!(
                    message,
                    "permission denied for foreign server ac_org: role ac_carol has no USAGE on it",
                    "{call}"
                );
                assert_eq!(code, "ERRCODE_INSUFFICIENT_PRIVILEGE");
            }
        });
        run("GRANT USAGE ON FOREIGN SERVER ac_org TO ac_carol");
        as_role("ac_carol", || {
            for call in calls {
                assert_eq!(
                    refused(call).0,
                    "user mapping not found for user \"ac_carol\", server \"ac_org\"",
                    "{call}"
                );
            }
        });
        // PUBLIC's mapping serves a role without its own, as postgres_fdw's does.
        run(&format!(
            "CREATE USER MAPPING FOR PUBLIC SERVER ac_org OPTIONS ({MAPPING})"
        ));
        as_role("ac_carol", || {
            assert_eq!(
                one::<i64>(
                    "SELECT count(*) FROM salesforce.query('ac_org', 'SELECT Id FROM Campaign')"
                ),
                Some(20)
            );
            assert!(
                one::<i64>("SELECT count(*) FROM salesforce.describe('ac_org', 'Campaign')")
                    .unwrap()
                    > 5
            );
        });
        // ... and revoking USAGE stops it again.
        run("REVOKE USAGE ON FOREIGN SERVER ac_org FROM ac_carol");
        as_role("ac_carol", || {
            assert!(refused(calls[0])
                .0
                .starts_with("permission denied for foreign server ac_org"));
        });
    }

    #[pg_test]
    fn sync_enable_checks_its_target_and_bounds() {
        roles(&["ae_alice", "ae_bob"]);
        server("ae_org", &["ae_alice"]);
        run("CREATE SCHEMA ae_locked");
        run("CREATE TABLE ae_bob.campaign (id text PRIMARY KEY, _synced_at timestamptz)");
        run("ALTER TABLE ae_bob.campaign OWNER TO ae_bob");
        as_role("ae_alice", || {
            let enable = |target: &str, every: &str| {
                refused(&format!(
                    "SELECT salesforce.sync_enable('ae_org', 'Campaign', '{target}', '{every}', '{{\"fields\": [\"Id\", \"Name\"]}}')"
                ))
            };
            let (message, code) = enable("ae_locked.campaign", "5 minutes");
            assert_eq!(
                message,
                "permission denied for schema ae_locked: role ae_alice may not create tables in it"
            );
            assert_eq!(code, "ERRCODE_INSUFFICIENT_PRIVILEGE");
            assert_eq!(
                enable("ae_bob.campaign", "5 minutes").0,
                "the target ae_bob.campaign is not owned by role ae_alice"
            );
            for every in ["1 millisecond", "0", "300000 years", "-1 hour", "13 months"] {
                assert_eq!(
                    enable("ae_alice.campaign", every).0,
                    "every must be from 1 second to 1 year",
                    "{every}"
                );
            }
            // The default target's schema is the server's: a role that may
            // not create schemas is told to name one.
            let (message, _) = refused("SELECT salesforce.sync_enable('ae_org', 'Campaign')");
            assert_eq!(
                message,
                "schema \"ae_org\" does not exist, and role ae_alice may not create it"
            );
            run("CREATE VIEW ae_alice.campaign_view AS SELECT 1 AS id");
            assert_eq!(
                enable("ae_alice.campaign_view", "5 minutes").0,
                "the target ae_alice.campaign_view is not an ordinary table"
            );
            run("CREATE TABLE ae_alice.campaign_bare (id text PRIMARY KEY)");
            assert_eq!(
                enable("ae_alice.campaign_bare", "5 minutes").0,
                "table ae_alice.campaign_bare cannot hold the copy: it has no column name, system_modstamp, _synced_at"
            );
            let id = one::<i64>("SELECT salesforce.sync_enable('ae_org', 'Campaign', 'ae_alice.campaign', '1 second', '{\"fields\": [\"Id\", \"Name\"]}')").unwrap();
            assert_eq!(
                one::<String>(&format!(
                    "SELECT pg_get_userbyid(owner)::text FROM salesforce.syncs WHERE id = {id}"
                ))
                .as_deref(),
                Some("ae_alice"),
                "the caller owns the sync"
            );
            assert_eq!(
                one::<String>("SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = 'ae_alice.campaign'::regclass").as_deref(),
                Some("ae_alice"),
                "and the copy"
            );
            assert_eq!(
                enable("ae_alice.other", "5 minutes").0,
                "Campaign on server ae_org is already synced by role ae_alice"
            );
        });
        // A cap per role, which only a superuser sets.
        run("SET salesforce.max_syncs_per_role = 1");
        as_role("ae_alice", || {
            assert_eq!(
                refused("SELECT salesforce.sync_enable('ae_org', 'Account', 'ae_alice.account')").0,
                "role ae_alice has 1 syncs, as many as salesforce.max_syncs_per_role allows"
            );
            assert!(refused("SET salesforce.max_syncs_per_role = 1000")
                .0
                .starts_with("permission denied to set parameter"));
        });
    }

    #[pg_test]
    fn only_the_owner_runs_resyncs_or_disables_a_sync() {
        roles(&["ao_alice", "ao_bob"]);
        server("ao_org", &["ao_alice", "ao_bob"]);
        as_role("ao_alice", || {
            run("SELECT salesforce.sync_enable('ao_org', 'Campaign', 'ao_alice.campaign', '1 hour', '{\"fields\": [\"Id\", \"Name\"]}')");
        });
        let routines = [
            "CALL salesforce.sync_now('ao_org', 'Campaign')",
            "CALL salesforce.resync('ao_org', 'Campaign')",
            "SELECT salesforce.sync_disable('ao_org', 'Campaign')",
            "SELECT salesforce._sync_request_resync('ao_org', 'Campaign')",
            "SELECT salesforce._sync_begin('ao_org', 'Campaign')",
        ];
        as_role("ao_bob", || {
            for call in routines {
                let (message, code) = refused(call);
                assert_eq!(
                    message, "permission denied for the sync of Campaign on server ao_org",
                    "{call}"
                );
                assert_eq!(code, "ERRCODE_INSUFFICIENT_PRIVILEGE");
            }
            assert_eq!(
                refused("CALL salesforce.sync_now('ao_org')").0,
                "server ao_org has no enabled syncs that role ao_bob may run"
            );
            // Bob sees neither the sync, nor its runs, nor its status.
            assert_eq!(one::<i64>("SELECT count(*) FROM salesforce.syncs"), Some(0));
            assert_eq!(
                one::<i64>("SELECT count(*) FROM salesforce.sync_status"),
                Some(0)
            );
        });
        as_role("ao_alice", || {
            let (_, _, _, _, error) = sync_now("ao_org", "Campaign");
            assert_eq!(error, None);
            assert_eq!(
                one::<i64>("SELECT count(*) FROM ao_alice.campaign"),
                Some(20)
            );
            assert_eq!(
                one::<i64>("SELECT rows FROM salesforce.sync_status WHERE server = 'ao_org'"),
                Some(20),
                "the status counts rows the run stored"
            );
        });
        as_role("ao_bob", || {
            assert_eq!(
                one::<i64>("SELECT count(*) FROM salesforce.sync_runs WHERE server = 'ao_org'"),
                Some(0)
            );
        });
        // A member of the owner's role acts for it.
        run("GRANT ao_alice TO ao_bob");
        as_role("ao_bob", || {
            run("CALL salesforce.sync_now('ao_org', 'Campaign')");
            assert!(
                one::<i64>("SELECT count(*) FROM salesforce.sync_runs WHERE server = 'ao_org'")
                    .unwrap()
                    >= 2
            );
        });
        run("REVOKE ao_alice FROM ao_bob");
        // A superuser may run it too; the copy is still written as its owner.
        run("CALL salesforce.resync('ao_org', 'Campaign')");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM ao_alice.campaign"),
            Some(20)
        );
        assert_eq!(
            one::<String>("SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = 'ao_alice.campaign'::regclass").as_deref(),
            Some("ao_alice")
        );
        as_role("ao_alice", || {
            run("SELECT salesforce.sync_disable('ao_org', 'Campaign')");
        });
        assert_eq!(
            one::<i64>("SELECT count(*) FROM ao_alice.campaign"),
            Some(20),
            "the copy stays"
        );
    }

    #[pg_test]
    fn a_sync_is_disabled_by_its_id_only_by_who_may_manage_it() {
        roles(&["ad_alice", "ad_bob"]);
        server("ad_org", &["ad_alice", "ad_bob"]);
        let id = as_role("ad_alice", || {
            one::<i64>("SELECT salesforce.sync_enable('ad_org', 'Campaign', 'ad_alice.campaign', '1 hour', '{\"fields\": [\"Id\"]}')").unwrap()
        });
        as_role("ad_bob", || {
            assert_eq!(
                refused(&format!("SELECT salesforce.sync_disable({id})")).0,
                format!("permission denied for sync {id} (Campaign on server ad_org)")
            );
        });
        assert_eq!(
            refused("SELECT salesforce.sync_disable(-1)").0,
            "sync -1 does not exist"
        );
        run(&format!(
            "SELECT salesforce.sync_disable({id}, drop_table => true)"
        ));
        assert_eq!(
            one::<bool>("SELECT to_regclass('ad_alice.campaign') IS NULL"),
            Some(true)
        );
        assert_eq!(
            one::<i64>(&format!(
                "SELECT count(*) FROM salesforce.syncs WHERE id = {id}"
            )),
            Some(0)
        );
    }

    #[pg_test]
    fn a_copys_code_cannot_steer_the_callers_search_path() {
        roles(&["ag_alice"]);
        server("ag_org", &["ag_alice"]);
        as_role("ag_alice", || {
            run("CREATE TABLE ag_alice.campaign (id text PRIMARY KEY, name text, system_modstamp timestamptz, _synced_at timestamptz NOT NULL)");
            run("CREATE FUNCTION ag_alice.steer() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_catalog.set_config('search_path', 'ag_alice, pg_catalog', false); RETURN NEW; END $$");
            run("CREATE TRIGGER steer BEFORE INSERT ON ag_alice.campaign FOR EACH ROW EXECUTE FUNCTION ag_alice.steer()");
            run("SET search_path = public");
            run("SELECT salesforce.sync_enable('ag_org', 'Campaign', 'ag_alice.campaign', '1 hour', '{\"fields\": [\"Name\"]}')");
            assert_eq!(sync_now("ag_org", "Campaign").4, None);
            assert_eq!(
                one::<i64>("SELECT count(*) FROM ag_alice.campaign"),
                Some(20),
                "the trigger ran"
            );
            assert_eq!(
                one::<String>("SELECT current_setting('search_path')").as_deref(),
                Some("public")
            );
        });
    }

    #[pg_test]
    fn a_failed_run_keeps_its_sqlstate_and_hint() {
        roles(&["ae2_alice"]);
        server("ae2_org", &["ae2_alice"]);
        as_role("ae2_alice", || {
            run("SELECT salesforce.sync_enable('ae2_org', 'Campaign', 'ae2_alice.campaign', '1 hour', '{\"fields\": [\"Name\"]}')");
            run("ALTER TABLE ae2_alice.campaign ADD CONSTRAINT no_rows CHECK (name IS NULL)");
            let run_id =
                one::<i64>("SELECT salesforce._sync_begin('ae2_org', 'Campaign')").unwrap();
            while one::<bool>(&format!("SELECT salesforce._sync_step({run_id})")) == Some(true) {}
            run(&format!(
                "SELECT salesforce._sync_finish(ARRAY[{run_id}::bigint])"
            ));
            let row = one::<String>(&format!(
                "SELECT concat_ws('|', status, error_sqlstate, error LIKE '%no_rows%') FROM salesforce.sync_runs WHERE id = {run_id}"
            ));
            assert_eq!(
                row.as_deref(),
                Some("failed|23514|t"),
                "the check violation's SQLSTATE reaches the log"
            );
        });
    }

    #[pg_test]
    fn users_cannot_write_the_extensions_tables() {
        roles(&["aw_alice"]);
        server("aw_org", &["aw_alice"]);
        as_role("aw_alice", || {
            run("SELECT salesforce.sync_enable('aw_org', 'Campaign', 'aw_alice.campaign', '1 hour', '{\"fields\": [\"Id\"]}')");
            for statement in [
                "UPDATE salesforce.syncs SET owner = 10",
                "DELETE FROM salesforce.syncs",
                "INSERT INTO salesforce.syncs (server, object, target_schema, target_table, target_relid, every, fields, columns, owner) VALUES ('aw_org', 'Lead', 'x', 'y', 1, '1 hour', '{Id}', '{id}', 10)",
                "UPDATE salesforce.sync_runs SET status = 'failed'",
                "UPDATE salesforce.pacing SET tokens = -1e15",
                "SELECT * FROM salesforce.pacing",
                "SELECT * FROM salesforce.streams",
                "TRUNCATE salesforce.sync_runs",
            ] {
                let (message, code) = refused(statement);
                assert!(message.starts_with("permission denied for table"), "{statement}: {message}");
                assert_eq!(code, "ERRCODE_INSUFFICIENT_PRIVILEGE");
            }
            assert_eq!(
                one::<i64>("SELECT count(*) FROM salesforce.syncs"),
                Some(1),
                "it reads its own"
            );
        });
    }

    #[pg_test]
    fn several_roles_copy_one_object() {
        roles(&["as_alice", "as_bob"]);
        server("as_org", &["as_alice", "as_bob"]);
        for role in ["as_alice", "as_bob"] {
            as_role(role, || {
                run(&format!("SELECT salesforce.sync_enable('as_org', 'Campaign', '{role}.campaign', '1 hour', '{{\"fields\": [\"Id\", \"Name\"]}}')"));
                assert_eq!(sync_now("as_org", "Campaign").4, None);
                assert_eq!(
                    one::<i64>(&format!("SELECT count(*) FROM {role}.campaign")),
                    Some(20)
                );
            });
        }
        // A superuser names no owner: which one is meant must be said.
        let (message, _) = refused("CALL salesforce.sync_now('as_org', 'Campaign')");
        assert_eq!(
            message,
            "the sync of Campaign on server as_org is ambiguous: roles as_alice, as_bob each sync it"
        );
        run("CALL salesforce.sync_now('as_org')");
        assert_eq!(
            one::<i64>("SELECT count(DISTINCT owner) FROM salesforce.sync_runs WHERE server = 'as_org' AND status = 'succeeded'"),
            Some(2)
        );
    }

    #[pg_test]
    fn a_run_checks_its_owner_again() {
        roles(&["ap_alice"]);
        server("ap_org", &["ap_alice"]);
        as_role("ap_alice", || {
            run("SELECT salesforce.sync_enable('ap_org', 'Campaign', 'ap_alice.campaign', '1 hour', '{\"fields\": [\"Id\", \"Name\"]}')");
        });
        run("REVOKE USAGE ON FOREIGN SERVER ap_org FROM ap_alice");
        let before = mark();
        let why = "permission denied for foreign server ap_org: role ap_alice has no USAGE on it";
        // The superuser may run it, but the run checks its owner, who may not.
        assert_eq!(
            refused("CALL salesforce.sync_now('ap_org', 'Campaign')").0,
            why
        );
        let (together, _) = refused("CALL salesforce.sync_now('ap_org')");
        assert_eq!(
            together,
            format!("sync of Campaign on server ap_org failed: paused: {why}"),
            "a run of every sync of the server logs the refusal as a failed run"
        );
        assert!(
            requests_since(before).is_empty(),
            "a refused run asks Salesforce nothing"
        );
        run("GRANT USAGE ON FOREIGN SERVER ap_org TO ap_alice");
        assert_eq!(sync_now("ap_org", "Campaign").4, None);
        // A copy that changed hands is refused too.
        run("CREATE ROLE ap_mallory");
        run("ALTER TABLE ap_alice.campaign OWNER TO ap_mallory");
        assert_eq!(
            refused("CALL salesforce.sync_now('ap_org', 'Campaign')").0,
            "the copy ap_alice.campaign is not owned by role ap_alice"
        );
    }

    #[pg_test]
    fn a_copy_swapped_for_a_view_is_refused_not_read() {
        roles(&["av_alice"]);
        server("av_org", &["av_alice"]);
        as_role("av_alice", || {
            run("SELECT salesforce.sync_enable('av_org', 'Campaign', 'av_alice.campaign', '1 hour', '{\"fields\": [\"Id\", \"Name\"]}')");
            assert_eq!(sync_now("av_org", "Campaign").4, None);
            run("CREATE TABLE av_alice.seen (who text)");
            run("CREATE FUNCTION av_alice.spy() RETURNS bigint LANGUAGE sql AS $$ INSERT INTO av_alice.seen VALUES (current_user) RETURNING 1::bigint $$");
            run("DROP TABLE av_alice.campaign");
            run("CREATE VIEW av_alice.campaign AS SELECT av_alice.spy() AS id");
            // Dropping the copy ended the sync; the view is nobody's copy.
            assert_eq!(
                refused("CALL salesforce.sync_now('av_org', 'Campaign')").0,
                "Campaign on server av_org is not synced"
            );
        });
        assert_eq!(
            one::<i64>("SELECT count(*) FROM salesforce.sync_status WHERE server = 'av_org'"),
            Some(0)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM salesforce.sync_runs WHERE server = 'av_org'"),
            Some(1),
            "its run stays in the log"
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM av_alice.seen"),
            Some(0),
            "the status ran no code of the view"
        );
    }

    #[pg_test]
    fn staging_names_fit_and_never_take_the_copys() {
        roles(&["an_alice"]);
        server("an_org", &["an_alice"]);
        let long = "c".repeat(63);
        let accented = "é".repeat(31) + "x";
        as_role("an_alice", || {
            for (object, table) in [("Campaign", long.as_str()), ("Account", accented.as_str())] {
                run(&format!("SELECT salesforce.sync_enable('an_org', '{object}', 'an_alice.\"{table}\"', '1 hour', '{{\"fields\": [\"Id\", \"Name\"]}}')"));
                run(&format!(
                    "SELECT salesforce._sync_request_resync('an_org', '{object}')"
                ));
                let staging = one::<String>(&format!(
                    "SELECT c.relname::text FROM salesforce.syncs s JOIN pg_class c ON c.oid = s.staging_relid WHERE s.object = '{object}' AND s.server = 'an_org'"
                ))
                .unwrap();
                assert_ne!(staging, table);
                assert!(
                    staging.len() <= 63 && staging.contains("__resync_"),
                    "{staging}"
                );
                run(&format!(
                    "SELECT salesforce.sync_disable('an_org', '{object}', drop_table => false)"
                ));
                assert_eq!(
                    one::<bool>(&format!(
                        "SELECT to_regclass('an_alice.\"{table}\"') IS NOT NULL"
                    )),
                    Some(true),
                    "sync_disable(drop_table => false) keeps the copy"
                );
                assert_eq!(
                    one::<bool>(&format!(
                        "SELECT to_regclass('an_alice.\"{staging}\"') IS NULL"
                    )),
                    Some(true),
                    "and drops the staging table"
                );
            }
        });
    }

    #[pg_test]
    fn only_secrets_are_scrubbed() {
        roles(&["sc_alice"]);
        server("sc_org", &["sc_alice"]);
        as_role("sc_alice", || {
            assert_eq!(
                one::<i64>(
                    "SELECT count(*) FROM salesforce.query('sc_org', 'SELECT Id FROM Campaign')"
                ),
                Some(20)
            );
            // Options that are not secrets stay in messages...
            for word in ["password", "sfsim-client-id", "admin@sfsim.example"] {
                assert_eq!(
                    refused(&format!(
                        "SELECT * FROM salesforce.describe('sc_org', '{word}')"
                    ))
                    .0,
                    format!("Salesforce has no object {word}")
                );
            }
            // ... and secrets never do.
            for secret in ["sfsim-client-secret", "sfsim-passwordSFSIMTOKEN"] {
                assert_eq!(
                    refused(&format!(
                        "SELECT * FROM salesforce.describe('sc_org', '{secret}')"
                    ))
                    .0,
                    "Salesforce has no object ********"
                );
            }
        });
    }
}
