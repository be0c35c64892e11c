-- Sync configuration and state, one row per synced object.
CREATE TABLE @extschema@.syncs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    server name NOT NULL,
    object text NOT NULL,
    target_schema name NOT NULL,
    target_table name NOT NULL,
    every interval NOT NULL CHECK (every > interval '0'),
    options jsonb NOT NULL DEFAULT '{}',
    -- API names copied, and their local columns, in the same order.
    fields text[] NOT NULL,
    columns text[] NOT NULL,
    -- The role whose user mapping the sync uses.
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
    UNIQUE (server, object),
    UNIQUE (target_schema, target_table)
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
    events bigint NOT NULL DEFAULT 0
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
    observed_at timestamptz
);

-- Change Data Capture: the sync worker's one event stream per server.
CREATE TABLE @extschema@.streams (
    server name PRIMARY KEY,
    -- The last event applied, in the same transaction: where a stream resumes.
    replay_id bytea,
    status text NOT NULL DEFAULT 'starting' CHECK (status IN ('starting', 'streaming', 'failed')),
    events bigint NOT NULL DEFAULT 0,
    last_event_at timestamptz,
    last_commit_at timestamptz,
    error text,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE FUNCTION @extschema@._server_option(server name, option text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT o.option_value
    FROM pg_catalog.pg_foreign_server s, pg_catalog.pg_options_to_table(s.srvoptions) o
    WHERE s.srvname = server AND o.option_name = option
$$;

CREATE FUNCTION @extschema@._table_rows(target_schema name, target_table name) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE n bigint;
BEGIN
    IF to_regclass(format('%I.%I', target_schema, target_table)) IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT count(*) FROM %I.%I', target_schema, target_table) INTO n;
    RETURN n;
END
$$;

CREATE VIEW @extschema@.sync_status AS
SELECT s.id,
       s.server,
       s.object,
       format('%I.%I', s.target_schema, s.target_table) AS target,
       s.enabled,
       s.stage,
       last.id AS last_run_id,
       last.status AS last_status,
       last.finished_at AS last_finished_at,
       last.error AS last_error,
       now() - ok.started_at AS lag,
       @extschema@._table_rows(s.target_schema, s.target_table) AS rows,
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
       st.last_event_at - st.last_commit_at AS stream_lag
FROM @extschema@.syncs s
LEFT JOIN LATERAL (SELECT r.* FROM @extschema@.sync_runs r WHERE r.sync_id = s.id ORDER BY r.id DESC LIMIT 1) last ON true
LEFT JOIN LATERAL (SELECT r.started_at FROM @extschema@.sync_runs r WHERE r.sync_id = s.id AND r.status = 'succeeded' ORDER BY r.id DESC LIMIT 1) ok ON true
LEFT JOIN LATERAL (SELECT coalesce(sum(r.api_requests), 0) AS requests FROM @extschema@.sync_runs r WHERE r.server = s.server AND r.started_at > now() - interval '1 day') used ON true
LEFT JOIN @extschema@.pacing p ON p.server = s.server
LEFT JOIN @extschema@.streams st ON st.server = s.server AND (s.options->>'cdc')::boolean;

-- Runs a sync to completion in this session, committing after every page
-- (when called outside a transaction block), and returns its log row.
CREATE PROCEDURE @extschema@.sync_now(
    server name, object text,
    INOUT run_id bigint DEFAULT NULL, INOUT kind text DEFAULT NULL, INOUT status text DEFAULT NULL,
    INOUT rows_upserted bigint DEFAULT NULL, INOUT rows_deleted bigint DEFAULT NULL,
    INOUT api_requests bigint DEFAULT NULL, INOUT error text DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    sync bigint := @extschema@._sync_id(server, object);
    commits boolean := @extschema@._sync_can_commit();
    more boolean := true;
    failure text;
BEGIN
    -- The same lock the worker takes: one run per sync at a time.
    PERFORM pg_catalog.pg_advisory_lock(pg_catalog.hashtext('pg_salesforce.sync'), sync::int4);
    BEGIN
        run_id := @extschema@._sync_start(sync, 'sync_now');
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM pg_catalog.pg_advisory_unlock(pg_catalog.hashtext('pg_salesforce.sync'), sync::int4);
        RAISE;
    END;
    IF commits THEN COMMIT; END IF;
    WHILE more LOOP
        BEGIN
            more := @extschema@._sync_step(run_id);
        EXCEPTION WHEN OTHERS OR query_canceled THEN
            failure := SQLERRM;
            more := false;
        END;
        IF commits THEN COMMIT; END IF;
    END LOOP;
    PERFORM @extschema@._sync_finish(run_id, failure);
    PERFORM pg_catalog.pg_advisory_unlock(pg_catalog.hashtext('pg_salesforce.sync'), sync::int4);
    IF commits THEN COMMIT; END IF;
    SELECT r.kind, r.status, r.rows_upserted, r.rows_deleted, r.api_requests, r.error
      INTO kind, status, rows_upserted, rows_deleted, api_requests, error
      FROM @extschema@.sync_runs r WHERE r.id = run_id;
    IF failure IS NOT NULL THEN
        RAISE EXCEPTION 'sync of % on server % failed: %', object, server, failure
            USING HINT = format('Run %s in salesforce.sync_runs has the details; the next run resumes where this one stopped.', run_id);
    END IF;
END
$$;

-- Runs every enabled sync of a server to completion in this session, side by
-- side, their polls sharing composite calls as the worker's do; committing
-- after every step (when called outside a transaction block). Each sync gets
-- its own row in sync_runs; one failing does not stop the others.
CREATE PROCEDURE @extschema@.sync_now(server name)
LANGUAGE plpgsql AS $$
DECLARE
    syncs bigint[];
    runs bigint[] := '{}';
    commits boolean := @extschema@._sync_can_commit();
    more boolean := true;
    failure text;
    s bigint;
    failed text;
BEGIN
    SELECT array_agg(y.id ORDER BY y.id) INTO syncs FROM @extschema@.syncs y WHERE y.server = sync_now.server AND y.enabled;
    IF syncs IS NULL THEN
        RAISE EXCEPTION 'server % has no enabled syncs', server
            USING HINT = 'Start with SELECT salesforce.sync_enable(server, object).';
    END IF;
    -- The same locks the worker takes, in one order: one run per sync at a time.
    FOREACH s IN ARRAY syncs LOOP
        PERFORM pg_catalog.pg_advisory_lock(pg_catalog.hashtext('pg_salesforce.sync'), s::int4);
    END LOOP;
    BEGIN
        FOREACH s IN ARRAY syncs LOOP
            runs := runs || @extschema@._sync_start(s, 'sync_now');
        END LOOP;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        FOREACH s IN ARRAY syncs LOOP
            PERFORM pg_catalog.pg_advisory_unlock(pg_catalog.hashtext('pg_salesforce.sync'), s::int4);
        END LOOP;
        RAISE;
    END;
    IF commits THEN COMMIT; END IF;
    WHILE more LOOP
        BEGIN
            more := @extschema@._sync_step_together(runs);
        EXCEPTION WHEN OTHERS OR query_canceled THEN
            failure := SQLERRM;
            more := false;
        END;
        IF commits THEN COMMIT; END IF;
    END LOOP;
    FOREACH s IN ARRAY runs LOOP
        PERFORM @extschema@._sync_finish(s, failure);
    END LOOP;
    FOREACH s IN ARRAY syncs LOOP
        PERFORM pg_catalog.pg_advisory_unlock(pg_catalog.hashtext('pg_salesforce.sync'), s::int4);
    END LOOP;
    IF commits THEN COMMIT; END IF;
    SELECT string_agg(format('%s (run %s): %s', r.object, r.id, r.error), '; ' ORDER BY r.id) INTO failed
      FROM @extschema@.sync_runs r WHERE r.id = ANY (runs) AND r.status = 'failed';
    IF failed IS NOT NULL THEN
        RAISE EXCEPTION 'syncs on server % failed: %', server, failed
            USING HINT = 'salesforce.sync_runs has the details; the next runs resume where these stopped.';
    END IF;
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
    PERFORM @extschema@._sync_request_resync(@extschema@._sync_id(server, object));
    IF @extschema@._sync_can_commit() THEN COMMIT; END IF;
    CALL @extschema@.sync_now(server, object, run_id, kind, status, rows_upserted, rows_deleted, api_requests, error);
END
$$;
