//! The SQL functions behind the sync interface. `sync_now` and `resync` are
//! PL/pgSQL procedures (schema.sql) that call the `_sync_*` steps and commit
//! between them.

use super::run::{Next, Run};
use super::store;
use super::together::{round, Going, Steps};
use crate::catalog;
use crate::connection;
use crate::error::{Error, OrRaise};
use crate::pg;
use pgrx::datum::Interval;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode, Spi};
use salesforce_core::naming::{quote_ident, snake_case};
use salesforce_core::sync::definition::{create_table_sql, qualified, synced_fields, SyncOptions};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

thread_local! {
    /// Runs this backend is in the middle of, between `_sync_step` calls.
    static RUNS: RefCell<HashMap<i64, Run>> = RefCell::new(HashMap::new());
    /// Why runs driven together failed, until they are finished.
    static FAILED: RefCell<HashMap<i64, String>> = RefCell::new(HashMap::new());
}

/// Steps of runs driven together in a procedure's transaction: each in a
/// subtransaction, so one run's failure undoes only its own step.
struct InSubtransactions;

impl Steps for InSubtransactions {
    fn local<T>(
        &self,
        f: impl FnOnce() -> crate::error::Result<T>,
    ) -> std::result::Result<T, String> {
        pg::in_subtransaction(f).map_err(|e| e.message())
    }

    fn wait(&self, d: Duration) {
        sleep_interruptibly(d)
    }
}

fn raise(code: PgSqlErrorCode, message: String, hint: Option<&str>) -> ! {
    let e = Error::sql(code, message);
    match hint {
        Some(h) => e.with_hint(h).raise(),
        None => e.raise(),
    }
}

/// Waits for the sync's lock until this transaction ends.
fn lock_for_transaction(sync_id: i64) {
    Spi::run_with_args(
        "SELECT pg_advisory_xact_lock(hashtext('pg_salesforce.sync'), $1::int4)",
        &[sync_id.into()],
    )
    .or_raise();
}

/// The schema and table a target names; unqualified names go in the current schema.
fn target_name(target: Option<&str>, server: &str, object: &str) -> (String, String) {
    match target {
        None => (server.to_string(), snake_case(object)),
        Some(t) => {
            let parts =
                Spi::get_one_with_args::<Vec<String>>("SELECT parse_ident($1)", &[t.into()])
                    .or_raise()
                    .unwrap_or_default();
            match parts.as_slice() {
                [table] => (
                    Spi::get_one::<String>("SELECT current_schema()::text")
                        .or_raise()
                        .unwrap_or_else(|| "public".into()),
                    table.clone(),
                ),
                [schema, table] => (schema.clone(), table.clone()),
                _ => raise(
                    PgSqlErrorCode::ERRCODE_INVALID_NAME,
                    format!("invalid target \"{t}\""),
                    Some("Name a table, optionally schema-qualified."),
                ),
            }
        }
    }
}

/// Registers a sync and creates its local table; the first run backfills it.
#[pg_extern]
fn sync_enable(
    server: &str,
    object: &str,
    target: default!(Option<&str>, "NULL"),
    every: default!(Interval, "'5 minutes'"),
    options: default!(JsonB, "'{}'"),
) -> i64 {
    let parsed = SyncOptions::parse(&options.0).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            e.message,
            e.hint.as_deref(),
        )
    });
    if store::sync_id(server, object).or_raise().is_some() {
        raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("{object} on server {server} is already synced"),
            Some("salesforce.resync() reloads it; salesforce.sync_disable() removes it."),
        );
    }
    let server_oid = catalog::server_oid(server).or_raise();
    let user = unsafe { pg_sys::GetUserId() };
    let describe = connection::with_session(server_oid, user, |s| s.describe(object))
        .map_err(|e| connection::unknown_object(e, object))
        .or_raise();
    let fields = synced_fields(&describe, parsed.fields.as_deref())
        .unwrap_or_else(|m| raise(PgSqlErrorCode::ERRCODE_FDW_COLUMN_NAME_NOT_FOUND, m, None));
    let (schema, table) = target_name(target, server, &describe.name);
    Spi::run(&format!(
        "CREATE SCHEMA IF NOT EXISTS {}",
        quote_ident(&schema)
    ))
    .or_raise();
    Spi::run(&create_table_sql(
        &qualified(&schema, &table),
        &fields,
        parsed.soft_delete,
    ))
    .or_raise();
    let id = Spi::get_one_with_args::<i64>(
        "INSERT INTO salesforce.syncs (server, object, target_schema, target_table, every, options, fields, columns, owner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        &[
            server.into(),
            describe.name.clone().into(),
            schema.clone().into(),
            table.clone().into(),
            every.into(),
            options.into(),
            fields.iter().map(|f| f.field.clone()).collect::<Vec<_>>().into(),
            fields.iter().map(|f| f.column.clone()).collect::<Vec<_>>().into(),
            user.into(),
        ],
    )
    .or_raise()
    .expect("INSERT ... RETURNING gives a row");
    pgrx::notice!(
        "{} will be copied into {}: the sync worker picks it up, or run CALL salesforce.sync_now('{server}', '{}')",
        describe.name,
        qualified(&schema, &table),
        describe.name
    );
    id
}

