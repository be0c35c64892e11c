//! The sync worker's look at the sent logs (`sent_file`) of its database:
//! a log whose transaction committed goes; one whose transaction did not
//! commit (it rolled back and could not undo everything, or its backend
//! crashed between sending and committing) becomes outbox rows, undos
//! delivered as queued writes and what only a person can settle, then
//! goes. A log still locked belongs to a transaction going on.

use super::sent_file::{self, DIR};
use crate::error::{Error, Result};
use crate::pg::in_transaction;
use pgrx::{PgSqlErrorCode, Spi};
use salesforce_core::write::sent_log;
use std::fs::File;
use std::io::Read;
use std::time::{Duration, Instant};

/// How often the worker looks.
const LOOK_EVERY: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct LeftBehind {
    last_look: Option<Instant>,
}

/// What became of a transaction, by `pg_xact_status`; None when it is too
/// old for PostgreSQL to know, which can only be a transaction long gone.
fn status(xid: u64) -> Result<Option<String>> {
    Ok(Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.pg_xact_status($1::text::pg_catalog.xid8)",
        &[xid.to_string().into()],
    )?)
}

fn warn(message: &str) {
    crate::error::notice(pgrx::PgLogLevel::WARNING, message);
}

impl LeftBehind {
    /// How long the worker may nap before looking again.
    pub fn nap(&self) -> Duration {
        let since = self.last_look.map_or(LOOK_EVERY, |at| at.elapsed());
        LOOK_EVERY.saturating_sub(since)
    }

    /// Looks at the logs, at most every LOOK_EVERY.
    pub fn step(&mut self) {
        if self.last_look.is_some_and(|at| at.elapsed() < LOOK_EVERY) {
            return;
        }
        self.last_look = Some(Instant::now());
        let database = unsafe { pgrx::pg_sys::MyDatabaseId }.to_u32();
        let Ok(entries) = std::fs::read_dir(DIR) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            match sent_file::parse_name(&name) {
                Some((db, xid)) if db == database => {
                    if let Err(e) = settle(&entry.path(), xid) {
                        warn(&format!(
                            "pg_salesforce: cannot settle what transaction {xid} sent to Salesforce ({DIR}/{name}): {e}"
                        ));
                    }
                }
                _ => {}
            }
        }
    }
}

fn settle(path: &std::path::Path, xid: u64) -> Result<()> {
    let io = |e: std::io::Error| {
        Error::sql(
            PgSqlErrorCode::ERRCODE_IO_ERROR,
            format!("{}: {e}", path.display()),
        )
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        // Its transaction just ended, and took it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    match file.try_lock() {
        Ok(()) => {}
        // Its transaction is going on, or ending.
        Err(std::fs::TryLockError::WouldBlock) => return Ok(()),
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    let mut log = Vec::new();
    file.read_to_end(&mut log).map_err(io)?;
    let outstanding = sent_log::outstanding(&log);
    let timeline = unsafe { pgrx::pg_sys::GetWALInsertionTimeLine() };
    let queued = in_transaction(|| {
        let status = status(xid)?;
        let origin = format!("transaction {xid} did not commit");
        let remedies = match (status.as_deref(), outstanding.timeline) {
            (Some("committed"), _) => return Ok(None),
            (Some("in progress"), _) => {
                return Err(Error::sql(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "the transaction is in progress but holds no lock on its log",
                ))
            }
            (Some(_), Some(t)) if t == timeline => sent_log::remedies(outstanding),
            (Some(_), logged) => sent_log::all_unresolved(
                outstanding,
                &format!(
                    "this log is from WAL timeline {}, not this server's {timeline} (a promotion or a recovery came between): whether its transaction committed is not known here",
                    logged.map_or("unknown".to_string(), |t| t.to_string())
                ),
            ),
            (None, _) => sent_log::all_unresolved(
                outstanding,
                "the transaction is too old for PostgreSQL to say whether it committed",
            ),
        };
        crate::delivery::queue_left_behind(&remedies, &origin).map(Some)
    });
    match queued {
        Ok(None) => {}
        Ok(Some(0)) => {}
        Ok(Some(n)) => pgrx::log!(
            "pg_salesforce: transaction {xid} did not commit after sending writes to Salesforce; {n} queued to undo or settle (salesforce.queued_writes)"
        ),
        // A transaction still going on, after a prepared one: looked at again later.
        Err(e) if e.sqlstate() == "55000" => return Ok(()),
        Err(e) => return Err(e),
    }
    std::fs::remove_file(path).map_err(io)
}
