-- 0.6.0: privileges. Users no longer write the extension's tables; its
-- functions check the caller and write them as the extension's owner. Each
-- sync belongs to the role that made it, runs as that role, and holds its
-- copy by OID. Existing syncs keep their owners and go on running.

-- Whatever was granted on the extension's tables and view goes: users get
-- SELECT, filtered to their own rows, and nothing else.
DO $$
DECLARE
    rel regclass;
    grantee oid;
BEGIN
    FOREACH rel IN ARRAY ARRAY['@extschema@.syncs', '@extschema@.sync_runs', '@extschema@.pacing',
                               '@extschema@.streams', '@extschema@.sync_status']::regclass[] LOOP
        FOR grantee IN
            SELECT DISTINCT a.grantee FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
             WHERE c.oid = rel AND a.grantee <> c.relowner
        LOOP
            IF grantee = 0 THEN
                EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM PUBLIC', rel);
            ELSE
                EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %I', rel, pg_catalog.pg_get_userbyid(grantee));
            END IF;
        END LOOP;
    END LOOP;
END
$$;

-- syncs: the copy by OID, pauses, a stored row count, bounded `every`,
-- and one sync of an object per role.
ALTER TABLE @extschema@.syncs ADD COLUMN target_relid oid;
UPDATE @extschema@.syncs
   SET target_relid = coalesce(pg_catalog.to_regclass(pg_catalog.format('%I.%I', target_schema, target_table))::oid, 0);
ALTER TABLE @extschema@.syncs ALTER COLUMN target_relid SET NOT NULL;
-- A resync under way kept its new copy in "<table>__resync"; the next run
-- makes a staging table of its own if that one is not the owner's.
ALTER TABLE @extschema@.syncs ADD COLUMN staging_relid oid;
UPDATE @extschema@.syncs s
   SET staging_relid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', s.target_schema, pg_catalog.left(s.target_table || '__resync', 63)))::oid
 WHERE s.stage = 'resync';
UPDATE @extschema@.syncs SET staging_relid = NULL WHERE staging_relid = target_relid;
ALTER TABLE @extschema@.syncs ADD COLUMN paused_reason text;
ALTER TABLE @extschema@.syncs ADD COLUMN row_count bigint;
ALTER TABLE @extschema@.syncs ADD COLUMN row_count_at timestamptz;
ALTER TABLE @extschema@.syncs DROP CONSTRAINT syncs_every_check;
UPDATE @extschema@.syncs SET every = greatest(least(every, interval '1 year'), interval '1 second');
ALTER TABLE @extschema@.syncs ADD CONSTRAINT syncs_every_check
    CHECK (every >= interval '1 second' AND every <= interval '1 year');
ALTER TABLE @extschema@.syncs DROP CONSTRAINT syncs_server_object_key;
ALTER TABLE @extschema@.syncs DROP CONSTRAINT syncs_target_schema_target_table_key;
ALTER TABLE @extschema@.syncs ADD CONSTRAINT syncs_server_object_owner_key UNIQUE (server, object, owner);

