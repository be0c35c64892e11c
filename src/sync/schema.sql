-- Sync configuration and state, one row per synced object and owner.
-- Users cannot write the extension's tables: its functions do, as the
-- extension's owner, after checking what the caller may do
-- (docs/security.md). Each role reads only its own syncs and runs.
CREATE TABLE @extschema@.syncs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    server name NOT NULL,
    object text NOT NULL,
    -- The copy's names as last seen; the copy itself is target_relid.
    target_schema name NOT NULL,
    target_table name NOT NULL,
    every interval NOT NULL CHECK (every >= interval '1 second' AND every <= interval '1 year'),
    options jsonb NOT NULL DEFAULT '{}',
    -- API names copied, and their local columns, in the same order.
    fields text[] NOT NULL,
    columns text[] NOT NULL,
    -- The role that made the sync: it runs with that role's user mapping,
    -- and its copy is written as that role.
    owner oid NOT NULL,
    enabled boolean NOT NULL DEFAULT true,
    stage text NOT NULL DEFAULT 'backfill' CHECK (stage IN ('backfill', 'resync', 'incremental')),
    -- Backfill checkpoint: the last Id copied, in Id order.
    backfill_after text,
    backfill_total bigint,
    backfill_rows bigint NOT NULL DEFAULT 0,
    -- Highest SystemModstamp copied, and how far getDeleted has been read.
    cursor timestamptz,
    deleted_cursor timestamptz,
    next_due timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Bulk backfill checkpoint: the query job, the locator of the results
    -- page being read (NULL: the first) and how many of its rows are stored.
    bulk_job text,
    bulk_locator text,
    bulk_page_rows bigint NOT NULL DEFAULT 0,
    -- Whether rows this backfill reads may be in the copy already (a job was
    -- replaced), so they are upserted rather than inserted.
    backfill_overlaps boolean NOT NULL DEFAULT false,
    -- When formula fields were last read again (or by the backfill).
    formulas_refreshed_at timestamptz,
    -- The copy by OID (an ordinary table the owner owns), and a resync's
    -- staging table.
    target_relid oid NOT NULL,
    staging_relid oid,
    -- Why the worker stopped running the sync (its owner, server access or
    -- copy failed the checks); cleared when they pass again.
    paused_reason text,
    -- The copy's rows, counted by runs (after a change, and every few
    -- minutes), and when.
    row_count bigint,
    row_count_at timestamptz,
    -- Why Change Data Capture cannot keep the copy current (the org has not
    -- selected the object), as checked by sync_enable and each stream start.
    stream_warning text,
    UNIQUE (server, object, owner)
);

-- The log: one row per run, updated as the run goes.
CREATE TABLE @extschema@.sync_runs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sync_id bigint REFERENCES @extschema@.syncs ON DELETE SET NULL,
    server name NOT NULL,
    object text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('backfill', 'incremental', 'resync', 'stream')),
    status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed', 'throttled')),
    started_by text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    rows_upserted bigint NOT NULL DEFAULT 0,
    rows_deleted bigint NOT NULL DEFAULT 0,
    api_requests bigint NOT NULL DEFAULT 0,
    cursor_from timestamptz,
    cursor_to timestamptz,
    error text,
    notes text[] NOT NULL DEFAULT '{}',
    -- Records read from Salesforce; rows_upserted counts only those written.
    rows_read bigint NOT NULL DEFAULT 0,
    -- A stream session's Change Data Capture events applied to this sync.
    events bigint NOT NULL DEFAULT 0,
    -- The sync's owner: who may read the run.
    owner oid NOT NULL,
    -- A failed run's error as it was raised: its SQLSTATE and hint.
    error_sqlstate text,
    error_hint text
);
CREATE INDEX sync_runs_by_sync ON @extschema@.sync_runs (sync_id, id DESC);
CREATE INDEX sync_runs_by_server ON @extschema@.sync_runs (server, started_at);

-- API pacing per server, shared by every backend and the worker.
CREATE TABLE @extschema@.pacing (
    server name PRIMARY KEY,
    tokens double precision NOT NULL,
    refilled_at_ms bigint NOT NULL,
    org_used bigint,
    org_max bigint,
    observed_at timestamptz,
    -- Since when the worker's circuit breaker keeps the server's syncs
    -- waiting (it does not answer), and its last error.
    unreachable_since timestamptz,
    unreachable_error text
);

-- API requests of runs trimmed from sync_runs within the last day, by
-- server and hour, so sync_status still counts them.
CREATE TABLE @extschema@.api_usage (
    server name NOT NULL,
    hour timestamptz NOT NULL,
    requests bigint NOT NULL,
    PRIMARY KEY (server, hour)
);
REVOKE ALL ON @extschema@.api_usage FROM PUBLIC;

-- Change Data Capture: the sync worker's event stream per server and owner
-- (Salesforce sends each user what that user may see).
CREATE TABLE @extschema@.streams (
    server name NOT NULL,
    owner oid NOT NULL,
    -- The last event applied, in the same transaction: where a stream resumes.
    replay_id bytea,
    status text NOT NULL DEFAULT 'starting' CHECK (status IN ('starting', 'streaming', 'failed')),
    events bigint NOT NULL DEFAULT 0,
    last_event_at timestamptz,
    last_commit_at timestamptz,
    error text,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The last keepalive, which Salesforce sends when no event is pending:
    -- the stream was current then.
    heard_at timestamptz,
    PRIMARY KEY (server, owner)
);

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

CREATE FUNCTION @extschema@._server_option(server name, option text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT o.option_value
    FROM pg_catalog.pg_foreign_server s, pg_catalog.pg_options_to_table(s.srvoptions) o
    WHERE s.srvname = server AND o.option_name = option
$$;

-- Each role's syncs (a superuser's: all), with their last runs and the
-- server's budget. Figures come from the extension's tables and the
-- catalog: reading the view runs no code of any copy's.
CREATE VIEW @extschema@.sync_status WITH (security_barrier = true) AS
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
GRANT SELECT ON @extschema@.sync_status TO PUBLIC;

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

-- The procedures below commit between steps, so they can neither pin
-- their search path nor run as another role: they only call the
-- extension's functions, by qualified names, and those check the caller,
-- pin the path and switch roles themselves.

-- Runs a sync to completion in this session, committing after every page
-- (when called outside a transaction block), and returns its log row.
CREATE PROCEDURE @extschema@.sync_now(
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

-- Runs every enabled sync of a server that the caller may run to
-- completion in this session, side by side, their polls sharing composite
-- calls as the worker's do; committing after every step (when called
-- outside a transaction block). Each sync gets its own row in sync_runs;
-- one failing does not stop the others.
CREATE PROCEDURE @extschema@.sync_now(server name)
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

-- Reloads every record into a new copy, then replaces the table's contents
-- in one transaction.
CREATE PROCEDURE @extschema@.resync(
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
