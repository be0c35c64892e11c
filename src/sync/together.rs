//! Runs of several syncs side by side, a step each in turn. Their polls wait
//! for one another, so the polls of syncs on one user mapping share
//! composite calls: five syncs' changes and deletions per API request. The
//! worker and `CALL salesforce.sync_now(server)` drive runs this way; each
//! says how a step's local work is contained. A run that must wait (for
//! its server's budget, or a Bulk job) waits alone: the others go on.

use super::run::{fetch_polls, Fetched, Next, Request, Run};
use crate::error::{Error, Result};
use pgrx::pg_sys::Oid;
use salesforce_core::sync::poll_batch::DuePoll;
use std::time::{Duration, Instant};

/// How the driver contains local work: one run's failure must not undo
/// another's steps.
pub trait Steps {
    /// Runs `f` so that its failure rolls back its own work only.
    fn local<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T>;
    fn wait(&self, d: Duration);

    /// Sees what each fetch brought before it is applied: the worker's
    /// circuit breakers learn which servers answer.
    fn observe(&self, _run: &Run, _fetched: &Fetched) {}
}

/// A run going on, and why it failed if it did.
pub struct Going {
    pub run: Run,
    pub done: bool,
    pub failure: Option<Error>,
    /// Until when the run waits before its next step.
    ready_at: Option<Instant>,
}

impl Going {
    pub fn new(run: Run) -> Going {
        Going {
            run,
            done: false,
            failure: None,
            ready_at: None,
        }
    }

    pub fn fail(&mut self, e: Error) {
        self.failure = Some(e);
        self.done = true;
    }

    fn apply(&mut self, steps: &impl Steps, fetched: Fetched) {
        steps.observe(&self.run, &fetched);
        if let Err(e) = steps.local(|| self.run.apply(fetched)) {
            self.fail(e);
        }
    }
}

/// One step of every run not done and not waiting: requests of their own
/// go one by one, polls together. When no run could take a step, returns
/// how long until the first waiting one may.
pub fn round(going: &mut [Going], steps: &impl Steps) -> Option<Duration> {
    let mut polls: Vec<((Oid, Oid), DuePoll)> = Vec::new();
    let mut progressed = false;
    for g in going.iter_mut().filter(|g| !g.done) {
        if g.ready_at.is_some_and(|at| at > Instant::now()) {
            continue;
        }
        g.ready_at = None;
        match steps.local(|| g.run.prepare()) {
            Ok(Next::Wait(d)) => {
                g.ready_at = Some(Instant::now() + d);
                continue;
            }
            Err(e) => g.fail(e),
            Ok(Next::Done) => g.done = true,
            Ok(Next::Fetch(Request::Poll(poll))) => polls.push((g.run.mapping(), poll)),
            Ok(Next::Fetch(request)) => {
                let fetched = g.run.fetch(request);
                g.apply(steps, fetched);
            }
        }
        progressed = true;
    }
    while let Some(&(mapping, _)) = polls.first() {
        let (shared, rest): (Vec<_>, Vec<_>) = polls.into_iter().partition(|(m, _)| *m == mapping);
        polls = rest;
        let shared = shared.into_iter().map(|(_, p)| p).collect();
        for (sync_id, fetched) in fetch_polls(mapping.0, mapping.1, shared) {
            if let Some(g) = going.iter_mut().find(|g| g.run.sync_id() == sync_id) {
                g.apply(steps, fetched);
            }
        }
    }
    if progressed {
        return None;
    }
    let now = Instant::now();
    going
        .iter()
        .filter(|g| !g.done)
        .filter_map(|g| g.ready_at)
        .min()
        .map(|at| at.saturating_duration_since(now))
}
