//! Write-through: writes made through a foreign table reach the writing
//! role's own copy of the same object in the same transaction, so reads of
//! the copy see them at once and lose them if the transaction rolls back.
//! Other roles' copies of the object catch up on their next run: one role's
//! copy can neither block another's writes nor be written by them.
//!
//! Created and updated records are read back from Salesforce, which fills in
//! what the write did not name (SystemModstamp, formulas, defaults); deleted
//! ones leave the copy, or are marked deleted in a soft-delete copy.

use super::rows::Rows;
use super::store::{self, SyncRow};
use crate::access;
use crate::catalog;
use crate::connection;
use crate::error::{Error, Result};
use chrono::Utc;
use pgrx::pg_sys::Oid;
use salesforce_core::sync::definition::{self, SyncOptions};
use salesforce_core::write::chunk::CHUNK;
use salesforce_core::write::journal::{Done, Target};

/// What applied writes leave to do to one object's copy. The last write to
/// a record decides.
#[derive(Debug, Default, PartialEq)]
pub struct CopyChanges {
    /// Created or updated: read back and store.
    pub refresh: Vec<String>,
    /// Deleted: remove (or mark deleted).
    pub remove: Vec<String>,
}

pub fn changes_by_target(done: &[Done]) -> Vec<(Target, CopyChanges)> {
    let mut out: Vec<(Target, CopyChanges)> = Vec::new();
    for d in done {
        let (target, id, removed) = match d {
            Done::Created { target, id } | Done::Updated { target, id, .. } => (target, id, false),
            Done::Deleted { target, id } => (target, id, true),
            // Bulk writes reach the copy at the sync's next run.
            Done::Bulk { .. } => continue,
        };
        let i = match out.iter().position(|(t, _)| t == target) {
            Some(i) => i,
            None => {
                out.push((target.clone(), CopyChanges::default()));
                out.len() - 1
            }
        };
        let changes = &mut out[i].1;
        changes.refresh.retain(|r| r != id);
        changes.remove.retain(|r| r != id);
        if removed {
            changes.remove.push(id.clone());
        } else {
            changes.refresh.push(id.clone());
        }
    }
    out
}

/// The writing role's sync of the target's object, if it has one. Read as
/// the extension's owner, since writers need no rights on `salesforce.syncs`.
fn sync_of(target: &Target) -> Result<Option<SyncRow>> {
    let server = catalog::server_name(Oid::from(target.server));
    let writer = Oid::from(target.user);
    access::as_extension(|| {
        let own = store::syncs_of_object(&server, &target.object)?
            .into_iter()
            .find(|(_, owner)| *owner == writer);
        match own {
            Some((id, _)) => store::load_sync(id).map(Some),
            None => Ok(None),
        }
    })
}

fn update_copy(target: &Target, sync: &SyncRow, changes: CopyChanges) -> Result<()> {
    let soft_delete = SyncOptions::parse(&sync.options)?.soft_delete;
    let (server, user) = (Oid::from(target.server), Oid::from(target.user));
    let object = connection::describe(server, user, &sync.object)?;
    let fields = definition::present_fields(&sync.fields, &sync.columns, &object);
    let names: Vec<String> = fields.iter().map(|f| f.field.clone()).collect();
    let mut rows = Rows::new(&fields, soft_delete);
    let mut remove = changes.remove;
    for ids in changes.refresh.chunks(CHUNK) {
        let records =
            connection::with_session(server, user, |s| s.retrieve(&sync.object, ids, &names))?;
        for (id, record) in ids.iter().zip(records) {
            match record {
                Some(r) => rows.push(&r, None)?,
                // Gone already, say by a trigger in Salesforce.
                None => remove.push(id.clone()),
            }
        }
    }
    let copy = sync.target();
    copy.upsert_rows(&rows)?;
    copy.delete_rows(sync.id_column(), soft_delete, &remove, Utc::now())
        .map(|_| ())
}

/// Applies writes Salesforce accepted to the local copies of their objects.
pub fn apply(done: &[Done]) -> Result<()> {
    for (target, changes) in changes_by_target(done) {
        let copy_error = |table: Option<String>, cause: Error| Error::LocalCopy {
            object: target.object.clone(),
            table,
            cause: Box::new(cause),
        };
        let sync = sync_of(&target).map_err(|e| copy_error(None, e))?;
        if let Some(sync) = sync {
            update_copy(&target, &sync, changes)
                .map_err(|e| copy_error(Some(sync.target().name()), e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact() -> Target {
        Target {
            server: 1,
            user: 10,
            object: "Contact".into(),
        }
    }

    #[test]
    fn the_last_write_to_a_record_decides() {
        let lead = Target {
            object: "Lead".into(),
            ..contact()
        };
        let done = vec![
            Done::Created {
                target: contact(),
                id: "003A".into(),
            },
            Done::Updated {
                target: contact(),
                id: "003B".into(),
                prior: Default::default(),
            },
            Done::Deleted {
                target: contact(),
                id: "003A".into(),
            },
            Done::Deleted {
                target: lead.clone(),
                id: "00QA".into(),
            },
            Done::Updated {
                target: contact(),
                id: "003B".into(),
                prior: Default::default(),
            },
        ];
        assert_eq!(
            changes_by_target(&done),
            vec![
                (
                    contact(),
                    CopyChanges {
                        refresh: vec!["003B".into()],
                        remove: vec!["003A".into()],
                    }
                ),
                (
                    lead,
                    CopyChanges {
                        refresh: vec![],
                        remove: vec!["00QA".into()],
                    }
                ),
            ]
        );
    }
}
