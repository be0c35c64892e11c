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
