//! The copy follows its object's fields as a describe tells them: a new
//! field gets a new column (in a resync's staging table too), and a field
//! gone from Salesforce keeps its column, no longer updated.

use super::store::{Stage, SyncRow};
use crate::error::Result;
use salesforce_core::client::describe::ObjectDescribe;
use salesforce_core::sync::definition::{self, SyncOptions};

/// Adds the columns of `object`'s new fields to the sync and its tables,
/// and notes what changed.
pub fn follow(
    object: &ObjectDescribe,
    sync: &mut SyncRow,
    options: &SyncOptions,
    notes: &mut Vec<String>,
) -> Result<()> {
    let drift = definition::drift(
        object,
        &sync.fields,
        &sync.columns,
        options.fields.is_none(),
    );
    if !drift.added.is_empty() {
        let mut tables = vec![sync.target()];
        if sync.stage == Stage::Resync {
            tables.extend(sync.staging());
        }
        for table in tables {
            table.add_columns(&drift.added)?;
        }
        super::seen::forget(sync.id);
        for f in &drift.added {
            notes.push(format!(
                "new field {} copied into new column {}",
                f.field, f.column
            ));
            sync.fields.push(f.field.clone());
            sync.columns.push(f.column.clone());
        }
    }
    for f in &drift.removed {
        notes.push(format!(
            "field {f} is gone from Salesforce; its column stays and is no longer updated"
        ));
    }
    Ok(())
}
