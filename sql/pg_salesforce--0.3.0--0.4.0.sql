-- 0.4.0: every sync of a server run together (their polls sharing
-- composite calls), and formula fields read again on a schedule.
CREATE FUNCTION @extschema@."_sync_step_together"(
	"run_ids" bigint[]
) RETURNS bool
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', '_sync_step_together_wrapper';

ALTER TABLE @extschema@.syncs ADD COLUMN formulas_refreshed_at timestamptz;

-- Runs every enabled sync of a server to completion in this session, side by
-- side, their polls sharing composite calls as the worker's do.
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

-- The view shows when formulas were last refreshed, as in a fresh install.
CREATE OR REPLACE VIEW @extschema@.sync_status AS
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
       s.formulas_refreshed_at
FROM @extschema@.syncs s
LEFT JOIN LATERAL (SELECT r.* FROM @extschema@.sync_runs r WHERE r.sync_id = s.id ORDER BY r.id DESC LIMIT 1) last ON true
LEFT JOIN LATERAL (SELECT r.started_at FROM @extschema@.sync_runs r WHERE r.sync_id = s.id AND r.status = 'succeeded' ORDER BY r.id DESC LIMIT 1) ok ON true
LEFT JOIN LATERAL (SELECT coalesce(sum(r.api_requests), 0) AS requests FROM @extschema@.sync_runs r WHERE r.server = s.server AND r.started_at > now() - interval '1 day') used ON true
LEFT JOIN @extschema@.pacing p ON p.server = s.server;
