//! Work done on a thread of its own while the backend goes on: reading and
//! converting the next batch of an answer while the previous one is stored.
//! The producer must not call into PostgreSQL (no palloc, no ereport, no
//! SPI); the values module's text conversions and the client's reads are
//! pure Rust. Signals stay with the backend's own thread.

use crate::error::{Error, Result};
use pgrx::PgSqlErrorCode;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::time::Duration;

/// How often a wait for the producer looks at PostgreSQL's interrupt flags.
const INTERRUPT_POLL: Duration = Duration::from_millis(100);

/// Items from a producer thread, at most one waiting beside the one being
/// made, so memory stays bounded at a few batches.
pub struct ReadAhead<T> {
    items: Receiver<Result<T>>,
}

impl<T: Send + 'static> ReadAhead<T> {
    /// Runs `produce` until it returns None or an error. Dropping the
    /// ReadAhead stops it at its next item.
    pub fn start(mut produce: impl FnMut() -> Option<Result<T>> + Send + 'static) -> ReadAhead<T> {
        let (sender, items) = sync_channel(1);
        std::thread::spawn(move || {
            block_signals();
            loop {
                let item = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut produce))
                    .unwrap_or_else(|_| {
                        Some(Err(Error::sql(
                            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                            "the thread reading ahead panicked",
                        )))
                    });
                let Some(item) = item else { break };
                let failed = item.is_err();
                if sender.send(item).is_err() || failed {
                    break;
                }
            }
        });
        ReadAhead { items }
    }

    /// The next item, waiting for it; None once the producer has ended.
    /// `interrupted` is checked while waiting, so a cancel is not held up.
    pub fn next(&self, interrupted: fn() -> bool) -> Option<Result<T>> {
        loop {
            match self.items.recv_timeout(INTERRUPT_POLL) {
                Ok(item) => return Some(item),
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) if interrupted() => {
                    return Some(Err(Error::Salesforce(
                        salesforce_core::SalesforceError::Cancelled,
                    )))
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

/// PostgreSQL's signal handlers must run on the backend's thread only.
fn block_signals() {
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
}
