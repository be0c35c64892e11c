-- 0.8.0: queued writes wait for the Id of an earlier queued insert
-- (enqueue's id_of); what a transaction that sent writes in statement or commit mode
-- and did not commit left in Salesforce reaches the outbox: undos delivered
-- by the worker, and what only a person can settle ('unresolved').
-- The extension is the outbox's only writer and keeps to its operations
-- and states (now also 'unresolved'); the CHECKs cost each queued write
-- their evaluation, about a third of adding it.
ALTER TABLE @extschema@.outbox DROP CONSTRAINT outbox_operation_check;
ALTER TABLE @extschema@.outbox DROP CONSTRAINT outbox_state_check;
ALTER TABLE @extschema@.outbox ADD COLUMN origin text;
-- enqueue(..., id_of): an update or delete of the record an earlier queued
-- insert creates waits for it.
ALTER TABLE @extschema@.outbox ADD COLUMN depends_on bigint;
CREATE INDEX outbox_waiting ON @extschema@.outbox (depends_on)
    WHERE depends_on IS NOT NULL;
-- Read-write copies (sync option "write"): the sync whose copy a write
-- was captured from; for an update, the copy's SystemModstamp it was made
-- against, and the values it replaced when Salesforce had changed the
-- record since.
ALTER TABLE @extschema@.outbox ADD COLUMN sync_id bigint;
ALTER TABLE @extschema@.outbox ADD COLUMN seen_stamp timestamptz;
ALTER TABLE @extschema@.outbox ADD COLUMN seen_values jsonb;
ALTER TABLE @extschema@.outbox ADD COLUMN conflict jsonb;

-- The server's name as text: 64 bytes less in each row and index entry.
DROP VIEW @extschema@.queued_writes;
ALTER TABLE @extschema@.outbox ALTER COLUMN server TYPE text COLLATE "C";
CREATE VIEW @extschema@.queued_writes WITH (security_barrier = true) AS
SELECT o.id, o.owner::regrole AS role, o.server, o.object, o.operation, o.key,
       o.record_id AS salesforce_id, o.state, o.attempts, o.error_code, o.error,
       o.queued_at, o.next_attempt_at, o.sent_at, o.done_at, o.record, o.origin, o.depends_on,
       o.sync_id,
       -- The copy's row it came from: 'queued:' and the id until an insert
       -- is delivered and its Id written back.
       CASE WHEN o.sync_id IS NULL THEN NULL
            WHEN o.operation IN ('insert', 'upsert') AND o.state <> 'delivered' THEN 'queued:' || o.id
            WHEN o.record_id IS NULL OR o.record_id = '' THEN 'queued:' || o.depends_on
            ELSE o.record_id END AS copy_row_id,
       o.conflict
  FROM @extschema@.outbox o
 WHERE pg_catalog.pg_has_role(o.owner, 'USAGE');
GRANT SELECT ON @extschema@.queued_writes TO PUBLIC;

DROP FUNCTION @extschema@."enqueue"(TEXT, TEXT, TEXT, jsonb, TEXT);
CREATE FUNCTION @extschema@."enqueue"(
	"server" TEXT, /* &str */
	"object" TEXT, /* &str */
	"operation" TEXT, /* &str */
	"record" jsonb, /* pg_salesforce::delivery::api::GivenJsonb */
	"key" TEXT DEFAULT NULL, /* core::option::Option<&str> */
	"id_of" bigint DEFAULT NULL /* core::option::Option<i64> */
) RETURNS bigint /* i64 */
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'enqueue_wrapper';

-- The trigger of a read-write copy (sync option "write": true).
CREATE FUNCTION @extschema@."capture_copy_write"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'capture_copy_write_wrapper';

-- The everyday operator (issue 25): a bounded run log, lag per mode, the
-- CDC selection checked, foreign table options checked against columns.
ALTER TABLE @extschema@.syncs ADD COLUMN stream_warning text;
ALTER TABLE @extschema@.streams ADD COLUMN heard_at timestamptz;
-- API requests of runs trimmed from sync_runs within the last day, by
-- server and hour, so sync_status still counts them.
CREATE TABLE @extschema@.api_usage (
    server name NOT NULL,
    hour timestamptz NOT NULL,
    requests bigint NOT NULL,
    PRIMARY KEY (server, hour)
);
REVOKE ALL ON @extschema@.api_usage FROM PUBLIC;

-- Each role's syncs (a superuser's: all), with their last runs and the
-- server's budget. Figures come from the extension's tables and the
-- catalog: reading the view runs no code of any copy's.
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
       -- How far behind Salesforce the copy may be: for a sync the stream
       -- is applying now, since the later of the last event's commit and the
       -- last keepalive (sent when nothing is pending); else since the start
       -- of the last successful run.
       now() - CASE WHEN st.status = 'streaming' AND s.stream_warning IS NULL
                         AND s.enabled AND s.stage = 'incremental' AND s.paused_reason IS NULL
                         AND EXISTS (SELECT 1 FROM @extschema@.sync_runs r
                                      WHERE r.sync_id = s.id AND r.kind = 'stream' AND r.status = 'running')
                    THEN greatest(ok.started_at, st.last_commit_at, st.heard_at)
                    ELSE ok.started_at END AS lag,
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
       END AS server_status,
       s.stream_warning
FROM @extschema@.syncs s
LEFT JOIN LATERAL (SELECT r.* FROM @extschema@.sync_runs r WHERE r.sync_id = s.id ORDER BY r.id DESC LIMIT 1) last ON true
LEFT JOIN LATERAL (SELECT r.started_at FROM @extschema@.sync_runs r WHERE r.sync_id = s.id AND r.status = 'succeeded' ORDER BY r.id DESC LIMIT 1) ok ON true
LEFT JOIN LATERAL (SELECT coalesce(sum(r.api_requests), 0)
                          + coalesce((SELECT sum(u.requests) FROM @extschema@.api_usage u WHERE u.server = s.server AND u.hour >= date_trunc('hour', now() - interval '1 day')), 0) AS requests
                     FROM @extschema@.sync_runs r WHERE r.server = s.server AND r.started_at > now() - interval '1 day') used ON true
