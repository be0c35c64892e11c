//! Work done on a thread of its own while the backend goes on: reading and
//! converting the next batch of an answer while the previous one is stored.
//! The producer must not call into PostgreSQL (no palloc, no ereport, no
//! SPI); the values module's text conversions and the client's reads are
//! pure Rust. Signals stay with the backend's own thread.

use crate::error::{remember_secrets, Error, Result};
use chrono::{DateTime, Utc};
use pgrx::PgSqlErrorCode;
use salesforce_core::client::session::{PageHead, Session};
use std::sync::mpsc::{channel, sync_channel, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

/// How often a wait for the producer looks at PostgreSQL's interrupt flags.
pub(crate) const INTERRUPT_POLL: Duration = Duration::from_millis(100);

/// Items from a producer thread, which makes the next while the backend
/// handles the one before, and no more: memory stays bounded at two items,
/// and no more is read than one item past what the backend took.
pub struct ReadAhead<T> {
    items: Receiver<Result<T>>,
    /// With `Making::WhenAsked`, a token per item the backend asks for.
    asks: Option<Sender<()>>,
}

/// When the producer makes its next item.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Making {
    /// As soon as the backend has taken the one before.
    Ahead,
    /// Once the backend asks for it (`ask`), so nothing is read that a
    /// caller stopping early would not use.
    WhenAsked,
}

impl<T: Send + 'static> ReadAhead<T> {
    /// Runs `produce` until it returns None or an error. Dropping the
    /// ReadAhead stops it at its next item.
    pub fn start(
        making: Making,
        mut produce: impl FnMut() -> Option<Result<T>> + Send + 'static,
    ) -> ReadAhead<T> {
        let (sender, items) = sync_channel(0);
        let (asks, asked) = channel::<()>();
        let asked = (making == Making::WhenAsked).then_some(asked);
        std::thread::spawn(move || {
            block_signals();
            loop {
                if let Some(asked) = &asked {
                    if asked.recv().is_err() {
                        break;
                    }
                }
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
        ReadAhead {
            items,
            asks: (making == Making::WhenAsked).then_some(asks),
        }
    }

    /// Asks for the next item, with `Making::WhenAsked`.
    pub fn ask(&self) {
        if let Some(asks) = &self.asks {
            // A producer that has ended has nothing more to make.
            let _ = asks.send(());
        }
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
pub(crate) fn block_signals() {
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
}

/// What a producer made with its session, and what that cost, whatever the
/// outcome, for the log and pacing.
pub struct Counted<T> {
    pub answer: Result<T>,
    pub requests: i64,
    pub limit_info: Option<String>,
    pub server_time: Option<DateTime<Utc>>,
    /// The session's credentials, which it may have renewed: the backend
    /// must know them to keep them out of what it reports.
    pub secrets: Vec<String>,
}

impl<T> Counted<T> {
    pub fn failed(e: Error) -> Counted<T> {
        Counted {
            answer: Err(e),
            requests: 0,
            limit_info: None,
            server_time: None,
            secrets: Vec::new(),
        }
    }

    /// The answer, once the backend knows the credentials it may name.
    pub fn into_answer(self) -> Result<T> {
        remember_secrets(self.secrets);
        self.answer
    }
}

/// Where a query's pages begin: its statement, or a `nextRecordsUrl`.
pub enum PageSource {
    Query(String),
    Next(String),
}

/// A page as `parse` read it, and whether it is the query's last.
pub struct Page<T> {
    pub page: T,
    pub last: bool,
}

/// Fetches a query's pages with `session` (a fork of the backend's), each
/// as soon as the one before names it, and reads each with `parse`.
pub fn query_pages<T: Send + 'static>(
    mut session: Session,
    from: PageSource,
    making: Making,
    mut parse: impl FnMut(Vec<u8>) -> Result<T> + Send + 'static,
) -> ReadAhead<Counted<Page<T>>> {
    let mut next = Some(from);
    ReadAhead::start(making, move || {
        let from = next.take()?;
        let before = session.requests;
        let body = match from {
            PageSource::Query(soql) => session.query_text(&soql, false),
            PageSource::Next(url) => session.next_page_text(&url),
        };
        let answer = body.map_err(Error::from).and_then(|body| {
            next = PageHead::of(&body)?.next().map(PageSource::Next);
            Ok(Page {
                last: next.is_none(),
                page: parse(body)?,
            })
        });
        Some(Ok(Counted {
            answer,
            requests: (session.requests - before) as i64,
            limit_info: session.last_limit_info.clone(),
            server_time: session.last_server_time,
            secrets: session.secrets(),
        }))
    })
}
