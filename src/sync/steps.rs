//! The steps `CALL salesforce.sync_now(...)` and `resync(...)` drive. Those
//! procedures commit between steps, so they cannot pin their search path
//! or run as another role; they only call these functions, which can: each
//! checks the caller, runs the sync's work as the extension's owner and its
//! copy's as the sync's owner, and keeps the runs it started in this
//! session, so no caller can step, finish or read another's.

use super::api::{find_sync, refuse_on_standby};
use super::run::{Run, Started};
use super::store;
use super::together::Flight;
use super::together::{round, settle, Going, Steps};
use crate::access;
use crate::error::{Error, OrRaise, Result};
use crate::pg;
use pgrx::prelude::*;
use pgrx::{PgSqlErrorCode, Spi};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

thread_local! {
    /// Runs this backend is in the middle of, between steps.
    static RUNS: RefCell<HashMap<i64, Run>> = RefCell::new(HashMap::new());
    /// The sync each run of this backend holds the lock of, until finished.
    static LOCKED: RefCell<HashMap<i64, i64>> = RefCell::new(HashMap::new());
    /// Why runs failed, until they are finished.
    static FAILED: RefCell<HashMap<i64, Error>> = RefCell::new(HashMap::new());
    /// The role that started each run: only it (or a role acting for it)
    /// steps or finishes it, even after a SET ROLE in the same session.
    static STARTERS: RefCell<HashMap<i64, pgrx::pg_sys::Oid>> = RefCell::new(HashMap::new());
}

/// Refuses a run this session's current role did not start (nor may act for).
fn check_starter(run_id: i64) {
    let starter = STARTERS.with(|s| s.borrow().get(&run_id).copied());
    if let Some(starter) = starter {
        let caller = access::current_role();
        if !access::acts_for(caller, starter) {
            Error::sql(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!(
                    "permission denied for run {run_id}: role {} started it",
                    access::role_name(starter)
                ),
            )
            .raise()
        }
    }
}

/// Steps of runs driven together in a procedure's transaction: each in a
/// subtransaction, so one run's failure undoes only its own step.
struct InSubtransactions;

impl Steps for InSubtransactions {
    fn local<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        pg::in_subtransaction(f)
    }

    fn wait(&self, d: Duration) {
        sleep_interruptibly(d)
    }
}

fn sleep_interruptibly(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        pgrx::check_for_interrupts!();
        std::thread::sleep(
            Duration::from_millis(50).min(until.saturating_duration_since(Instant::now())),
        );
    }
}

/// The lock a run of the sync holds, the worker's too: one run at a time.
fn lock(sync_id: i64) -> Result<()> {
    pg::catching(|| {
        super::lock::lock_for_session(sync_id);
        Ok(())
    })
}

fn unlock(sync_id: i64) {
    super::lock::unlock(sync_id);
}

/// Ends runs an interrupted procedure left behind in this session: logged
/// as failed, their locks released.
fn end_stranded_runs() {
    let stranded: Vec<(i64, i64)> = LOCKED.with(|l| l.borrow_mut().drain().collect());
    for (run_id, sync_id) in stranded {
        RUNS.with(|r| r.borrow_mut().remove(&run_id));
        FAILED.with(|f| f.borrow_mut().remove(&run_id));
        STARTERS.with(|s| s.borrow_mut().remove(&run_id));
        let _ = access::as_extension(|| {
            store::finish_run(
                run_id,
                "failed",
                Some(&store::Problem::note("interrupted")),
                Some(60),
            )
        });
        unlock(sync_id);
    }
}

/// Locks and starts a run of the sync; a run refused by its checks is
/// logged as failed and `Err` carries why.
fn begin(sync_id: i64, log_refusal: bool) -> std::result::Result<i64, (Error, Option<i64>)> {
    lock(sync_id).map_err(|e| (e, None))?;
    let started = pg::in_subtransaction(|| {
        access::as_extension(|| Run::start(sync_id, "sync_now", log_refusal))
    });
    match started {
        Ok(Started::Run(run)) => {
            let id = run.id;
            RUNS.with(|r| r.borrow_mut().insert(id, run));
            LOCKED.with(|l| l.borrow_mut().insert(id, sync_id));
            STARTERS.with(|s| s.borrow_mut().insert(id, access::current_role()));
            Ok(id)
        }
        Ok(Started::Paused { error, logged }) => {
            unlock(sync_id);
            Err((error, logged))
        }
        Err(e) => {
            unlock(sync_id);
            Err((e, None))
        }
    }
}

