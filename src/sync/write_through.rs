//! Write-through: writes made through a foreign table reach the local copy
//! of the same object in the same transaction, so reads of the copy see
//! them at once and lose them if the transaction rolls back.
//!
//! Created and updated records are read back from Salesforce, which fills in
//! what the write did not name (SystemModstamp, formulas, defaults); deleted
//! ones leave the copy, or are marked deleted in a soft-delete copy.

use super::definition::{self, SyncOptions};
use super::rows::local_row;
use super::store::{self, SyncRow};
use crate::fdw::connection;
use crate::fdw::SalesforceFdwError;
use crate::write::chunk::CHUNK;
use crate::write::journal::{Done, Target};
use chrono::Utc;
use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::pg_sys::{self, Oid};
use pgrx::{PgTryBuilder, Spi};

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

/// Runs `f` as `user` with only pg_catalog on the search path, as PostgreSQL
/// does for maintenance on behalf of a table's owner: the writer needs no
/// rights on the copy, and cannot slip its own functions into the SQL run.
fn as_user<T>(user: Oid, f: impl FnOnce() -> T) -> T {
    let (mut saved_user, mut saved_context) = (Oid::INVALID, 0);
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        let nest_level = pg_sys::NewGUCNestLevel();
        pg_sys::SetUserIdAndSecContext(
            user,
            saved_context
                | (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION)
                    as i32,
        );
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        // An error inside `f` aborts the (sub)transaction, which restores both.
        let out = f();
        pg_sys::AtEOXact_GUC(true, nest_level);
        pg_sys::SetUserIdAndSecContext(saved_user, saved_context);
        out
    }
}

fn server_name(server: Oid) -> String {
    unsafe { crate::fdw::pg::text_of((*pg_sys::GetForeignServer(server)).servername) }
}

/// Runs SQL, turning a PostgreSQL error into an `Err` with its message, so
/// it can be raised again with what it means for the write.
fn catching<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    PgTryBuilder::new(std::panic::AssertUnwindSafe(f))
        .catch_others(|e| match e {
            CaughtError::PostgresError(r)
            | CaughtError::ErrorReport(r)
            | CaughtError::RustPanic { ereport: r, .. } => Err(r.message().to_string()),
        })
        .execute()
}

/// The sync keeping a copy of the target's object, if any. Read as the
/// extension's owner, since writers need no rights on `salesforce.syncs`.
fn sync_of(target: &Target) -> Result<Option<SyncRow>, String> {
    let owner = Spi::get_one::<Oid>(
        "SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'pg_salesforce'",
    )
    .map_err(|e| e.to_string())?
    .ok_or("the extension has no owner")?;
    let server = server_name(Oid::from(target.server));
    as_user(owner, || {
        catching(|| match store::sync_id(&server, &target.object)? {
            Some(id) => store::load_sync(id).map(Some),
            None => Ok(None),
        })
    })
}

fn message(e: SalesforceFdwError) -> String {
    ErrorReport::from(e).message().to_string()
}

fn update_copy(target: &Target, sync: &SyncRow, changes: CopyChanges) -> Result<(), String> {
    let soft_delete = SyncOptions::parse(&sync.options)
        .map_err(|e| e.message)?
        .soft_delete;
    let (server, user) = (Oid::from(target.server), Oid::from(target.user));
    let object = connection::describe(server, user, &sync.object).map_err(message)?;
    let fields = definition::present_fields(&sync.fields, &sync.columns, &object);
    let names: Vec<String> = fields.iter().map(|f| f.field.clone()).collect();
    let mut rows = Vec::new();
    let mut remove = changes.remove;
    for ids in changes.refresh.chunks(CHUNK) {
        let records =
            connection::with_session(server, user, |s| s.retrieve(&sync.object, ids, &names))
                .map_err(message)?;
        for (id, record) in ids.iter().zip(records) {
            match record {
                Some(r) => rows.push(local_row(&fields, &r, soft_delete.then_some(None))?),
                // Gone already, say by a trigger in Salesforce.
                None => remove.push(id.clone()),
            }
        }
    }
    as_user(Oid::from(sync.owner), || {
        catching(|| {
            store::upsert_rows(&sync.target(), &fields, soft_delete, &rows)?;
            store::delete_rows(
                &sync.target(),
                sync.id_column(),
                soft_delete,
                &remove,
                Utc::now(),
            )
            .map(|_| ())
        })
    })
}

/// Applies writes Salesforce accepted to the local copies of their objects.
pub fn apply(done: &[Done]) -> Result<(), SalesforceFdwError> {
    for (target, changes) in changes_by_target(done) {
        let copy_error = |table: Option<String>, cause: String| SalesforceFdwError::LocalCopy {
            object: target.object.clone(),
            table,
            cause,
        };
        let sync = sync_of(&target).map_err(|e| copy_error(None, e))?;
        if let Some(sync) = sync {
            update_copy(&target, &sync, changes).map_err(|e| copy_error(Some(sync.target()), e))?;
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
