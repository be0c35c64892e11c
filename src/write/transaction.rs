//! Ties Salesforce writes to the PostgreSQL transaction.
//!
//! statement mode: each run of writes is sent as its statement executes and
//! journaled; if the transaction or a savepoint rolls back, created records
//! are deleted and updated fields restored. commit mode: writes are queued
//! and sent just before COMMIT; a rejection makes COMMIT fail, and what was
//! already sent is compensated as above. Either way, whoever registered
//! with `on_applied` (the sync, for its local copies) sees each write as
//! Salesforce applies it.

use super::sent_file;
use crate::connection;
use crate::error::{self, Error, Result};
use pgrx::pg_sys::{self, Oid};
use pgrx::{
    register_subxact_callback, register_xact_callback, PgLogLevel, PgSubXactCallbackEvent,
    PgXactCallbackEvent,
};
use salesforce_core::client::session::{RecordResult, Session};
use salesforce_core::write::bulk;
use salesforce_core::write::chunk::{self, ChunkError};
use salesforce_core::write::journal::{compensation, Done, Journal, Op, Queued, Target};
use salesforce_core::write::sent_log::{self, Entry, Outstanding};
use salesforce_core::SalesforceError;
use std::cell::{Cell, RefCell};

/// Runs after Salesforce applied writes, inside the transaction; an error
/// fails the statement (or COMMIT), and the abort undoes the writes.
pub type AppliedHook = fn(&[Done]) -> Result<()>;

thread_local! {
    static JOURNAL: RefCell<Journal> = RefCell::new(Journal::default());
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
    static ON_APPLIED: Cell<Option<AppliedHook>> = const { Cell::new(None) };
    /// The call sent and not answered yet: while it is, what it did is unknown.
    static UNANSWERED: RefCell<Option<(Target, Vec<Op>)>> = const { RefCell::new(None) };
    /// What rolled-back savepoints left in Salesforce: their undo failed,
    /// or their call was never answered. Queued at commit for the worker.
    static LEFT_BY_SAVEPOINTS: RefCell<Outstanding> = RefCell::new(Outstanding::default());
}

/// Runs of writes one statement made to one target, in order: a new run
/// starts where the target, the kind of write or the statement changes
/// (row numbers start again at each statement).
fn statement_runs(queued: Vec<Queued>) -> Vec<Vec<Queued>> {
    let mut groups: Vec<Vec<Queued>> = Vec::new();
    for q in queued {
        match groups.last_mut() {
            Some(g)
                if g[0].target == q.target
                    && g[0].op.kind() == q.op.kind()
                    && g.last().is_some_and(|last| last.row < q.row) =>
            {
                g.push(q)
            }
            _ => groups.push(vec![q]),
        }
    }
    groups
}

fn send_bulk(group: &[Queued]) -> Result<()> {
    let mut fields: Vec<String> = Vec::new();
    for f in group
        .iter()
        .filter_map(|q| q.op.fields())
        .flat_map(|m| m.keys())
    {
        if !fields.contains(f) {
            fields.push(f.clone());
        }
    }
    let mut job = super::bulk::BulkWrite::open(&group[0], &fields)?;
    for q in group {
        job.push(q)?;
    }
    job.finish().map(drop)
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
    UNANSWERED.take();
    LEFT_BY_SAVEPOINTS.take();
    REGISTERED.set(false);
}