/// Starts a run of the caller's sync of `object` on `server`.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn _sync_begin(server: &str, object: &str) -> i64 {
    refuse_on_standby();
    end_stranded_runs();
    let sync = find_sync(server, object);
    begin(sync.id, false).unwrap_or_else(|(e, _)| e.raise())
}

/// Starts a run of each enabled sync of `server` that the caller may run,
/// in id order. A sync whose checks fail is logged as a failed run and
/// does not stop the others.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn _sync_begin_server(server: &str) -> Vec<i64> {
    refuse_on_standby();
    end_stranded_runs();
    let caller = access::current_role();
    let syncs: Vec<i64> = access::as_extension(|| store::syncs_of_server(server))
        .or_raise()
        .into_iter()
        .filter(|(_, owner)| access::acts_for(caller, *owner))
        .map(|(id, _)| id)
        .collect();
    if syncs.is_empty() {
        Error::sql(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!(
                "server {server} has no enabled syncs that role {} may run",
                access::role_name(caller)
            ),
        )
        .with_hint("Start with SELECT salesforce.sync_enable(server, object).")
        .raise();
    }
    let mut runs = Vec::with_capacity(syncs.len());
    for sync_id in syncs {
        match begin(sync_id, true) {
            Ok(run) => runs.push(run),
            Err((_, Some(logged))) => runs.push(logged),
            Err((e, None)) => {
                end_runs(&runs);
                e.raise()
            }
        }
    }
    runs
}

/// One request and what it brought. False once the run has nothing left;
/// a failure ends the run, to be logged by `_sync_finish`.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn _sync_step(run_id: i64) -> bool {
    check_starter(run_id);
    let Some(mut run) = RUNS.with(|r| r.borrow_mut().remove(&run_id)) else {
        Error::sql(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("run {run_id} is not going on in this session"),
        )
        .raise()
    };
    let outcome = pg::in_subtransaction(|| {
        access::as_extension(|| loop {
            match run.prepare()? {
                super::run::Next::Done => break Ok(false),
                super::run::Next::Wait(d) => sleep_interruptibly(d),
                super::run::Next::Fetch(request) => {
                    let fetched = run.fetch(request);
                    run.apply(fetched)?;
                    break Ok(!run.finished());
                }
            }
        })
    });
    RUNS.with(|r| r.borrow_mut().insert(run_id, run));
    outcome.unwrap_or_else(|e| {
        FAILED.with(|f| f.borrow_mut().insert(run_id, e));
        false
    })
}

/// A step of each of several runs, their polls together. False once none
/// has anything left; a run that fails stops alone.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn _sync_step_together(run_ids: Vec<i64>) -> bool {
    run_ids.iter().for_each(|id| check_starter(*id));
    let mut going: Vec<Going> = run_ids
        .iter()
        .filter(|id| !FAILED.with(|f| f.borrow().contains_key(id)))
        .filter_map(|id| {
            RUNS.with(|r| {
                let mut runs = r.borrow_mut();
                let going_on = runs.get(id).is_some_and(|run| !run.finished());
                going_on.then(|| runs.remove(id)).flatten()
            })
        })
        .map(Going::new)
        .collect();
    let outcome = pg::in_subtransaction(|| {
        access::as_extension(|| {
            let mut flight = Flight::default();
            let wait = round(&mut going, &InSubtransactions, &mut flight);
            settle(&mut going, &InSubtransactions, &mut flight);
            if let Some(wait) = wait.filter(|_| going.iter().all(|g| g.done || !g.in_flight())) {
                InSubtransactions.wait(wait);
            }
            Ok(())
        })
    });
    let mut more = false;
    for mut g in going {
        if let Err(e) = &outcome {
            g.fail(Error::sql(e.code(), e.message()));
        }
        more |= !g.done;
        if let Some(e) = g.failure {
            FAILED.with(|f| f.borrow_mut().insert(g.run.id, e));
        }
        RUNS.with(|r| r.borrow_mut().insert(g.run.id, g.run));
    }
    more
}

