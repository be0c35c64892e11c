//! The sync workers: with pg_salesforce in shared_preload_libraries, one
//! for each database of `salesforce.sync_databases` (or the one
//! `salesforce.sync_database`) runs its due syncs together (`together`), so
//! their polls share composite calls. They start once recovery has
//! finished: on a standby, none runs until it is promoted. Each step's local work is a short
//! transaction of its own; requests to Salesforce are made with no
//! transaction open. The worker connects as the bootstrap superuser, with
//! its search path pinned, and writes each copy as the sync's owner
//! (`copy_table`), as autovacuum works on a table as its owner.

use super::budget::{Budget, Pace};
use super::fetch::Fetched;
use super::run::{Run, Started};
use super::stream::Streams;
use super::together::Flight;
use super::together::{round, Going, Steps};
use crate::access;
use crate::catalog;
use crate::delivery::deliver::{Deliveries, Servers};
use crate::error::{self, Error, Result};
use crate::gucs;
use crate::pg::in_transaction;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{PgLogLevel, Spi};
use salesforce_core::sync::breaker::{Breaker, Change};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use std::time::Instant;

extern "C-unwind" {
    /// PostgreSQL's handler itself (postmaster/interrupt.c), called by the
    /// signal: pgrx's wrapper of it is not for signal handlers.
    fn SignalHandlerForShutdownRequest(signal: std::ffi::c_int);
}

/// Set when the postmaster died.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Whether to stop: SIGTERM (a fast or smart shutdown) sets PostgreSQL's
/// ShutdownRequestPending, which every wait on Salesforce also watches
/// (`connection::interrupted`), so a request in flight ends at once.
fn stopping() -> bool {
    (unsafe { pg_sys::ShutdownRequestPending } != 0) || STOPPING.load(Ordering::Relaxed)
}

/// How often the worker looks for due syncs while runs go on: each
/// answer that lands wakes it, and the look reads every sync.
const ADMIT_EVERY: Duration = Duration::from_millis(100);

/// How long the worker naps while streams are open: events wait at most
/// this long before they are applied.
const STREAM_NAP: Duration = Duration::from_millis(50);

pub fn register() {
    for database in gucs::sync_databases() {
        BackgroundWorkerBuilder::new(&format!("pg_salesforce sync worker for {database}"))
            .set_type("pg_salesforce sync")
            .set_library("pg_salesforce")
            .set_function("pg_salesforce_sync_worker_main")
            .set_extra(&database)
            .enable_spi_access()
            .set_restart_time(Some(Duration::from_secs(5)))
            .load();
    }
}

fn warn(message: &str) {
    error::notice(PgLogLevel::WARNING, message);
}

/// Syncs due now or within a second (a tenth of their interval, if less),
/// and with them those of the same user mapping due within half their
/// interval: runs that end a moment apart fall due a moment apart, and are
/// polled together again, not one call each as each falls due.
fn due_syncs() -> Result<Vec<(i64, String)>> {
    let installed = Spi::get_one::<bool>("SELECT to_regclass('salesforce.syncs') IS NOT NULL")?;
    if installed != Some(true) {
        return Ok(vec![]);
    }
    Spi::connect(|client| {
        let rows = client.select(
            "WITH due AS (SELECT server, owner FROM salesforce.syncs WHERE enabled AND next_due <= clock_timestamp() + least(interval '1 second', every / 10))
             SELECT id, server::text FROM salesforce.syncs s
              WHERE enabled AND next_due <= clock_timestamp() + least(interval '1 second', every / 2)
                AND EXISTS (SELECT FROM due WHERE due.server = s.server AND due.owner = s.owner)
              ORDER BY next_due, id",
            None,
            &[],
        )?;
        rows.map(|r| Ok((r.get::<i64>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default())))
            .collect::<std::result::Result<Vec<_>, pgrx::spi::SpiError>>()
    })
    .map_err(Error::from)
}

thread_local! {
    /// Each server's circuit breaker (`salesforce_core::sync::breaker`).
    static BREAKERS: RefCell<HashMap<String, Breaker>> = RefCell::new(HashMap::new());
}

/// Whether the server's breaker lets a run start now.
fn server_allows(server: &str) -> bool {
    BREAKERS.with(|b| {
        b.borrow()
            .get(server)
            .is_none_or(|b| b.allows(Instant::now()))
    })
}

/// Whether the server's breaker opened and its pause is over: the next
/// request tells whether the server is back.
fn server_on_trial(server: &str) -> bool {
    BREAKERS.with(|b| b.borrow().get(server).is_some_and(|b| b.is_open()))
}

