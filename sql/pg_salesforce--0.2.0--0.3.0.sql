-- 0.3.0: any SOQL, the org's limits and an object's fields, from SQL; the
-- sync log counts records read apart from rows written.
CREATE FUNCTION @extschema@."describe"(
	"server" TEXT,
	"object" TEXT
) RETURNS TABLE (
	"name" TEXT,
	"type" TEXT,
	"column_type" TEXT,
	"createable" bool,
	"updateable" bool,
	"nillable" bool,
	"filterable" bool
)
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'describe_object_wrapper';

CREATE FUNCTION @extschema@."limits"(
	"server" TEXT
) RETURNS TABLE (
	"name" TEXT,
	"max" bigint,
	"remaining" bigint
)
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'org_limits_wrapper';

CREATE FUNCTION @extschema@."query"(
	"server" TEXT,
	"soql" TEXT
) RETURNS SETOF jsonb
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'run_query_wrapper';

ALTER TABLE @extschema@.sync_runs ADD COLUMN rows_read bigint NOT NULL DEFAULT 0;

-- The view's last run (r.*) gains rows_read, as in a fresh install.
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
       p.org_max AS org_api_max
FROM @extschema@.syncs s
LEFT JOIN LATERAL (SELECT r.* FROM @extschema@.sync_runs r WHERE r.sync_id = s.id ORDER BY r.id DESC LIMIT 1) last ON true
LEFT JOIN LATERAL (SELECT r.started_at FROM @extschema@.sync_runs r WHERE r.sync_id = s.id AND r.status = 'succeeded' ORDER BY r.id DESC LIMIT 1) ok ON true
LEFT JOIN LATERAL (SELECT coalesce(sum(r.api_requests), 0) AS requests FROM @extschema@.sync_runs r WHERE r.server = s.server AND r.started_at > now() - interval '1 day') used ON true
LEFT JOIN @extschema@.pacing p ON p.server = s.server;
