//! Changing a sync in place: how often it runs, and its options. What a
//! change needs happens here (new columns, the read-write triggers); the
//! rest takes effect at the sync's next run.

use super::api::{check_cdc_selection, find_sync, raise, refuse_on_standby};
use super::lock::lock_for_transaction;
use super::store::{self, SyncRow};
use crate::access;
use crate::catalog;
use crate::connection;
use crate::error::{Error, OrRaise, Result};
use pgrx::datum::Interval;
use pgrx::pg_sys::Oid;
use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode};
use salesforce_core::sync::definition::{
    check_every, synced_fields, BackfillApi, SyncOptions, SyncedField,
};
use serde_json::Value as Json;

/// The options after a change: each key given replaces the stored one, and
/// a key given as null goes back to its default.
fn merged(stored: &Json, change: &Json) -> Result<Json> {
    let Some(change) = change.as_object() else {
        return Err(Error::sql(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "sync options must be a JSON object",
        ));
    };
    let mut options = stored.as_object().cloned().unwrap_or_default();
    for (key, value) in change {
        if value.is_null() {
            options.remove(key);
        } else {
            options.insert(key.clone(), value.clone());
        }
    }
    Ok(Json::Object(options))
}

/// Options that shape the copy's table: a change needs a new table.
fn refuse_reshaping(before: &SyncOptions, after: &SyncOptions, sync: &SyncRow) {
    let changed = if before.shared != after.shared {
        "shared"
    } else if before.soft_delete != after.soft_delete {
        "soft_delete"
    } else {
        return;
    };
    raise(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("the sync option \"{changed}\" of {} cannot change in place: it shapes the copy's table", sync.describe()),
        Some(&format!(
            "salesforce.sync_disable('{}', '{}'), then salesforce.sync_enable(...) with the new options into a new table.",
            sync.server, sync.object
        )),
    )
}

/// The fields `wanted` as the copy keeps them: a field it copies already
/// keeps its column; a new one gets a column, which must not be taken.
fn fields_after(
    sync: &SyncRow,
    wanted: Vec<SyncedField>,
) -> Result<(Vec<SyncedField>, Vec<SyncedField>)> {
    let mut kept = Vec::with_capacity(wanted.len());
    let mut added = Vec::new();
    for mut f in wanted {
        match sync
            .fields
            .iter()
            .position(|s| s.eq_ignore_ascii_case(&f.field))
        {
            Some(i) => {
                f.column = sync.columns[i].clone();
                kept.push(f);
            }
            None => {
                // A column a user added is not taken over.
                if sync.columns.contains(&f.column)
                    || catalog::has_column(sync.target().relid, &f.column)
                {
                    return Err(Error::sql(
                        PgSqlErrorCode::ERRCODE_DUPLICATE_COLUMN,
                        format!(
                            "field {} would be copied into column {}, which another field has",
                            f.field, f.column
                        ),
                    ));
                }
                added.push(f.clone());
                kept.push(f);
            }
        }
    }
    Ok((kept, added))
}

/// A new list of fields: columns for the fields added, in the copy and in
/// a resync's staging table. Fields left out keep their columns, no
/// longer updated.
fn change_fields(sync: &SyncRow, server: Oid, fields: &[String]) -> Result<()> {
    access::check_server_use(server, sync.owner())?;
    let describe = connection::with_session(server, sync.owner(), |s| s.describe(&sync.object))?;
    let wanted = synced_fields(&describe, Some(fields))
        .map_err(|m| Error::sql(PgSqlErrorCode::ERRCODE_FDW_COLUMN_NAME_NOT_FOUND, m))?;
    let (kept, added) = fields_after(sync, wanted)?;
    if !added.is_empty() {
        sync.target().add_columns(&added)?;
        // A staging table dropped meanwhile is made again by the next run.
        if let Some(staging) = sync
            .staging()
            .filter(|t| access::table_name(t.relid).is_some())
        {
            staging.add_columns(&added)?;
        }
    }
    super::seen::forget(sync.id);
    access::as_extension(|| {
        store::set_fields(
            sync.id,
            kept.iter().map(|f| f.field.clone()).collect(),
            kept.iter().map(|f| f.column.clone()).collect(),
        )
    })
}

/// Read-write on or off: the copy's triggers, as its owner.
fn change_write(sync: &SyncRow, write: bool) -> Result<()> {
    let copy = sync.target();
    let name = access::check_table(copy.relid, copy.owner, "the copy")?;
    access::as_role(copy.owner, || {
        if write {
            crate::delivery::capture::install(&name.qualified(), sync.id)
        } else {
            crate::delivery::capture::remove(&name.qualified())
        }
    })
}

/// Changes how often a sync runs and its options, keeping its copy and
/// where it is. Options given are merged into the stored ones (null
/// removes one). New fields get their columns now, filled for rows that
/// change from the next run on; `salesforce.resync()` fills them for
/// every row.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn sync_alter(
    server: &str,
    object: &str,
    every: default!(Option<Interval>, "NULL"),
    options: default!(Option<JsonB>, "NULL"),
) {
    refuse_on_standby();
    access::pinned(store::check_installed_version).or_raise();
    let found = find_sync(server, object);
    lock_for_transaction(found.id);
    let sync = access::as_extension(|| store::load_sync(found.id)).or_raise();
    if let Some(e) = &every {
        check_every(e.months(), e.days(), e.micros()).or_raise();
    }
    let before = SyncOptions::parse(&sync.options).or_raise();
    let stored = match &options {
        Some(change) => merged(&sync.options, &change.0).or_raise(),
        None => sync.options.clone(),
    };
    let after = SyncOptions::parse(&stored).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            e.message,
            e.hint.as_deref(),
        )
    });
    refuse_reshaping(&before, &after, &sync);
    // Looked up only for a change that asks Salesforce.
    let server = || catalog::server_oid(&sync.server).or_raise();
    if after.fields != before.fields {
        if let Some(fields) = &after.fields {
            change_fields(&sync, server(), fields).or_raise();
        }
        // Back to every field: the next run adds the columns missing.
    }
    if after.write != before.write {
        change_write(&sync, after.write).or_raise();
    }
    if after.api != before.api && after.api == BackfillApi::Rest {
        access::as_extension(|| store::leave_bulk_job(sync.id)).or_raise();
    }
    if after.cdc && !before.cdc {
        let server = server();
        access::check_server_use(server, sync.owner()).or_raise();
        check_cdc_selection(server, sync.owner(), &sync.object, sync.id);
    }
    if !after.cdc {
        access::as_extension(|| store::set_stream_warning(sync.id, None)).or_raise();
    }
    access::as_extension(|| store::alter_sync(sync.id, every, JsonB(stored))).or_raise();
}
