-- Queued writes (salesforce.write_mode = 'queued', salesforce.enqueue):
-- stored by the transaction that queues them, so they commit or roll back
-- with it, and delivered by the sync worker after commit. Users read their
-- own through queued_writes and manage them through retry_queued and
-- discard_queued; no user writes this table.
CREATE TABLE @extschema@.outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The role that queued the write: delivered with its user mapping.
    owner oid NOT NULL,
    -- The server's name; text, not name: 64 bytes less in each row and in
    -- each entry of outbox_to_send, which every queued write pays for.
    server text COLLATE "C" NOT NULL,
    object text NOT NULL,
    -- insert, upsert, update or delete; publish for a platform event
    -- published at COMMIT (delivered already). The extension is this table's only
    -- writer and keeps to these values and the states below; no CHECK, as
    -- each queued write would pay for its evaluation.
    operation text NOT NULL,
    -- The fields sent (an update's and a delete's Id is record_id).
    record jsonb NOT NULL,
    -- An upsert's external id field.
    key text,
    -- The record's Id: the one updated or deleted, or the one delivery made.
    record_id text,
    -- pending -> sending -> delivered | failed | unknown; discarded by hand.
    -- A publish whose answer never came goes back to pending, with
    -- look_back_from, and is unknown only when the bus cannot tell.
    -- unresolved: left in Salesforce by a transaction that did not commit,
    -- beyond the API to undo; a person settles it, then discards it.
    state text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    error_code text,
    error text,
    queued_at timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT '-infinity',
    sent_at timestamptz,
    done_at timestamptz,
    -- Set on what the worker queued for a transaction that sent writes in
    -- statement or commit mode and did not commit: which one.
    origin text,
    -- An update or delete of the record an earlier queued insert creates
    -- (enqueue's id_of): it waits for that write, and takes its Id.
    depends_on bigint,
    -- Captured from a read-write copy: the sync whose copy it changed; for
    -- an update, the copy's SystemModstamp it was made against, and, when
    -- Salesforce had changed the record since, the values it replaced.
    sync_id bigint,
    seen_stamp timestamptz,
    -- The copy's values of the fields the update changes, as they were.
    seen_values jsonb,
    conflict jsonb,
    -- A platform event whose publish never answered (the worker stopped,
    -- the connection was lost): when that publish went. It is looked for
    -- on the bus, after the last event known to come before it, and
    -- published again only if it is not there.
    look_back_from timestamptz
);
CREATE INDEX outbox_to_send ON @extschema@.outbox (server, owner, id)
    WHERE state IN ('pending', 'sending');
CREATE INDEX outbox_done ON @extschema@.outbox (done_at)
    WHERE state IN ('delivered', 'discarded');
CREATE INDEX outbox_waiting ON @extschema@.outbox (depends_on)
    WHERE depends_on IS NOT NULL;
ALTER TABLE @extschema@.outbox ENABLE ROW LEVEL SECURITY;
CREATE POLICY outbox_of_own_roles ON @extschema@.outbox FOR SELECT
    USING (pg_catalog.pg_has_role(owner, 'USAGE'));
REVOKE ALL ON @extschema@.outbox FROM PUBLIC;
GRANT SELECT ON @extschema@.outbox TO PUBLIC;

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
