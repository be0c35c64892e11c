//! Requests to Salesforce made on threads of their own: at most
//! `salesforce.worker_requests_in_flight` at once, one job per user mapping
//! at a time, so a server that hangs holds up its own work only. The
//! backend makes the jobs (a round of syncs' requests, a batch of queued
//! writes) and applies what they bring; the threads call nothing of
//! PostgreSQL's but `SetLatch`, to wake the backend when done.

use crate::connection::{self, Lent};
use crate::error::Error;
use crate::gucs;
use pgrx::pg_sys::{self, Oid};
use pgrx::PgSqlErrorCode;
use salesforce_core::client::session::Session;
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

/// A server and a role whose user mapping the work uses.
pub type Mapping = (Oid, Oid);

/// What a thread does with a fork of the mapping's session.
pub trait Work: Send + 'static {
    type Out: Send + 'static;
    fn make(self, session: &mut Session) -> Self::Out;
    /// What the work comes to when it could not be made, and why.
    fn unmade(&self, e: &Error) -> Self::Out;
}

/// What a job brought.
pub struct Landed<O> {
    pub out: O,
}

struct Done<O> {
    mapping: Mapping,
    lent: Option<Lent>,
    out: O,
}

pub struct Flight<W: Work> {
    /// Mappings with a job queued or going on.
    busy: HashSet<Mapping>,
    queued: VecDeque<(Mapping, W)>,
    running: usize,
    /// Jobs that failed before they could start.
    refused: Vec<Done<W::Out>>,
    sender: Sender<Done<W::Out>>,
    landings: Receiver<Done<W::Out>>,
}

impl<W: Work> Default for Flight<W> {
    fn default() -> Flight<W> {
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

impl<W: Work> Flight<W> {
    /// Whether the mapping has a job queued or going on: its work waits for it.
    pub fn busy(&self, mapping: Mapping) -> bool {
        self.busy.contains(&mapping)
    }

    pub fn in_flight(&self) -> bool {
        !self.busy.is_empty()
    }

    /// Queues the mapping's job, and starts what the bound allows.
    pub fn launch(&mut self, mapping: Mapping, job: W) {
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
                    let out = job.unmade(&e);
                    self.refused.push(Done {
                        mapping,
                        lent: None,
                        out,
                    });
                    continue;
                }
            };
            let if_panics = job.unmade(&Error::sql(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                "the thread making a request to Salesforce panicked",
            ));
            let if_unstarted = job.unmade(&Error::Salesforce(SalesforceError::Config(
                "cannot start a thread for a request".into(),
            )));
            let sender = self.sender.clone();
            let latch = unsafe { pg_sys::MyLatch } as usize;
            let spawned = std::thread::Builder::new()
                .name("pg_salesforce request".into())
                .stack_size(1 << 20)
                .spawn(move || {
                    crate::read_ahead::block_signals();
                    let mut lent = lent;
                    let out = catch_unwind(AssertUnwindSafe(|| job.make(&mut lent.session)))
                        .unwrap_or(if_panics);
                    let _ = sender.send(Done {
                        mapping,
                        lent: Some(lent),
                        out,
                    });
                    unsafe { SetLatch(latch as *mut pg_sys::Latch) };
                });
            match spawned {
                Ok(_) => self.running += 1,
                Err(_) => self.refused.push(Done {
                    mapping,
                    lent: None,
                    out: if_unstarted,
                }),
            }
        }
    }

    /// The jobs that came back since the last look, without waiting.
    pub fn landed(&mut self) -> Vec<Landed<W::Out>> {
        let mut done: Vec<Done<W::Out>> = std::mem::take(&mut self.refused);
        done.extend(self.landings.try_iter());
        self.take(done)
    }

    /// Waits up to `d` for a job to come back, then takes those back.
    pub fn wait(&mut self, d: Duration) -> Vec<Landed<W::Out>> {
        let mut done: Vec<Done<W::Out>> = std::mem::take(&mut self.refused);
        if done.is_empty() && self.running > 0 {
            match self.landings.recv_timeout(d) {
                Ok(first) => done.push(first),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            }
        }
        done.extend(self.landings.try_iter());
        self.take(done)
    }

    fn take(&mut self, done: Vec<Done<W::Out>>) -> Vec<Landed<W::Out>> {
        let landed = done
            .into_iter()
            .map(|d| {
                if let Some(lent) = d.lent {
                    self.running -= 1;
                    connection::take_back(lent);
                }
                self.busy.remove(&d.mapping);
                Landed { out: d.out }
            })
            .collect();
        self.start_queued();
        landed
    }
}