/// Logs the end of each run this session started and releases its lock.
fn end_runs(run_ids: &[i64]) {
    run_ids.iter().for_each(|id| check_starter(*id));
    for run_id in run_ids {
        STARTERS.with(|s| s.borrow_mut().remove(run_id));
        let Some(sync_id) = LOCKED.with(|l| l.borrow_mut().remove(run_id)) else {
            continue;
        };
        let failure = FAILED.with(|f| f.borrow_mut().remove(run_id));
        let logged = match RUNS.with(|r| r.borrow_mut().remove(run_id)) {
            Some(run) => pg::in_subtransaction(|| access::as_extension(|| run.finish(failure))),
            // The step was interrupted before it could hand the run back.
            None => pg::in_subtransaction(|| {
                access::as_extension(|| {
                    let problem = failure
                        .as_ref()
                        .map(store::Problem::of)
                        .unwrap_or_else(|| store::Problem::note("interrupted"));
                    store::finish_run(*run_id, "failed", Some(&problem), Some(60))
                })
            }),
        };
        unlock(sync_id);
        logged.or_raise();
    }
}

#[pg_extern(name = "_sync_finish")]
#[search_path(pg_catalog, pg_temp)]
fn finish_runs(run_ids: Vec<i64>) {
    end_runs(&run_ids);
}

/// The log rows of runs the caller may see, and an error if any failed.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn _sync_outcome(
    run_ids: Vec<i64>,
    server: &str,
) -> TableIterator<
    'static,
    (
        name!(run_id, i64),
        name!(kind, String),
        name!(status, String),
        name!(rows_upserted, i64),
        name!(rows_deleted, i64),
        name!(api_requests, i64),
        name!(error, Option<String>),
    ),
> {
    type Row = (
        i64,
        String,
        String,
        i64,
        i64,
        i64,
        Option<String>,
        String,
        pgrx::pg_sys::Oid,
    );
    let caller = access::current_role();
    let rows: Vec<Row> = access::as_extension(|| {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT id, kind, status, rows_upserted, rows_deleted, api_requests, error, object, owner FROM salesforce.sync_runs WHERE id = ANY($1) ORDER BY id",
                    None,
                    &[run_ids.clone().into()],
                )?
                .map(|r| {
                    Ok((
                        r.get::<i64>(1)?.unwrap_or(0),
                        r.get::<String>(2)?.unwrap_or_default(),
                        r.get::<String>(3)?.unwrap_or_default(),
                        r.get::<i64>(4)?.unwrap_or(0),
                        r.get::<i64>(5)?.unwrap_or(0),
                        r.get::<i64>(6)?.unwrap_or(0),
                        r.get::<String>(7)?,
                        r.get::<String>(8)?.unwrap_or_default(),
                        r.get::<pgrx::pg_sys::Oid>(9)?.unwrap_or(pgrx::pg_sys::Oid::INVALID),
                    ))
                })
                .collect::<std::result::Result<Vec<Row>, pgrx::spi::SpiError>>()
        })
        .map_err(Error::from)
    })
    .or_raise()
    .into_iter()
    .filter(|r| access::acts_for(caller, r.8))
    .collect();
    let failed: Vec<&Row> = rows.iter().filter(|r| r.2 == "failed").collect();
    match failed.as_slice() {
        [] => {}
        [one] if rows.len() == 1 => Error::sql(
            PgSqlErrorCode::ERRCODE_FDW_ERROR,
            format!(
                "sync of {} on server {server} failed: {}",
                one.7,
                one.6.as_deref().unwrap_or("")
            ),
        )
        .with_hint(format!("Run {} in salesforce.sync_runs has the details; the next run resumes where this one stopped.", one.0))
        .raise(),
        several => Error::sql(
            PgSqlErrorCode::ERRCODE_FDW_ERROR,
            format!(
                "syncs on server {server} failed: {}",
                several
                    .iter()
                    .map(|r| format!("{} (run {}): {}", r.7, r.0, r.6.as_deref().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )
        .with_hint("salesforce.sync_runs has the details; the next runs resume where these stopped.")
        .raise(),
    }
    TableIterator::new(
        rows.into_iter()
            .map(|r| (r.0, r.1, r.2, r.3, r.4, r.5, r.6)),
    )
}
