-- 0.5.0: Change Data Capture streamed by the sync worker.

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
ALTER TABLE @extschema@.sync_runs DROP CONSTRAINT sync_runs_kind_check;
ALTER TABLE @extschema@.sync_runs ADD CONSTRAINT sync_runs_kind_check CHECK (kind IN ('backfill', 'incremental', 'resync', 'stream'));
ALTER TABLE @extschema@.sync_runs ADD COLUMN events bigint NOT NULL DEFAULT 0;

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
