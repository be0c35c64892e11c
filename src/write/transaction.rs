//! Ties Salesforce writes to the PostgreSQL transaction.
//!
//! statement mode: each run of writes is sent as its statement executes and
//! journaled; if the transaction or a savepoint rolls back, created records
//! are deleted and updated fields restored. commit mode: writes are queued
//! and sent just before COMMIT; a rejection makes COMMIT fail, and what was
//! already sent is compensated as above. Either way, whoever registered
//! with `on_applied` (the sync, for its local copies) sees each write as
//! Salesforce applies it.

use crate::connection;
use crate::error::{self, Error, Result};
use pgrx::pg_sys::{self, Oid};
use pgrx::{
    register_subxact_callback, register_xact_callback, PgLogLevel, PgSubXactCallbackEvent,
    PgXactCallbackEvent,
};
use salesforce_core::client::session::{RecordResult, Session};
use salesforce_core::write::chunk::{self, ChunkError};
use salesforce_core::write::journal::{compensation, Done, Journal, Queued, Target};
use salesforce_core::SalesforceError;
use std::cell::{Cell, RefCell};

/// Runs after Salesforce applied writes, inside the transaction; an error
/// fails the statement (or COMMIT), and the abort undoes the writes.
pub type AppliedHook = fn(&[Done]) -> Result<()>;

thread_local! {
    static JOURNAL: RefCell<Journal> = RefCell::new(Journal::default());
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
    static ON_APPLIED: Cell<Option<AppliedHook>> = const { Cell::new(None) };
}

/// Registers what runs after every applied run of writes.
pub fn on_applied(hook: AppliedHook) {
    ON_APPLIED.set(Some(hook));
}

fn subxact() -> u32 {
    unsafe { pg_sys::GetCurrentSubTransactionId() }
}

fn end_of_transaction() {
    JOURNAL.with(|j| j.borrow_mut().clear());
    REGISTERED.set(false);
}

/// Registers this transaction's callbacks the first time it writes.
fn ensure_callbacks() {
    if REGISTERED.replace(true) {
        return;
    }
    register_xact_callback(PgXactCallbackEvent::PreCommit, send_queued_or_fail);
    register_xact_callback(PgXactCallbackEvent::Commit, end_of_transaction);
    register_xact_callback(PgXactCallbackEvent::Abort, || {
        let done = JOURNAL.with(|j| j.borrow_mut().take_done());
        compensate(done, "transaction");
        end_of_transaction();
    });
    register_subxact_callback(PgSubXactCallbackEvent::AbortSub, |sub, _parent| {
        let done = JOURNAL.with(|j| j.borrow_mut().subxact_aborted(sub));
        compensate(done, "savepoint");
    });
    register_subxact_callback(PgSubXactCallbackEvent::CommitSub, |sub, parent| {
        JOURNAL.with(|j| j.borrow_mut().subxact_committed(sub, parent));
    });
}

fn chunk_error(e: ChunkError) -> Error {
    match e {
        ChunkError::Rejected(r) => Error::from(r),
        ChunkError::Salesforce(e) => Error::Salesforce(e),
    }
}

/// Sends writes now (statement mode) and journals them. Returns what
/// Salesforce applied, in order.
pub fn apply(queued: Vec<Queued>) -> Result<Vec<Done>> {
    ensure_callbacks();
    let mut all = Vec::new();
    for run in chunk::runs(queued) {
        let t: &Target = &run[0].target;
        let done = connection::with_session(Oid::from(t.server), Oid::from(t.user), |s| {
            Ok(chunk::send(s, &run))
        })?
        .map_err(chunk_error)?;
        let sub = subxact();
        JOURNAL.with(|j| {
            done.iter()
                .for_each(|d| j.borrow_mut().record(sub, d.clone()))
        });
        // Journaled first: if a hook fails, the abort undoes them.
        if let Some(hook) = ON_APPLIED.get() {
            hook(&done)?;
        }
        all.extend(done);
    }
    Ok(all)
}