-- sync_runs: each run's owner, who may read it.
ALTER TABLE @extschema@.sync_runs ADD COLUMN owner oid;
UPDATE @extschema@.sync_runs r SET owner = s.owner FROM @extschema@.syncs s WHERE s.id = r.sync_id;
UPDATE @extschema@.sync_runs
   SET owner = (SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_salesforce')
 WHERE owner IS NULL;
ALTER TABLE @extschema@.sync_runs ALTER COLUMN owner SET NOT NULL;
-- A failed run's error as it was raised, not only its message.
ALTER TABLE @extschema@.sync_runs ADD COLUMN error_sqlstate text;
ALTER TABLE @extschema@.sync_runs ADD COLUMN error_hint text;

-- pacing: a server the worker's circuit breaker keeps waiting.
ALTER TABLE @extschema@.pacing ADD COLUMN unreachable_since timestamptz;
ALTER TABLE @extschema@.pacing ADD COLUMN unreachable_error text;

-- streams: one per server and owner; a server's stream was its first
-- streaming sync's owner's.
ALTER TABLE @extschema@.streams ADD COLUMN owner oid;
UPDATE @extschema@.streams st
   SET owner = coalesce(
       (SELECT s.owner FROM @extschema@.syncs s
         WHERE s.server = st.server AND (s.options->>'cdc')::boolean ORDER BY s.id LIMIT 1),
       (SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_salesforce'));
ALTER TABLE @extschema@.streams ALTER COLUMN owner SET NOT NULL;
ALTER TABLE @extschema@.streams DROP CONSTRAINT streams_pkey;
ALTER TABLE @extschema@.streams ADD PRIMARY KEY (server, owner);

-- The web-server flow's pending authorizations: the state given out, and
-- the PKCE code verifier kept here, for one use within ten minutes. No
-- user reads or writes it: authorize_url and complete_authorization do.
CREATE TABLE @extschema@.authorizations (
    state text PRIMARY KEY,
    server name NOT NULL,
    role oid NOT NULL,
    verifier text NOT NULL,
    redirect_uri text NOT NULL,
    expires_at timestamptz NOT NULL
);
REVOKE ALL ON @extschema@.authorizations FROM PUBLIC;

ALTER TABLE @extschema@.syncs ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.sync_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.pacing ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.streams ENABLE ROW LEVEL SECURITY;
CREATE POLICY syncs_of_own_roles ON @extschema@.syncs FOR SELECT
    USING (pg_catalog.pg_has_role(owner, 'USAGE'));
CREATE POLICY runs_of_own_roles ON @extschema@.sync_runs FOR SELECT
    USING (pg_catalog.pg_has_role(owner, 'USAGE'));
REVOKE ALL ON @extschema@.syncs, @extschema@.sync_runs, @extschema@.pacing, @extschema@.streams FROM PUBLIC;
GRANT SELECT ON @extschema@.syncs, @extschema@.sync_runs TO PUBLIC;

-- Functions: a pinned search path everywhere; the procedures' steps check
-- the caller; a copy's rows are counted by the worker, never by the view.
ALTER FUNCTION @extschema@._server_option(name, text) SET search_path = pg_catalog, pg_temp;
DROP FUNCTION @extschema@._sync_id(text, text);
DROP FUNCTION @extschema@._sync_start(bigint, text);
DROP FUNCTION @extschema@._sync_finish(bigint, text);
DROP FUNCTION @extschema@._sync_request_resync(bigint);
ALTER FUNCTION @extschema@._sync_step(bigint) SET search_path TO pg_catalog, pg_temp;
ALTER FUNCTION @extschema@._sync_step_together(bigint[]) SET search_path TO pg_catalog, pg_temp;
ALTER FUNCTION @extschema@._sync_can_commit() SET search_path TO pg_catalog, pg_temp;
ALTER FUNCTION @extschema@.sync_disable(text, text, bool) SET search_path TO pg_catalog, pg_temp;
ALTER FUNCTION @extschema@.query(text, text) SET search_path TO pg_catalog, pg_temp;
ALTER FUNCTION @extschema@.limits(text) SET search_path TO pg_catalog, pg_temp;
ALTER FUNCTION @extschema@.describe(text, text) SET search_path TO pg_catalog, pg_temp;

CREATE FUNCTION @extschema@."_sync_begin"(
	"server" TEXT, /* &str */
	"object" TEXT /* &str */
) RETURNS bigint /* i64 */
STRICT
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_sync_begin_wrapper';

CREATE FUNCTION @extschema@."_sync_begin_server"(
	"server" TEXT /* &str */
) RETURNS bigint[] /* alloc::vec::Vec<i64> */
STRICT
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_sync_begin_server_wrapper';

CREATE FUNCTION @extschema@."_sync_finish"(
	"run_ids" bigint[] /* alloc::vec::Vec<i64> */
) RETURNS void
STRICT
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'finish_runs_wrapper';

CREATE FUNCTION @extschema@."_sync_outcome"(
	"run_ids" bigint[], /* alloc::vec::Vec<i64> */
	"server" TEXT /* &str */
) RETURNS TABLE (
	"run_id" bigint,  /* i64 */
	"kind" TEXT,  /* alloc::string::String */
	"status" TEXT,  /* alloc::string::String */
	"rows_upserted" bigint,  /* i64 */
	"rows_deleted" bigint,  /* i64 */
	"api_requests" bigint,  /* i64 */
	"error" TEXT  /* core::option::Option<alloc::string::String> */
)
STRICT
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_sync_outcome_wrapper';

CREATE FUNCTION @extschema@."_sync_request_resync"(
	"server" TEXT, /* &str */
	"object" TEXT /* &str */
) RETURNS void
STRICT
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'request_resync_wrapper';

-- A sync by its id, for a superuser to remove the sync of a role that
-- no longer exists.
CREATE FUNCTION @extschema@."sync_disable"(
	"sync_id" bigint, /* i64 */
	"drop_table" bool DEFAULT false /* bool */
) RETURNS void
STRICT
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'sync_disable_by_id_wrapper';

-- A dropped copy ends its sync: dropping one org's partition of a shared
-- copy (a customer who leaves) or any copy removes the sync in the same
-- transaction; its runs stay in the log. A dropped staging table is
-- forgotten (the next run makes another).
CREATE FUNCTION @extschema@._copies_dropped() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM @extschema@.syncs s
     USING pg_catalog.pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objsubid = 0
       AND s.target_relid = d.objid;
    UPDATE @extschema@.syncs s SET staging_relid = NULL
      FROM pg_catalog.pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objsubid = 0
       AND s.staging_relid = d.objid;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._copies_dropped() FROM PUBLIC;
CREATE EVENT TRIGGER pg_salesforce_copies_dropped ON sql_drop
    EXECUTE FUNCTION @extschema@._copies_dropped();

-- Customers connect their own org: the web-server flow with PKCE.
CREATE FUNCTION @extschema@."authorize_url"(
	"server" TEXT, /* &str */
	"redirect_uri" TEXT, /* &str */
	"scopes" TEXT[] DEFAULT NULL /* core::option::Option<alloc::vec::Vec<alloc::string::String>> */
) RETURNS TEXT /* alloc::string::String */
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'authorize_url_wrapper';

CREATE FUNCTION @extschema@."complete_authorization"(
	"state" TEXT, /* &str */
	"code" TEXT /* &str */
) RETURNS TEXT /* alloc::string::String */
STRICT
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'complete_authorization_wrapper';

-- The procedures call only qualified names (they commit, so they cannot
-- pin a search path of their own).
CREATE OR REPLACE PROCEDURE @extschema@.sync_now(
    server name, object text,
    INOUT run_id bigint DEFAULT NULL, INOUT kind text DEFAULT NULL, INOUT status text DEFAULT NULL,
    INOUT rows_upserted bigint DEFAULT NULL, INOUT rows_deleted bigint DEFAULT NULL,
    INOUT api_requests bigint DEFAULT NULL, INOUT error text DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    commits pg_catalog.bool := @extschema@._sync_can_commit();
    more pg_catalog.bool := true;
BEGIN
    run_id := @extschema@._sync_begin(server, object);
    IF commits THEN COMMIT; END IF;
    WHILE more LOOP
        more := @extschema@._sync_step(run_id);
        IF commits THEN COMMIT; END IF;
    END LOOP;
    PERFORM @extschema@._sync_finish(ARRAY[run_id]);
    IF commits THEN COMMIT; END IF;
    SELECT o.kind, o.status, o.rows_upserted, o.rows_deleted, o.api_requests, o.error
      INTO kind, status, rows_upserted, rows_deleted, api_requests, error
      FROM @extschema@._sync_outcome(ARRAY[run_id], server) o;
END
$$;

CREATE OR REPLACE PROCEDURE @extschema@.sync_now(server name)
LANGUAGE plpgsql AS $$
DECLARE
    runs pg_catalog.int8[];
    commits pg_catalog.bool := @extschema@._sync_can_commit();
    more pg_catalog.bool := true;
BEGIN
    runs := @extschema@._sync_begin_server(server);
    IF commits THEN COMMIT; END IF;
    WHILE more LOOP
        more := @extschema@._sync_step_together(runs);
        IF commits THEN COMMIT; END IF;
    END LOOP;
    PERFORM @extschema@._sync_finish(runs);
    IF commits THEN COMMIT; END IF;
    PERFORM @extschema@._sync_outcome(runs, server);
END
$$;

CREATE OR REPLACE PROCEDURE @extschema@.resync(
    server name, object text,
    INOUT run_id bigint DEFAULT NULL, INOUT kind text DEFAULT NULL, INOUT status text DEFAULT NULL,
    INOUT rows_upserted bigint DEFAULT NULL, INOUT rows_deleted bigint DEFAULT NULL,
    INOUT api_requests bigint DEFAULT NULL, INOUT error text DEFAULT NULL)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM @extschema@._sync_request_resync(server, object);
    IF @extschema@._sync_can_commit() THEN COMMIT; END IF;
    CALL @extschema@.sync_now(server, object, run_id, kind, status, rows_upserted, rows_deleted, api_requests, error);
END
$$;

-- sync_status: each role's own syncs; rows as the worker counted them.
CREATE OR REPLACE VIEW @extschema@.sync_status WITH (security_barrier = true) AS
SELECT s.id,
       s.server,
       s.object,
       coalesce((SELECT format('%I.%I', n.nspname, c.relname)
                   FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.oid = s.target_relid),
                format('%I.%I', s.target_schema, s.target_table)) AS target,
       s.enabled,
       s.stage,
       last.id AS last_run_id,
       last.status AS last_status,
       last.finished_at AS last_finished_at,
       last.error AS last_error,
       now() - ok.started_at AS lag,
       s.row_count AS rows,
       CASE WHEN s.stage = 'incremental' THEN 100.0
            WHEN coalesce(s.backfill_total, 0) = 0 THEN NULL
            ELSE round(100.0 * least(s.backfill_rows, s.backfill_total) / s.backfill_total, 1)
       END AS backfill_percent,
       s.next_due,
       used.requests AS api_requests_24h,
       coalesce(@extschema@._server_option(s.server, 'max_requests_per_day')::bigint, 28800) - used.requests AS api_requests_left,
       p.org_used AS org_api_used,
       p.org_max AS org_api_max,
       s.formulas_refreshed_at,
       st.status AS stream_status,
       st.last_commit_at AS stream_last_commit_at,
       st.last_event_at - st.last_commit_at AS stream_lag,
       pg_catalog.pg_get_userbyid(s.owner) AS owner,
       s.paused_reason,
       CASE WHEN s.paused_reason LIKE 'disconnected: %' THEN s.paused_reason
            WHEN p.unreachable_since IS NOT NULL
            THEN format('unreachable since %s: %s', p.unreachable_since, p.unreachable_error)
            ELSE 'ok'
       END AS server_status
FROM @extschema@.syncs s
LEFT JOIN LATERAL (SELECT r.* FROM @extschema@.sync_runs r WHERE r.sync_id = s.id ORDER BY r.id DESC LIMIT 1) last ON true
LEFT JOIN LATERAL (SELECT r.started_at FROM @extschema@.sync_runs r WHERE r.sync_id = s.id AND r.status = 'succeeded' ORDER BY r.id DESC LIMIT 1) ok ON true
LEFT JOIN LATERAL (SELECT coalesce(sum(r.api_requests), 0) AS requests FROM @extschema@.sync_runs r WHERE r.server = s.server AND r.started_at > now() - interval '1 day') used ON true
LEFT JOIN @extschema@.pacing p ON p.server = s.server
LEFT JOIN @extschema@.streams st ON st.server = s.server AND st.owner = s.owner AND (s.options->>'cdc')::boolean
WHERE coalesce(pg_catalog.pg_has_role(s.owner, 'USAGE'), false)
   OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER);
GRANT SELECT ON @extschema@.sync_status TO PUBLIC;
DROP FUNCTION @extschema@._table_rows(name, name);
