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

CREATE OR REPLACE VIEW @extschema@.queued_writes WITH (security_barrier = true) AS
SELECT o.id, o.owner::regrole AS role, o.server, o.object, o.operation, o.key,
       o.record_id AS salesforce_id, o.state, o.attempts, o.error_code, o.error,
       o.queued_at, o.next_attempt_at, o.sent_at, o.done_at, o.record, o.origin, o.depends_on
  FROM @extschema@.outbox o
 WHERE pg_catalog.pg_has_role(o.owner, 'USAGE');

DROP FUNCTION @extschema@."enqueue"(TEXT, TEXT, TEXT, jsonb, TEXT);
CREATE FUNCTION @extschema@."enqueue"(
	"server" TEXT, /* &str */
	"object" TEXT, /* &str */
	"operation" TEXT, /* &str */
	"record" jsonb, /* pgrx::datum::json::JsonB */
	"key" TEXT DEFAULT NULL, /* core::option::Option<&str> */
	"id_of" bigint DEFAULT NULL /* core::option::Option<i64> */
) RETURNS bigint /* i64 */
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'enqueue_wrapper';
