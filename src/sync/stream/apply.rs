//! Change events applied to the copies, in the order Salesforce committed
//! them, by the rules polls follow: a row never goes back to an older
//! version (by SystemModstamp), and a change that alters nothing writes
//! nothing.

use super::super::copy_table::CopyTable;
use super::super::rows::Rows;
use crate::error::{Error, Result};
use pgrx::PgSqlErrorCode;
use salesforce_core::cdc::{ChangeEvent, ChangeType};
use salesforce_core::sync::definition::SyncedField;
use salesforce_core::values::datetime_to_rest;
use serde_json::{Map, Value as Json};
use std::collections::HashMap;

/// A sync whose copy the stream keeps.
pub struct Target {
    pub sync_id: i64,
    /// Its stream session's row in `sync_runs`.
    pub run_id: i64,
    pub object: String,
    pub copy: CopyTable,
    pub id_column: String,
    pub soft_delete: bool,
    /// The synced fields Salesforce still has.
    pub fields: Vec<SyncedField>,
}

impl Target {
    pub fn follows(&self, event: &ChangeEvent) -> bool {
        self.object.eq_ignore_ascii_case(&event.entity)
    }
}

/// Records re-read after gap events, by id; None where Salesforce no
/// longer has the record.
pub type Reread = HashMap<String, Option<Map<String, Json>>>;

/// What a batch did to one target.
#[derive(Default)]
pub struct Counts {
    pub events: i64,
    pub upserted: i64,
    pub deleted: i64,
}

pub fn is_gap(t: &ChangeType) -> bool {
    matches!(
        t,
        ChangeType::GapCreate
            | ChangeType::GapUpdate
            | ChangeType::GapDelete
            | ChangeType::GapUndelete
    )
}

/// The event's values for the fields the target copies, as a record of
/// `id`, stamped with the commit time.
fn partial_rows(target: &Target, event: &ChangeEvent, id: &str) -> Result<Rows> {
    let fields: Vec<SyncedField> = target
        .fields
        .iter()
        .filter(|f| {
            matches!(f.field.as_str(), "Id" | "SystemModstamp")
                || (f.field == "IsDeleted" && event.change_type != ChangeType::Update)
                || event
                    .fields
                    .iter()
                    .any(|e| e.eq_ignore_ascii_case(&f.field))
        })
        .cloned()
        .collect();
    let mut record = Map::new();
    for f in &fields {
        let value = match f.field.as_str() {
            "Id" => Json::String(id.to_string()),
            "SystemModstamp" => datetime_to_rest(event.commit_timestamp),
            "IsDeleted" => Json::Bool(false),
            name => event
                .values
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .unwrap_or(Json::Null),
        };
        record.insert(f.field.clone(), value);
    }
    let soft = target.soft_delete && event.change_type != ChangeType::Update;
    let mut rows = Rows::new(&fields, soft);
    rows.push(&record, None)?;
    Ok(rows)
}

/// Applies one event to one target's copy. A GAP_OVERFLOW makes the sync
/// due for a poll; the caller reports which.
pub fn apply(target: &Target, event: &ChangeEvent, reread: &Reread) -> Result<Counts> {
    let mut counts = Counts {
        events: 1,
        ..Counts::default()
    };
    let delete = |ids: &[String], at| {
        target
            .copy
            .delete_rows(&target.id_column, target.soft_delete, ids, at)
    };
    match &event.change_type {
        ChangeType::Create | ChangeType::Undelete => {
            for id in &event.record_ids {
                counts.upserted += target.copy.upsert_rows(&partial_rows(target, event, id)?)?;
            }
        }
        ChangeType::Update => {
            for id in &event.record_ids {
                counts.upserted += target
                    .copy
                    .update_changed_rows(&partial_rows(target, event, id)?)?;
            }
        }
        ChangeType::Delete => counts.deleted += delete(&event.record_ids, event.commit_timestamp)?,
        t if is_gap(t) => {
            let mut rows = Rows::new(&target.fields, target.soft_delete);
            let mut gone = Vec::new();
            for id in &event.record_ids {
                match reread.get(id) {
                    Some(Some(record)) => rows.push(record, None)?,
                    Some(None) => gone.push(id.clone()),
                    None => {
                        return Err(Error::sql(
                            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                            format!("{id} of a gap event was not read again"),
                        ))
                    }
                }
            }
            counts.upserted += target.copy.upsert_rows(&rows)?;
            counts.deleted += delete(&gone, event.commit_timestamp)?;
        }
        _ => {}
    }
    Ok(counts)
}