/// Queues a write for COMMIT (commit mode).
pub fn queue(q: Queued) {
    ensure_callbacks();
    let sub = subxact();
    JOURNAL.with(|j| j.borrow_mut().queue(sub, q));
}

/// At pre-commit: sends the queue; any failure fails the COMMIT.
fn send_queued_or_fail() {
    let queued = JOURNAL.with(|j| j.borrow_mut().take_queued());
    if queued.is_empty() {
        return;
    }
    // Write-through runs SQL, which needs a snapshot; by pre-commit the
    // statement's is gone.
    unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot()) };
    let sent = apply(queued);
    unsafe { pg_sys::PopActiveSnapshot() };
    if let Err(e) = sent {
        e.raise();
    }
}

fn undo(done: Vec<Done>) -> Vec<String> {
    let plan = compensation(done);
    let mut problems = Vec::new();
    type Call<'a> =
        &'a dyn Fn(&mut Session) -> std::result::Result<Vec<RecordResult>, SalesforceError>;
    let mut run = |t: &Target, what: &str, ids: Vec<String>, call: Call| {
        match connection::with_cached_session(t.server, t.user, |s| s.uninterruptible(call)) {
            Some(Ok(results)) => {
                for (id, r) in ids.iter().zip(&results) {
                    if !r.success {
                        let why = r
                            .errors
                            .first()
                            .map(|e| format!("{}: {}", e.status_code, e.message))
                            .unwrap_or_default();
                        problems.push(format!("{what} {} {id}: {why}", t.object));
                    }
                }
            }
            Some(Err(e)) => problems.push(format!(
                "{what} {} {}: {}",
                t.object,
                ids.join(", "),
                e.message()
            )),
            None => problems.push(format!(
                "{what} {} {}: no connection to Salesforce",
                t.object,
                ids.join(", ")
            )),
        }
    };
    for (t, ids) in plan.deletes {
        for part in ids.chunks(chunk::CHUNK) {
            run(&t, "could not delete created", part.to_vec(), &|s| {
                s.delete(part)
            });
        }
    }
    for (t, records) in plan.restores {
        for part in records.chunks(chunk::CHUNK) {
            let ids = part
                .iter()
                .map(|r| r["id"].as_str().unwrap_or_default().to_string())
                .collect();
            let object = t.object.clone();
            let with_types: Vec<serde_json::Value> = part
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.insert("attributes".into(), serde_json::json!({"type": object}));
                    serde_json::Value::Object(r)
                })
                .collect();
            run(&t, "could not restore updated", ids, &|s| {
                s.update(with_types.clone())
            });
        }
    }
    if !plan.lost.is_empty() {
        let ids: Vec<String> = plan
            .lost
            .iter()
            .map(|(t, id)| format!("{} {id}", t.object))
            .collect();
        problems.push(format!(
            "records deleted in Salesforce cannot be restored through its API and stay in its Recycle Bin: {}",
            ids.join(", ")
        ));
    }
    problems
}

/// Takes back what Salesforce applied, as far as its API allows. Runs while
/// PostgreSQL aborts: it reads no catalog, raises no error, and reports
/// what it could not undo as WARNINGs.
fn compensate(done: Vec<Done>, scope: &str) {
    if done.is_empty() {
        return;
    }
    let count = done.len();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| undo(done))) {
        Ok(problems) if problems.is_empty() => error::notice(
            PgLogLevel::NOTICE,
            &format!("pg_salesforce: the {scope} rolled back; {count} write(s) in Salesforce were undone"),
        ),
        Ok(problems) => {
            for p in problems {
                error::notice(
                    PgLogLevel::WARNING,
                    &format!("pg_salesforce: the {scope} rolled back, but {p}"),
                );
            }
        }
        Err(_) => error::notice(
            PgLogLevel::WARNING,
            &format!("pg_salesforce: the {scope} rolled back; undoing its Salesforce writes failed unexpectedly"),
        ),
    }
}
