-- 0.2.0: Bulk API 2.0 backfills keep their checkpoint with the sync.
ALTER TABLE @extschema@.syncs
    ADD COLUMN bulk_job text,
    ADD COLUMN bulk_locator text,
    ADD COLUMN bulk_page_rows bigint NOT NULL DEFAULT 0,
    ADD COLUMN backfill_overlaps boolean NOT NULL DEFAULT false;
