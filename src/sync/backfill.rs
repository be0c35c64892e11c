//! What the Bulk and REST backfills (`backfill_bulk`, `backfill_rest`)
//! share: which of them goes on, where they write, how they store the rows
//! they read, and how a backfill ends.

use super::copy_table::CopyTable;
use super::rows::Rows;
use super::store::{self, Stage, SyncRow};
use super::tally::Tally;
use crate::error::Result;
use chrono::{DateTime, Utc};
use salesforce_core::sync::definition::{BackfillApi, BULK_THRESHOLD};

/// Whether a backfill goes on through Bulk: the Bulk job or REST pages it
/// began with, else the API the `api` option and the record count choose.
pub fn uses_bulk(sync: &SyncRow, api: BackfillApi, bulk_can_select: bool) -> bool {
    if sync.bulk_job.is_some() {
        return true;
    }
    if rest_began(sync) {
        return false;
    }
    match api {
        BackfillApi::Rest => false,
        BackfillApi::Bulk => true,
        BackfillApi::Auto => {
            sync.backfill_total.unwrap_or(0) as u64 >= BULK_THRESHOLD && bulk_can_select
        }
    }
}

/// Whether the checkpoint holds a REST backfill's records already.
pub fn rest_began(sync: &SyncRow) -> bool {
    sync.backfill_rows > 0 || sync.backfill_after.is_some()
}

/// Where a backfill writes: the copy, or a resync's staging table.
fn target(sync: &SyncRow) -> CopyTable {
    match sync.staging() {
        Some(staging) if sync.stage == Stage::Resync => staging,
        _ => sync.target(),
    }
}

/// Stores rows a backfill reads: inserted through COPY, unless an
/// earlier job may have stored some of them already.
pub fn store_rows(rows: &mut Rows, sync: &mut SyncRow, tally: &mut Tally) -> Result<()> {
    tally.rows_read += rows.len() as i64;
    let n = if sync.backfill_overlaps {
        target(sync).upsert_rows(rows)?
    } else {
        target(sync).insert_new_rows(rows)?
    };
    tally.rows_upserted += n;
    sync.backfill_rows += rows.len() as i64;
    Ok(())
}

/// The backfill is done: a resync's copy replaces the old one, and the
/// checkpoint turns to the changes made meanwhile.
pub fn finish(
    sync: &mut SyncRow,
    soft_delete: bool,
    notes: &mut Vec<String>,
    server_now: impl Fn() -> DateTime<Utc>,
) -> Result<()> {
    if let (Stage::Resync, Some(staging)) = (sync.stage, sync.staging()) {
        sync.target()
            .replace_contents(&staging, sync.id_column(), &sync.columns, soft_delete)?;
        store::set_staging(sync.id, None)?;
        sync.staging_relid = None;
        notes.push("the copy was replaced with the reloaded records".into());
    }
    sync.stage = Stage::Incremental;
    sync.backfill_after = None;
    sync.bulk_job = None;
    sync.bulk_locator = None;
    sync.bulk_page_rows = 0;
    sync.backfill_overlaps = false;
    // The backfill read the formulas; they are as fresh as its start, about.
    sync.formulas_refreshed_at = Some(server_now());
    Ok(())
}