/// The servers whose breaker keeps their syncs waiting now.
fn blocked_servers() -> Vec<String> {
    let now = Instant::now();
    BREAKERS.with(|b| {
        b.borrow()
            .iter()
            .filter(|(_, b)| !b.allows(now))
            .map(|(s, _)| s.clone())
            .collect()
    })
}

/// When the first open breaker lets its server be tried again.
fn next_breaker_retry() -> Option<Duration> {
    let now = Instant::now();
    BREAKERS.with(|b| {
        b.borrow()
            .values()
            .filter_map(|b| b.open_until())
            .filter(|until| *until > now)
            .min()
            .map(|until| until - now)
    })
}

/// Records that a server stopped or started answering, for sync_status.
fn save_reachability(server: &str, error: Option<&str>) {
    let saved = in_transaction(|| {
        Spi::run_with_args(
            "INSERT INTO salesforce.pacing AS p (server, tokens, refilled_at_ms, unreachable_since, unreachable_error)
             VALUES ($1, 0, 0, CASE WHEN $2::text IS NULL THEN NULL ELSE clock_timestamp() END, $2)
             ON CONFLICT (server) DO UPDATE SET
               unreachable_since = CASE WHEN $2::text IS NULL THEN NULL ELSE coalesce(p.unreachable_since, clock_timestamp()) END,
               unreachable_error = $2",
            &[server.into(), error.map(error::scrub).into()],
        )
        .map_err(Error::from)
    });
    if let Err(e) = saved {
        warn(&format!(
            "pg_salesforce: cannot record whether server {server} answers: {e}"
        ));
    }
}

/// How long until the next sync is due, if any is enabled, leaving out
/// those going on already and those of servers whose breaker is open.
fn next_due_in(going: &[i64], blocked: &[String]) -> Result<Option<Duration>> {
    let installed = Spi::get_one::<bool>("SELECT to_regclass('salesforce.syncs') IS NOT NULL")?;
    if installed != Some(true) {
        return Ok(None);
    }
    let seconds = Spi::get_one_with_args::<f64>(
        "SELECT greatest(extract(epoch FROM min(next_due) - clock_timestamp()), 0.05)::float8 FROM salesforce.syncs WHERE enabled AND NOT (id = ANY($1)) AND NOT (server = ANY($2::name[]))",
        &[going.to_vec().into(), blocked.to_vec().into()],
    )?;
    Ok(seconds.map(Duration::from_secs_f64))
}

/// Takes the sync's lock without waiting; false if a session holds it, or
/// the sync is no longer due.
fn try_lock(sync_id: i64) -> Result<bool> {
    if !super::lock::try_lock_for_session(sync_id) {
        return Ok(false);
    }
    let due = crate::pg::get_one_kept::<bool>(
        "SELECT enabled AND next_due <= clock_timestamp() + least(interval '1 second', every / 2) FROM salesforce.syncs WHERE id = $1",
        &[sync_id.into()],
    )?;
    if due != Some(true) {
        super::lock::unlock(sync_id);
        return Ok(false);
    }
    Ok(true)
}

fn unlock(sync_id: i64) -> Result<()> {
    super::lock::unlock(sync_id);
    Ok(())
}

/// A due sync's run, its lock taken; None if it is not due after all, or
/// paused because its checks failed.
fn start(sync_id: i64) -> Option<Run> {
    let started = in_transaction(|| {
        if !try_lock(sync_id)? {
            return Ok(None);
        }
        Run::start(sync_id, "worker", false).map(Some)
    });
    match started {
        Ok(None) => None,
        Ok(Some(Started::Run(run))) => Some(run),
        Ok(Some(Started::Paused { error, logged })) => {
            if logged.is_some() {
                warn(&format!(
                    "pg_salesforce: sync {sync_id} is paused until its checks pass: {}",
                    error.message()
                ));
            }
            let _ = in_transaction(|| unlock(sync_id));
            None
        }
        Err(e) => {
            warn(&format!(
                "pg_salesforce: sync {sync_id} could not start: {e}"
            ));
            let _ = in_transaction(|| unlock(sync_id));
            None
        }
    }
}

fn finish(run: Run, failure: Option<Error>) {
    let sync_id = run.sync_id();
    if let Some(e) = &failure {
        warn(&format!(
            "pg_salesforce: sync {sync_id} failed: {}",
            e.message()
        ));
    }
    let mut unlocked = false;
    let logged = in_transaction(|| {
        run.finish(failure)?;
        unlock(sync_id)?;
        unlocked = true;
        Ok(())
    });
    if let Err(e) = logged {
        warn(&format!(
            "pg_salesforce: sync {sync_id} could not log its run: {e}"
        ));
    }
    if !unlocked {
        let _ = in_transaction(|| unlock(sync_id));
    }
}