LEFT JOIN @extschema@.pacing p ON p.server = s.server
LEFT JOIN @extschema@.streams st ON st.server = s.server AND st.owner = s.owner AND (s.options->>'cdc')::boolean
WHERE coalesce(pg_catalog.pg_has_role(s.owner, 'USAGE'), false)
   OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER);

-- A foreign table's rowid_column and upsert_key must name one of its
-- columns (upsert_key: a column, or the Salesforce field of one), checked
-- when the table is made or altered: the options' validator sees the
-- options alone, not the table.
CREATE FUNCTION @extschema@._check_foreign_table_options() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    bad record;
BEGIN
    SELECT c.objid::regclass AS tab, o.option_name, o.option_value INTO bad
      FROM pg_catalog.pg_event_trigger_ddl_commands() c
      JOIN pg_catalog.pg_foreign_table ft ON ft.ftrelid = c.objid
      JOIN pg_catalog.pg_foreign_server s ON s.oid = ft.ftserver
      JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw AND w.fdwname = 'salesforce'
      CROSS JOIN LATERAL pg_catalog.pg_options_to_table(ft.ftoptions) o
     WHERE c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND o.option_name IN ('rowid_column', 'upsert_key')
       AND NOT EXISTS (
           SELECT 1 FROM pg_catalog.pg_attribute a
            WHERE a.attrelid = ft.ftrelid AND a.attnum > 0 AND NOT a.attisdropped
              AND (a.attname = o.option_value
                   OR (o.option_name = 'upsert_key'
                       AND coalesce((SELECT pg_catalog.lower(f.option_value) = pg_catalog.lower(o.option_value)
                                       FROM pg_catalog.pg_options_to_table(a.attfdwoptions) f
                                      WHERE f.option_name = 'field'),
                                    -- no field option: the field named as the column, ignoring
                                    -- case, or whose snake_case name the column is
                                    pg_catalog.replace(pg_catalog.lower(a.attname), '_', '')
                                      = pg_catalog.replace(pg_catalog.lower(o.option_value), '_', '')))))
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'HV005', -- fdw_column_name_not_found
            MESSAGE = pg_catalog.format('%s %L of foreign table %s names none of its columns',
                                        bad.option_name, bad.option_value, bad.tab),
            HINT = CASE bad.option_name
                   WHEN 'rowid_column' THEN 'Name the column that holds the record Id, such as id.'
                   ELSE 'Name the column of an external id field, or its Salesforce field.' END;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._check_foreign_table_options() FROM PUBLIC;
CREATE EVENT TRIGGER pg_salesforce_foreign_table_options ON ddl_command_end
    WHEN TAG IN ('CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE', 'ALTER TABLE', 'IMPORT FOREIGN SCHEMA')
    EXECUTE FUNCTION @extschema@._check_foreign_table_options();

CREATE FUNCTION @extschema@."refresh_describe"(
	"server" TEXT, /* &str */
	"object" TEXT DEFAULT NULL /* core::option::Option<&str> */
) RETURNS void
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'refresh_describe_wrapper';

CREATE FUNCTION @extschema@."sync_alter"(
	"server" TEXT, /* &str */
	"object" TEXT, /* &str */
	"every" interval DEFAULT NULL, /* core::option::Option<pgrx::datum::interval::Interval> */
	"options" jsonb DEFAULT NULL /* core::option::Option<pgrx::datum::json::JsonB> */
) RETURNS void
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'sync_alter_wrapper';

-- A queued platform event whose publish never answered: when that publish
-- went. It is looked for on the bus before it is published again.
ALTER TABLE @extschema@.outbox ADD COLUMN look_back_from timestamptz;

-- Platform events published at COMMIT, each listed in the outbox as a
-- delivered 'publish' with its replay id.
CREATE FUNCTION @extschema@."publish"(
	"server" TEXT, /* &str */
	"topic" TEXT, /* &str */
	"payload" jsonb /* pgrx::datum::json::JsonB */
) RETURNS void
STRICT
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'publish_wrapper';

-- Platform event feeds: a channel's events into a table, through the worker.
CREATE TABLE @extschema@.event_feeds (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner oid NOT NULL,
    server text NOT NULL,
    topic text NOT NULL,
    target regclass NOT NULL,
    replay_id bytea,
    status text NOT NULL DEFAULT 'starting',
    error text,
    events bigint NOT NULL DEFAULT 0,
    heard_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (server, topic, target)
);
ALTER TABLE @extschema@.event_feeds ENABLE ROW LEVEL SECURITY;
CREATE POLICY event_feeds_of_own_roles ON @extschema@.event_feeds FOR SELECT
    USING (pg_catalog.pg_has_role(owner, 'USAGE'));
REVOKE ALL ON @extschema@.event_feeds FROM PUBLIC;
GRANT SELECT ON @extschema@.event_feeds TO PUBLIC;

CREATE FUNCTION @extschema@."event_feed"(
	"server" TEXT, /* &str */
	"topic" TEXT, /* &str */
	"target" TEXT /* &str */
) RETURNS bigint
STRICT
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'event_feed_wrapper';

CREATE FUNCTION @extschema@."event_feed_drop"(
	"server" TEXT, /* &str */
	"topic" TEXT /* &str */
) RETURNS bigint
STRICT
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'event_feed_drop_wrapper';