/// Stops syncing an object; the local table stays unless `drop_table`.
#[pg_extern]
fn sync_disable(server: &str, object: &str, drop_table: default!(bool, "false")) {
    let id = sync_id(server, object);
    lock_for_transaction(id);
    let sync = store::load_sync(id).or_raise();
    Spi::run_with_args("DELETE FROM salesforce.syncs WHERE id = $1", &[id.into()]).or_raise();
    Spi::run(&format!("DROP TABLE IF EXISTS {}", sync.staging())).or_raise();
    if drop_table {
        Spi::run(&format!("DROP TABLE IF EXISTS {}", sync.target())).or_raise();
    }
}

#[pg_extern]
fn _sync_id(server: &str, object: &str) -> i64 {
    sync_id(server, object)
}

/// Syncs write their copies and log, so they run on the primary; copies
/// reach a standby by replication.
fn refuse_on_standby() {
    if unsafe { pg_sys::RecoveryInProgress() } {
        raise(
            PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            "syncs cannot run on a standby, which is a read-only transaction".into(),
            Some("Run syncs on the primary: its copies reach this standby by replication, and its sync worker runs them."),
        )
    }
}

fn sync_id(server: &str, object: &str) -> i64 {
    refuse_on_standby();
    store::sync_id(server, object)
        .or_raise()
        .unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("{object} on server {server} is not synced"),
                Some("Start with SELECT salesforce.sync_enable(server, object)."),
            )
        })
}

/// Whether the calling procedure may COMMIT: not inside BEGIN ... COMMIT.
#[pg_extern]
fn _sync_can_commit() -> bool {
    refuse_on_standby();
    unsafe { !pg_sys::IsTransactionBlock() }
}

/// Starts the next run over again from the beginning, into a new copy.
#[pg_extern]
fn _sync_request_resync(sync_id: i64) {
    lock_for_transaction(sync_id);
    let sync = store::load_sync(sync_id).or_raise();
    Spi::run(&format!("DROP TABLE IF EXISTS {}", sync.staging())).or_raise();
    Spi::run(&format!(
        "CREATE TABLE {} (LIKE {} INCLUDING ALL)",
        sync.staging(),
        sync.target()
    ))
    .or_raise();
    Spi::run_with_args(
        "UPDATE salesforce.syncs SET stage = 'resync', backfill_after = NULL, backfill_total = NULL, backfill_rows = 0 WHERE id = $1",
        &[sync_id.into()],
    )
    .or_raise();
}

#[pg_extern]
fn _sync_start(sync_id: i64, started_by: &str) -> i64 {
    let run = Run::start(sync_id, started_by).or_raise();
    let id = run.id;
    RUNS.with(|r| r.borrow_mut().insert(id, run));
    id
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

/// One request and what it brought. False once the run has nothing left.
#[pg_extern]
fn _sync_step(run_id: i64) -> bool {
    let mut run = RUNS
        .with(|r| r.borrow_mut().remove(&run_id))
        .unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("run {run_id} is not going on in this session"),
                None,
            )
        });
    let outcome = loop {
        match run.prepare() {
            Err(e) => break Err(e),
            Ok(Next::Done) => break Ok(false),
            Ok(Next::Wait(d)) => sleep_interruptibly(d),
            Ok(Next::Fetch(request)) => {
                let fetched = run.fetch(request);
                break run.apply(fetched).map(|_| !run.finished());
            }
        }
    };
    RUNS.with(|r| r.borrow_mut().insert(run_id, run));
    outcome.or_raise()
}

/// A step of each of several runs, their polls together. False once none
/// has anything left; a run that fails stops alone.
#[pg_extern]
fn _sync_step_together(run_ids: Vec<i64>) -> bool {
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
    round(&mut going, &InSubtransactions);
    let mut more = false;
    for g in going {
        more |= !g.done;
        if let Some(e) = g.failure {
            FAILED.with(|f| f.borrow_mut().insert(g.run.id, e));
        }
        RUNS.with(|r| r.borrow_mut().insert(g.run.id, g.run));
    }
    more
}

#[pg_extern]
fn _sync_finish(run_id: i64, failure: Option<&str>) {
    let failure = failure
        .map(str::to_string)
        .or_else(|| FAILED.with(|f| f.borrow_mut().remove(&run_id)));
    match RUNS.with(|r| r.borrow_mut().remove(&run_id)) {
        Some(run) => run.finish(failure).or_raise(),
        // The step was interrupted before it could hand the run back.
        None => store::finish_run(
            run_id,
            "failed",
            Some(failure.as_deref().unwrap_or("interrupted")),
            Some(60),
        )
        .or_raise(),
    }
}