/// Worker steps: each a transaction of its own, waits on the latch.
struct InTransactions;

impl Steps for InTransactions {
    fn local<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        in_transaction(f)
    }

    fn wait(&self, d: Duration) {
        if !BackgroundWorker::wait_latch(Some(d)) {
            STOPPING.store(true, Ordering::Relaxed);
        }
    }

    fn observe(&self, run: &Run, fetched: &Fetched) {
        let unreachable = match &fetched.answer {
            Err(Error::Salesforce(e)) if e.is_retryable() => Some(e.to_string()),
            _ => None,
        };
        observe_server(run.server_name(), unreachable);
    }
}

/// Tells the server's breaker how a request went: `unreachable` says why
/// it failed in a way that trying later may mend.
fn observe_server(server: &str, unreachable: Option<String>) {
    let change = BREAKERS.with(|b| {
        let mut b = b.borrow_mut();
        let breaker = b.entry(server.to_string()).or_default();
        match &unreachable {
            Some(_) => breaker.failure(Instant::now()),
            None => breaker.success(),
        }
    });
    match change {
        Change::Opened(pause) => {
            let why = unreachable.unwrap_or_default();
            warn(&format!(
                "pg_salesforce: server {server} does not answer; its syncs and deliveries wait {} s: {why}",
                pause.as_secs()
            ));
            save_reachability(server, Some(&why));
        }
        Change::Closed => save_reachability(server, None),
        Change::None => {}
    }
}

/// What delivery needs of the worker: each server's breaker, shared with
/// the syncs, and its API budget.
struct WorkerServers;

fn server_budget(server: &str) -> Result<Budget> {
    let (options, _) = catalog::server_options(catalog::server_oid(server)?)?;
    Ok(Budget::new(
        options.max_requests_per_day as f64,
        options.budget_reserve_percent as f64,
        0,
    ))
}

impl Servers for WorkerServers {
    fn may_send(&self, server: &str) -> bool {
        server_allows(server)
            && server_budget(server)
                .and_then(|b| b.pace(server, 0))
                .is_ok_and(|pace| matches!(pace, Pace::Now))
    }

    fn on_trial(&self, server: &str) -> bool {
        server_on_trial(server)
    }

    fn observe(&self, server: &str, unreachable: Option<String>) {
        observe_server(server, unreachable);
    }

    fn debit(&self, server: &str, requests: i64, limit_info: Option<&str>) -> Result<()> {
        server_budget(server)?.debit(server, requests, limit_info)
    }
}

/// Starts the syncs that are due and not going already, the longest due
/// first, up to `salesforce.worker_max_runs` going at once: they join the
/// runs going on, so a run that waits holds up none that falls due. Each
/// run going holds its sync's lock, and every commit of the worker walks
/// the locks it holds, so runs that could only wait for a request slot
/// are better not started yet.
fn admit(going: &mut Vec<Going>) {
    let room = (gucs::WORKER_MAX_RUNS.get().max(1) as usize).saturating_sub(going.len());
    if room == 0 {
        return;
    }
    match in_transaction(due_syncs) {
        Ok(due) => {
            let known: std::collections::HashSet<i64> =
                going.iter().map(|g| g.run.sync_id()).collect();
            let new: Vec<i64> = due
                .into_iter()
                .filter(|(id, _)| !known.contains(id))
                // A server whose breaker is open waits, with its syncs due.
                .filter(|(_, server)| server_allows(server))
                .map(|(id, _)| id)
                .take(room)
                .collect();
            going.extend(new.into_iter().filter_map(start).map(Going::new));
        }
        Err(e) => warn(&format!("pg_salesforce: cannot list due syncs: {e}")),
    }
}

/// Logs the runs that are done and lets their syncs go.
fn finish_done(going: &mut Vec<Going>) {
    let (done, still): (Vec<Going>, Vec<Going>) =
        std::mem::take(going).into_iter().partition(|g| g.done);
    *going = still;
    for g in done {
        finish(g.run, g.failure);
    }
}

