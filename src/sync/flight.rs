//! Requests to Salesforce made on threads of their own: at most
//! `salesforce.worker_requests_in_flight` at once, one job per user mapping
//! at a time, so a server that hangs holds up its own syncs only. The
//! backend makes the jobs and applies what they bring; the threads call
//! nothing of PostgreSQL's but `SetLatch`, to wake the backend when done.

use super::fetch::{perform, poll_together, Fetched, Request};
use crate::connection::{self, Lent};
use crate::error::Error;
use crate::gucs;
use pgrx::pg_sys::{self, Oid};
use pgrx::PgSqlErrorCode;
use salesforce_core::sync::poll_batch::DuePoll;
use salesforce_core::SalesforceError;
use std::collections::{HashSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

extern "C-unwind" {
    /// PostgreSQL's own (storage/ipc/latch.c), declared here rather than
    /// through pgrx, whose wrappers are for the backend's thread: it sets a
    /// flag and signals this process, as safe from a thread as from a
    /// signal handler.
    fn SetLatch(latch: *mut pg_sys::Latch);
}

/// A server and a role whose user mapping a run uses.
pub type Mapping = (Oid, Oid);

/// The requests of one user mapping's runs, made one after another with
/// one session, the polls in shared composite calls.
#[derive(Default)]
pub struct Job {
    singles: Vec<(i64, Request)>,
    polls: Vec<DuePoll>,
}

impl Job {
    /// Adds sync `sync_id`'s request.
    pub fn add(&mut self, sync_id: i64, request: Request) {
        match request {
            Request::Poll(poll) => self.polls.push(poll),
            other => self.singles.push((sync_id, other)),
        }
    }

    fn sync_ids(&self) -> Vec<i64> {
        let singles = self.singles.iter().map(|(id, _)| *id);
        singles.chain(self.polls.iter().map(|p| p.key)).collect()
    }

    fn make(self, session: &mut salesforce_core::client::session::Session) -> Vec<(i64, Fetched)> {
        let mut fetched: Vec<(i64, Fetched)> = self
            .singles
            .into_iter()
            .map(|(id, request)| (id, perform(session, request)))
            .collect();
        if !self.polls.is_empty() {
            fetched.extend(poll_together(session, self.polls));
        }
        fetched
    }
}

/// What a job brought: each sync's answer.
pub struct Landed {
    pub fetched: Vec<(i64, Fetched)>,
}

struct Done {
    mapping: Mapping,
    lent: Option<Lent>,
    fetched: Vec<(i64, Fetched)>,
}

pub struct Flight {
    /// Mappings with a job queued or going on.
    busy: HashSet<Mapping>,
    queued: VecDeque<(Mapping, Job)>,
    running: usize,
    /// Jobs that failed before they could start.
    refused: Vec<Done>,
    sender: Sender<Done>,
    landings: Receiver<Done>,
}

impl Default for Flight {
    fn default() -> Flight {
        let (sender, landings) = channel();
        Flight {
            busy: HashSet::new(),
            queued: VecDeque::new(),
            running: 0,
            refused: Vec::new(),
            sender,
            landings,
        }
    }
}

/// Every sync of `job` failing with `e`.
fn all_failed(sync_ids: Vec<i64>, e: &Error) -> Vec<(i64, Fetched)> {
    sync_ids
        .into_iter()
        .map(|id| (id, Fetched::failed(Error::sql(e.code(), e.message()))))
        .collect()
}

impl Flight {
    /// Whether the mapping has a job queued or going on: its runs wait for it.
    pub fn busy(&self, mapping: Mapping) -> bool {
        self.busy.contains(&mapping)
    }

    pub fn in_flight(&self) -> bool {
        !self.busy.is_empty()
    }

    /// Queues the mapping's job, and starts what the bound allows.
    pub fn launch(&mut self, mapping: Mapping, job: Job) {
        self.busy.insert(mapping);
        self.queued.push_back((mapping, job));
        self.start_queued();
    }

    fn start_queued(&mut self) {
        let max = gucs::WORKER_REQUESTS_IN_FLIGHT.get().max(1) as usize;
        while self.running < max {
            let Some((mapping, job)) = self.queued.pop_front() else {
                break;
            };
            let lent = match connection::lend(mapping.0, mapping.1) {
                Ok(lent) => lent,
                Err(e) => {
                    self.refused.push(Done {
                        mapping,
                        lent: None,
                        fetched: all_failed(job.sync_ids(), &e),
                    });
                    continue;
                }
            };
            let sync_ids = job.sync_ids();
            let unsent = sync_ids.clone();
            let sender = self.sender.clone();
            let latch = unsafe { pg_sys::MyLatch } as usize;
            let spawned = std::thread::Builder::new()
                .name("pg_salesforce request".into())
                .stack_size(1 << 20)
                .spawn(move || {
                    crate::read_ahead::block_signals();
                    let mut lent = lent;
                    let fetched = catch_unwind(AssertUnwindSafe(|| job.make(&mut lent.session)))
                        .unwrap_or_else(|_| {
                            let e = Error::sql(
                                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                                "the thread making a request to Salesforce panicked",
                            );
                            all_failed(sync_ids, &e)
                        });
                    let _ = sender.send(Done {
                        mapping,
                        lent: Some(lent),
                        fetched,
                    });
                    unsafe { SetLatch(latch as *mut pg_sys::Latch) };
                });
            match spawned {
                Ok(_) => self.running += 1,
                Err(e) => {
                    let e = Error::Salesforce(SalesforceError::Config(format!(
                        "cannot start a thread for a request: {e}"
                    )));
                    self.refused.push(Done {
                        mapping,
                        lent: None,
                        fetched: all_failed(unsent, &e),
                    });
                }
            }
        }
    }

    /// The jobs that came back since the last look, without waiting.
    pub fn landed(&mut self) -> Vec<Landed> {
        let mut done: Vec<Done> = std::mem::take(&mut self.refused);
        done.extend(self.landings.try_iter());
        self.take(done)
    }

    /// Waits up to `d` for a job to come back, then takes those back.
    pub fn wait(&mut self, d: Duration) -> Vec<Landed> {
        let mut done: Vec<Done> = std::mem::take(&mut self.refused);
        if done.is_empty() && self.running > 0 {
            match self.landings.recv_timeout(d) {
                Ok(first) => done.push(first),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            }
        }
        done.extend(self.landings.try_iter());
        self.take(done)
    }

    fn take(&mut self, done: Vec<Done>) -> Vec<Landed> {
        let landed = done
            .into_iter()
            .map(|d| {
                if let Some(lent) = d.lent {
                    self.running -= 1;
                    connection::take_back(lent);
                }
                self.busy.remove(&d.mapping);
                Landed { fetched: d.fetched }
            })
            .collect();
        self.start_queued();
        landed
    }
}
