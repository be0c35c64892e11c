// Shared copies: several servers' syncs of one object in one table,
// partitioned by org and keyed by (org, id). Two servers on the one sfsim
// org stand for two orgs whose Ids collide, as a sandbox's do with
// production's.

#[pgrx::pg_schema]
mod tests {
    use crate::db_tests::support::*;
    use pgrx::prelude::*;

    fn one<T: IntoDatum + FromDatum>(sql: &str) -> Option<T> {
        Spi::get_one::<T>(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn run(sql: &str) {
        Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    #[pg_test]
    fn two_orgs_share_one_partitioned_copy() {
        create_server("sha", "");
        create_server("shb", "");
        run("CREATE SCHEMA shared");
        run("SELECT salesforce.sync_enable('sha', 'Campaign', 'shared.campaign', '1 hour', '{\"fields\": [\"Name\"], \"shared\": true}')");
        // The second server's sync finds the shared table and adds its partition.
        run("SELECT salesforce.sync_enable('shb', 'Campaign', 'shared.campaign', '1 hour', '{\"fields\": [\"Name\"]}')");
        assert_eq!(
            one::<String>("SELECT string_agg(c.relname::text, ',' ORDER BY c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'shared.campaign'::regclass").as_deref(),
            Some("campaign__sha,campaign__shb")
        );
        assert_eq!(sync_now("sha", "Campaign").4, None);
        assert_eq!(sync_now("shb", "Campaign").4, None);
        assert_eq!(
            one::<String>("SELECT string_agg(_org || ' ' || n, ',' ORDER BY _org) FROM (SELECT _org, count(*) n FROM shared.campaign GROUP BY _org) x").as_deref(),
            Some("sha 20,shb 20"),
            "every row kept, the Ids colliding"
        );
        assert_eq!(
            one::<i64>("SELECT count(DISTINCT id) FROM shared.campaign"),
            Some(20)
        );
        // A resync of one org leaves the other's rows as they were.
        let before = one::<String>("SELECT string_agg(xmin::text, ',' ORDER BY id) FROM shared.campaign WHERE _org = 'shb'");
        run("CALL salesforce.resync('sha', 'Campaign')");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM shared.campaign WHERE _org = 'sha'"),
            Some(20)
        );
        assert_eq!(
            one::<String>("SELECT string_agg(xmin::text, ',' ORDER BY id) FROM shared.campaign WHERE _org = 'shb'"),
            before,
            "the other org's rows were not touched"
        );
        // Write-through reaches the writer's partition of the shared copy.
        run("CREATE SCHEMA sha_remote");
        run("IMPORT FOREIGN SCHEMA salesforce LIMIT TO (campaign) FROM SERVER sha INTO sha_remote");
        let id = one::<String>(
            "INSERT INTO sha_remote.campaign (name) VALUES ('Shared launch') RETURNING id",
        )
        .unwrap();
        assert_eq!(
            one::<String>(&format!(
                "SELECT string_agg(_org, ',') FROM shared.campaign WHERE id = '{id}'"
            ))
            .as_deref(),
            Some("sha")
        );
        // Dropping one org's partition ends its sync, and only its.
        run("DROP TABLE shared.campaign__shb");
        assert_eq!(
            one::<String>("SELECT string_agg(server::text, ',') FROM salesforce.syncs WHERE object = 'Campaign' AND server IN ('sha', 'shb')").as_deref(),
            Some("sha")
        );
        assert_eq!(sync_now("sha", "Campaign").4, None);
        run("DELETE FROM sha_remote.campaign WHERE name = 'Shared launch'");
    }
}