fn stop_all(going: &mut Vec<Going>, why: &str) {
    for g in going.iter_mut() {
        g.fail(Error::sql(
            pgrx::PgSqlErrorCode::ERRCODE_ADMIN_SHUTDOWN,
            why,
        ));
    }
    finish_done(going);
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_salesforce_sync_worker_main(_arg: pg_sys::Datum) {
    // PostgreSQL's own shutdown handler, not pgrx's: it sets the flag that
    // waits on Salesforce give way to, and wakes the latch.
    unsafe {
        pg_sys::pqsignal(
            pg_sys::SIGTERM as i32,
            Some(SignalHandlerForShutdownRequest),
        )
    };
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP);
    // The request threads come and go: with an arena each, glibc would keep
    // memory each of them once used.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    let database = BackgroundWorker::get_extra().to_string();
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    access::pin_for_process();
    // A run's rows and the checkpoint that covers them commit together, so
    // a commit lost to an operating-system crash loses both, and the next
    // run reads those changes again: the worker need not wait for each
    // commit to reach the disk.
    unsafe {
        pg_sys::SetConfigOption(
            c"synchronous_commit".as_ptr(),
            c"off".as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_OVERRIDE,
        );
    }
    crate::connection::cap_request_timeout(Duration::from_secs(
        gucs::WORKER_REQUEST_TIMEOUT.get() as u64
    ));
    pgrx::log!("pg_salesforce sync worker started on database \"{database}\"");
    // Breakers start closed: what an earlier worker found unreachable is
    // tried again.
    let _ = in_transaction(|| {
        if Spi::get_one::<bool>("SELECT to_regclass('salesforce.pacing') IS NOT NULL")?
            == Some(true)
        {
            Spi::run("UPDATE salesforce.pacing SET unreachable_since = NULL, unreachable_error = NULL WHERE unreachable_since IS NOT NULL")?;
        }
        Ok(())
    });
    crate::delivery::wake::register_worker();
    let mut deliveries = Deliveries::default();
    let mut left_behind = crate::write::left_behind::LeftBehind::default();
    let mut streams = Streams::default();
    let mut feeds = crate::events::feed::Feeds::default();
    let mut run_log = super::run_log::RunLog::default();
    let mut going: Vec<Going> = Vec::new();
    let mut flight = Flight::default();
    let mut last_admit = Instant::now();
    loop {
        if BackgroundWorker::sighup_received() {
            unsafe {
                pg_sys::ConfigReloadPending = 0;
                pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP);
            }
            crate::connection::cap_request_timeout(Duration::from_secs(
                gucs::WORKER_REQUEST_TIMEOUT.get() as u64,
            ));
            // A new retention applies at once.
            run_log = super::run_log::RunLog::default();
        }
        // Before anything that may go round again at once.
        run_log.step();
        // How long until a waiting run may go on; None when runs went on.
        let mut waiting = None;
        if gucs::SYNC_ENABLED.get() {
            if going.is_empty() || last_admit.elapsed() >= ADMIT_EVERY {
                admit(&mut going);
                last_admit = Instant::now();
            }
            streams.refresh(&InTransactions);
            streams.pump(&InTransactions);
            feeds.step(stopping);
            if !going.is_empty() && !stopping() {
                waiting = round(&mut going, &InTransactions, &mut flight);
                finish_done(&mut going);
            }
            if !stopping() {
                left_behind.step();
            }
            if !stopping() && deliveries.step(&WorkerServers) {
                continue;
            }
        } else {
            stop_all(
                &mut going,
                "salesforce.sync_enabled was turned off; the next run resumes from the checkpoint",
            );
            streams.close(&InTransactions);
        }
        if stopping() {
            break;
        }
        if !going.is_empty() && waiting.is_none() {
            continue;
        }
        let naptime = Duration::from_secs(gucs::SYNC_NAPTIME.get() as u64);
        let ids: Vec<i64> = going.iter().map(|g| g.run.sync_id()).collect();
        let blocked = blocked_servers();
        let mut nap = in_transaction(|| next_due_in(&ids, &blocked))
            .ok()
            .flatten()
            .map_or(naptime, |d| d.min(naptime));
        if let Some(w) = waiting {
            nap = nap.min(w);
        }
        if let Some(w) = next_breaker_retry() {
            nap = nap.min(w);
        }
        if streams.active() {
            nap = nap.min(STREAM_NAP);
        }
        if feeds.active() && gucs::SYNC_ENABLED.get() {
            nap = nap.min(feeds.nap());
        }
        // Queued writes waiting out a back-off are looked at again; a
        // commit that queues some, or a batch landing, wakes the worker.
        if gucs::SYNC_ENABLED.get() {
            nap = nap.min(deliveries.nap()).min(left_behind.nap());
        }
        InTransactions.wait(nap);
        if stopping() {
            break;
        }
    }
    stop_all(
        &mut going,
        "the sync worker was stopped; the next run resumes from the checkpoint",
    );
    streams.close(&InTransactions);
    pgrx::log!("pg_salesforce sync worker stopped");
}
