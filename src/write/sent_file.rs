//! Where a transaction keeps its sent log (`salesforce_core::write::sent_log`):
//! a file under the data directory, `pg_salesforce/sent/<database>-<xid>`,
//! made at its first call to Salesforce and locked while the transaction
//! lives. A commit removes it; so does a rollback that undid everything.
//! What remains belongs to a transaction that crashed, or whose undo
//! failed: the sync worker reads it (`left_behind`).

use crate::error::{Error, Result};
use pgrx::pg_sys;
use pgrx::PgSqlErrorCode;
use salesforce_core::write::sent_log::{self, Entry, Outstanding};
use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

extern "C-unwind" {
    /// PostgreSQL's (replication/message.h), not bound by pgrx: writes a
    /// logical decoding message to the WAL.
    fn LogLogicalMessage(
        prefix: *const std::ffi::c_char,
        message: *const std::ffi::c_char,
        size: usize,
        transactional: bool,
    ) -> pg_sys::XLogRecPtr;
}

/// Relative to the data directory, every backend's working directory.
pub const DIR: &str = "pg_salesforce/sent";

struct Open {
    file: File,
    path: PathBuf,
}

thread_local! {
    static OPEN: RefCell<Option<Open>> = const { RefCell::new(None) };
}

pub fn file_name(database: u32, xid: u64) -> String {
    format!("{database}-{xid}")
}

/// The database and full transaction id a log's name holds.
pub fn parse_name(name: &str) -> Option<(u32, u64)> {
    let (database, xid) = name.split_once('-')?;
    Some((database.parse().ok()?, xid.parse().ok()?))
}

fn io_error(path: &std::path::Path, e: std::io::Error) -> Error {
    Error::sql(
        PgSqlErrorCode::ERRCODE_IO_ERROR,
        format!(
            "cannot write the log of writes sent to Salesforce, {}: {e}",
            path.display()
        ),
    )
}

fn open_log() -> Result<Open> {
    // The log is named by the transaction's id, which it gets now if its
    // local writes have not given it one. That id must be in the WAL, on
    // disk, before anything is sent: after a crash, an id the WAL never
    // saw could be given to another transaction, whose fate would be
    // taken for this one's.
    let (xid, timeline) = unsafe {
        let xid = pg_sys::GetTopFullTransactionId().value;
        let lsn = LogLogicalMessage(c"pg_salesforce".as_ptr(), c"".as_ptr(), 0, true);
        pg_sys::XLogFlush(lsn);
        (xid, pg_sys::GetWALInsertionTimeLine())
    };
    let database = unsafe { pg_sys::MyDatabaseId }.to_u32();
    let dir = PathBuf::from(DIR);
    std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    let path = dir.join(file_name(database, xid));
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    file.lock().map_err(|e| io_error(&path, e))?;
    file.write_all(Entry::Began { timeline }.line().as_bytes())
        .map_err(|e| io_error(&path, e))?;
    // The name reaches the disk before the first call goes.
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(&dir, e))?;
    Ok(Open { file, path })
}

/// Appends `entry` to this transaction's log, making the log first;
/// `durable` returns only once it is on disk.
pub fn append(entry: &Entry, durable: bool) -> Result<()> {
    OPEN.with(|cell| {
        let mut open = cell.borrow_mut();
        if open.is_none() {
            *open = Some(open_log()?);
        }
        let log = open.as_mut().expect("opened above");
        entry
            .write_line(&mut log.file)
            .and_then(|()| {
                if durable {
                    log.file.sync_data()
                } else {
                    Ok(())
                }
            })
            .map_err(|e| io_error(&log.path, e))
    })
}

/// Whether this transaction has sent anything.
pub fn exists() -> bool {
    OPEN.with(|cell| cell.borrow().is_some())
}

/// What this transaction's own log says Salesforce may still hold; None
/// if it has no log, or the log cannot be read.
pub fn outstanding() -> Option<Outstanding> {
    OPEN.with(|cell| {
        let open = cell.borrow();
        let path = &open.as_ref()?.path;
        std::fs::read(path)
            .ok()
            .map(|log| sent_log::outstanding(&log))
    })
}

/// The transaction committed, or left nothing in Salesforce: its log goes.
pub fn remove() {
    if let Some(log) = OPEN.with(|cell| cell.borrow_mut().take()) {
        let _ = std::fs::remove_file(&log.path);
    }
}

/// The transaction ended leaving writes in Salesforce: its log stays, for
/// the worker, and its lock goes with the file's closing.
pub fn keep() {
    OPEN.with(|cell| cell.borrow_mut().take());
}