/// Registers this transaction's callbacks the first time it writes.
pub fn ensure_callbacks() {
    if REGISTERED.replace(true) {
        return;
    }
    register_xact_callback(PgXactCallbackEvent::PreCommit, send_queued_or_fail);
    register_xact_callback(PgXactCallbackEvent::Commit, || {
        sent_file::remove();
        end_of_transaction();
    });
    register_xact_callback(PgXactCallbackEvent::Abort, || {
        let mut done = JOURNAL.with(|j| j.borrow_mut().take_done());
        done.extend(LEFT_BY_SAVEPOINTS.take().applied);
        let failed = compensate(done.clone(), "transaction");
        leave_log(&done, &failed);
        end_of_transaction();
    });
    // Writes sent or queued cannot wait in a prepared transaction: its
    // COMMIT PREPARED could come from any session, or never.
    register_xact_callback(PgXactCallbackEvent::PrePrepare, || {
        let queued = JOURNAL.with(|j| j.borrow().has_writes());
        if queued || sent_file::exists() {
            Error::sql(
                pgrx::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "cannot PREPARE a transaction that wrote to Salesforce",
            )
            .raise();
        }
    });
    register_subxact_callback(PgSubXactCallbackEvent::AbortSub, |sub, _parent| {
        let done = JOURNAL.with(|j| j.borrow_mut().subxact_aborted(sub));
        if done.is_empty() && UNANSWERED.with(|u| u.borrow().is_none()) {
            return;
        }
        let failed = compensate(done.clone(), "savepoint");
        let undone = sent_log::undone(&done, &failed);
        let left_of_bulk = sent_log::left_of_bulk(&done, &failed);
        if !undone.is_empty() {
            let _ = sent_file::append(&Entry::Undone(undone), false);
        }
        if !left_of_bulk.is_empty() {
            let _ = sent_file::append(&Entry::Applied(left_of_bulk.clone()), false);
        }
        let unanswered = UNANSWERED.take();
        LEFT_BY_SAVEPOINTS.with(|l| {
            let mut l = l.borrow_mut();
            l.applied.extend(left_of_bulk);
            l.applied.extend(
                done.into_iter()
                    .filter(|d| !matches!(d, Done::Bulk { .. }) && failed.contains(&key_of(d))),
            );
            if let Some((target, ops)) = unanswered {
                l.unknown
                    .extend(ops.into_iter().map(|op| (target.clone(), op)));
            }
        });
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

fn key_of(d: &Done) -> (Target, String) {
    let (target, id) = d.record();
    (target.clone(), id.to_string())
}

/// At the end of a transaction that rolled back: its log goes if, read
/// again, it says the rollback undid everything sent, else it stays for
/// the worker.
fn leave_log(done: &[Done], failed: &[(Target, String)]) {
    UNANSWERED.take();
    if !sent_file::exists() {
        return;
    }
    let undone = sent_log::undone(done, failed);
    let left = sent_log::left_of_bulk(done, failed);
    let recorded = undone.is_empty() || sent_file::append(&Entry::Undone(undone), true).is_ok();
    let recorded =
        recorded && (left.is_empty() || sent_file::append(&Entry::Applied(left), true).is_ok());
    if recorded && sent_file::outstanding().is_some_and(|o| o.is_empty()) {
        sent_file::remove();
        return;
    }
    sent_file::keep();
    error::notice(
        PgLogLevel::WARNING,
        "pg_salesforce: what this transaction sent to Salesforce and could not undo is left to the sync worker, which undoes it or lists it in salesforce.queued_writes",
    );
}

/// Logs a call before it goes and its answer when it comes, outside the
/// transaction, so that a crash in between leaves a trace.
fn send_logged(
    session: &mut Session,
    run: &[Queued],
) -> std::result::Result<Vec<Done>, ChunkError> {
    let target = run[0].target.clone();
    let ops: Vec<Op> = run.iter().map(|q| q.op.clone()).collect();
    let sending = Entry::Sending {
        target: target.clone(),
        ops: ops.clone(),
    };
    if let Err(e) = sent_file::append(&sending, true) {
        return Err(ChunkError::Salesforce(SalesforceError::Config(e.message())));
    }
    UNANSWERED.set(Some((target, ops)));
    let sent = chunk::send(session, run);
    let answered = match &sent {
        Ok(done) => Some(Entry::Applied(done.clone())),
        Err(ChunkError::Rejected(_)) => Some(Entry::NotApplied),
        Err(ChunkError::Salesforce(e)) if !e.may_have_applied() => Some(Entry::NotApplied),
        Err(ChunkError::Salesforce(_)) => None,
    };
    if let Some(entry) = answered {
        UNANSWERED.take();
        // Not waited for: lost to a crash, the call counts as unanswered.
        let _ = sent_file::append(&entry, false);
    }
    sent
}

/// Sends writes now (statement mode) and journals them. Returns what
/// Salesforce applied, in order.
pub fn apply(queued: Vec<Queued>) -> Result<Vec<Done>> {
    ensure_callbacks();
    let mut all = Vec::new();
    for run in chunk::runs(queued) {
        all.extend(send_run(&run)?);
    }
    Ok(all)
}

/// At COMMIT (commit mode): a statement's run of writes that reached its
/// table's Bulk threshold goes through one ingest job, the others through
/// collections, in order.
fn apply_at_commit(queued: Vec<Queued>) -> Result<()> {
    for group in statement_runs(queued) {
        if group[0].bulk_from.is_some_and(|t| group.len() >= t) {
            send_bulk(&group)?;
        } else {
            apply(group)?;
        }
    }
    Ok(())
}

fn send_run(run: &[Queued]) -> Result<Vec<Done>> {
    let t: &Target = &run[0].target;
    let done = connection::with_session(Oid::from(t.server), Oid::from(t.user), |s| {
        Ok(send_logged(s, run))
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
    Ok(done)
}

/// A call (a Bulk job's close) whose answer has not come: what it did is
/// unknown until `answered`.
pub fn unanswered(target: Target, ops: Vec<Op>) {
    UNANSWERED.set(Some((target, ops)));
}

pub fn answered() {
    UNANSWERED.take();
}

/// Journals what a Bulk job applied, for the abort to take back.
pub fn record_applied(done: Done) {
    ensure_callbacks();
    let sub = subxact();
    JOURNAL.with(|j| j.borrow_mut().record(sub, done));
}

/// Queues a write for COMMIT (commit mode).
pub fn queue(q: Queued) {
    ensure_callbacks();
    let sub = subxact();
    JOURNAL.with(|j| j.borrow_mut().queue(sub, q));
}

/// At pre-commit: sends the queue, and queues for the worker what
/// rolled-back savepoints left in Salesforce; any failure fails the COMMIT.
fn send_queued_or_fail() {
    let queued = JOURNAL.with(|j| j.borrow_mut().take_queued());
    // Read, not taken: should the COMMIT fail after all, the abort still
    // finds them.
    let left = LEFT_BY_SAVEPOINTS.with(|l| {
        let l = l.borrow();
        Outstanding {
            timeline: None,
            applied: l.applied.clone(),
            unknown: l.unknown.clone(),
        }
    });
    if queued.is_empty() && left.is_empty() {
        return;
    }
    // Write-through and the outbox run SQL, which needs a snapshot; by
    // pre-commit the statement's is gone.
    unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot()) };
    let sent = apply_at_commit(queued).and_then(|_| {
        if left.is_empty() {
            return Ok(0);
        }
        let xid = unsafe { pg_sys::GetTopFullTransactionId() }.value;
        crate::delivery::queue_left_behind(
            &sent_log::remedies(left),
            &format!("a savepoint of transaction {xid} rolled back"),
        )
    });
    unsafe { pg_sys::PopActiveSnapshot() };
    if let Err(e) = sent {
        e.raise();
    }
}

/// How long an abort waits for a Bulk delete job; past it, what is left
/// goes to the worker.
const UNDO_PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// Takes back `done`; returns what could not be, and the records it was.
fn undo(done: Vec<Done>) -> (Vec<String>, Vec<(Target, String)>) {
    let plan = compensation(done);
    let mut problems = Vec::new();
    let mut failed: Vec<(Target, String)> = Vec::new();
    let (big_deletes, small_deletes): (Vec<_>, Vec<_>) = plan
        .deletes
        .into_iter()
        .partition(|(_, ids)| ids.len() >= bulk::DEFAULT_THRESHOLD);
    for (t, ids) in big_deletes {
        match connection::with_cached_session(t.server, t.user, |s| {
            s.uninterruptible(|s| bulk::delete_all(s, &t.object, &ids, UNDO_PATIENCE))
        }) {
            Some(Ok(failed_ids)) => {
                if failed_ids.len() > 20 {
                    problems.push(format!(
                        "could not delete {} of the {} records it created; the first: {}",
                        failed_ids.len(),
                        t.object,
                        failed_ids[0].1
                    ));
                } else {
                    for (id, why) in &failed_ids {
                        problems.push(format!("could not delete created {} {id}: {why}", t.object));
                    }
                }
                failed.extend(failed_ids.into_iter().map(|(id, _)| (t.clone(), id)));
            }
            Some(Err(e)) => {
                problems.push(format!(
                    "could not delete the {} {} records it created: {}",
                    ids.len(),
                    t.object,
                    e.message()
                ));
                failed.extend(ids.iter().map(|id| (t.clone(), id.clone())));
            }
            None => {
                problems.push(format!(
                    "could not delete the {} {} records it created: no connection to Salesforce",
                    ids.len(),
                    t.object
                ));
                failed.extend(ids.iter().map(|id| (t.clone(), id.clone())));
            }
        }
    }
    type Call<'a> =
        &'a dyn Fn(&mut Session) -> std::result::Result<Vec<RecordResult>, SalesforceError>;
    let mut run = |t: &Target, what: &str, ids: Vec<String>, call: Call| {
        match connection::with_cached_session(t.server, t.user, |s| s.uninterruptible(call)) {
            Some(Ok(results)) => {
                for (id, r) in ids.iter().zip(&results) {
                    if !r.success {
                        failed.push((t.clone(), id.clone()));
                        let why = r
                            .errors
                            .first()
                            .map(|e| format!("{}: {}", e.status_code, e.message))
                            .unwrap_or_default();
                        problems.push(format!("{what} {} {id}: {why}", t.object));
                    }
                }
            }
            Some(Err(e)) => {
                problems.push(format!(
                    "{what} {} {}: {}",
                    t.object,
                    ids.join(", "),
                    e.message()
                ));
                failed.extend(ids.iter().map(|id| (t.clone(), id.clone())));
            }
            None => {
                problems.push(format!(
                    "{what} {} {}: no connection to Salesforce",
                    t.object,
                    ids.join(", ")
                ));
                failed.extend(ids.iter().map(|id| (t.clone(), id.clone())));
            }
        }
    };
    for (t, ids) in small_deletes {
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
    if !plan.unrestorable.is_empty() {
        let objects: std::collections::BTreeSet<&str> = plan
            .unrestorable
            .iter()
            .map(|(t, _)| t.object.as_str())
            .collect();
        problems.push(format!(
            "{} record(s) of {} updated through a Bulk ingest job keep their new values: a Bulk job's earlier values are not read",
            plan.unrestorable.len(),
            objects.into_iter().collect::<Vec<_>>().join(", ")
        ));
        failed.extend(plan.unrestorable.iter().cloned());
    }
    failed.extend(plan.lost.iter().cloned());
    if !plan.lost.is_empty() {
        let ids: Vec<String> = plan
            .lost
            .iter()
            .take(20)
            .map(|(t, id)| format!("{} {id}", t.object))
            .collect();
        let more = match plan.lost.len() {
            n if n > 20 => format!(" and {} more", n - 20),
            _ => String::new(),
        };
        problems.push(format!(
            "records deleted in Salesforce cannot be restored through its API and stay in its Recycle Bin: {}{more}",
            ids.join(", ")
        ));
    }
    (problems, failed)
}

/// Takes back what Salesforce applied, as far as its API allows. Runs while
/// PostgreSQL aborts: it reads no catalog, raises no error, and reports
/// what it could not undo as WARNINGs. Returns the records it could not.
fn compensate(done: Vec<Done>, scope: &str) -> Vec<(Target, String)> {
    if done.is_empty() {
        return vec![];
    }
    let count: usize = done
        .iter()
        .map(|d| match d {
            Done::Bulk { applied, .. } => applied.records(),
            _ => 1,
        })
        .sum();
    let all: Vec<(Target, String)> = done
        .iter()
        .flat_map(|d| match d {
            Done::Bulk { target, applied } => applied
                .created
                .iter()
                .chain(applied.updated.iter())
                .chain(applied.deleted.iter())
                .map(|id| (target.clone(), id.to_string()))
                .collect(),
            _ => vec![key_of(d)],
        })
        .collect();
    let undone = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| undo(done)));
    let failed = match &undone {
        Ok((_, failed)) => failed.clone(),
        Err(_) => all,
    };
    match undone.map(|(problems, _)| problems) {
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
    failed
}
