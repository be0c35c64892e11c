//! Runs of several syncs side by side, a step each in turn. The requests
//! of one round go out together (`flight`): those of one user mapping in one
//! job, where the polls share composite calls (five syncs' changes and
//! deletions per API request), those of different mappings side by side.
//! What comes back is applied as it lands, so no run waits on another
//! server. The worker and `CALL salesforce.sync_now(server)` drive runs this
//! way; each says how a step's local work is contained. A run that must
//! wait (for its server's budget, or a Bulk job) waits alone.

use super::fetch::Fetched;
use super::flight::Job;
use super::run::{Next, Run};
use crate::connection;
use crate::error::{Error, Result};
use crate::flight::{Landed, Mapping};
use salesforce_core::SalesforceError;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The worker's request threads, as syncs use them.
pub type Flight = crate::flight::Flight<Job>;

/// How long a run waits, when it waits only for requests in flight, before
/// the driver looks again: a landing wakes the worker's latch sooner.
const IN_FLIGHT_NAP: Duration = Duration::from_secs(1);

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
    /// Its request is in flight.
    in_flight: bool,
}

impl Going {
    pub fn new(run: Run) -> Going {
        Going {
            run,
            done: false,
            failure: None,
            ready_at: None,
            in_flight: false,
        }
    }

    pub fn fail(&mut self, e: Error) {
        self.failure = Some(e);
        self.done = true;
        self.in_flight = false;
    }

    /// Whether the run waits for an answer in flight: it cannot end yet.
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    fn apply(&mut self, steps: &impl Steps, fetched: Fetched) {
        steps.observe(&self.run, &fetched);
        if let Err(e) = steps.local(|| self.run.apply(fetched)) {
            self.fail(e);
        }
    }
}

/// One step of every run not done, not waiting and with no request in
/// flight, its mapping's job not out: what landed is applied, the local
/// work done, the requests sent. When no run could take a step, returns
/// how long until the first waiting one may.
pub fn round(going: &mut [Going], steps: &impl Steps, flight: &mut Flight) -> Option<Duration> {
    let mut progressed = land(going, steps, flight.landed());
    let mut jobs: Vec<(Mapping, Job)> = Vec::new();
    for g in going.iter_mut().filter(|g| !g.done && !g.in_flight) {
        if g.ready_at.is_some_and(|at| at > Instant::now()) || flight.busy(g.run.mapping()) {
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
            Ok(Next::Fetch(request)) if request.is_detached() => {
                g.in_flight = true;
                let mapping = g.run.mapping();
                let at = match jobs.iter().position(|(m, _)| *m == mapping) {
                    Some(at) => at,
                    None => {
                        jobs.push((mapping, Job::default()));
                        jobs.len() - 1
                    }
                };
                jobs[at].1.add(g.run.sync_id(), request);
            }
            Ok(Next::Fetch(request)) => {
                let fetched = g.run.fetch(request);
                g.apply(steps, fetched);
            }
        }
        progressed = true;
    }
    for (mapping, job) in jobs {
        flight.launch(mapping, job);
    }
    if progressed {
        return None;
    }
    let now = Instant::now();
    let waiting = going
        .iter()
        .filter(|g| !g.done && !g.in_flight)
        .filter_map(|g| g.ready_at)
        .min()
        .map(|at| at.saturating_duration_since(now));
    match (waiting, flight.in_flight()) {
        (Some(w), true) => Some(w.min(IN_FLIGHT_NAP)),
        (None, true) => Some(IN_FLIGHT_NAP),
        (w, false) => w,
    }
}

/// Applies what landed to the runs that asked. True if anything did.
fn land(going: &mut [Going], steps: &impl Steps, landed: Vec<Landed<Vec<(i64, Fetched)>>>) -> bool {
    if landed.is_empty() {
        return false;
    }
    let at: HashMap<i64, usize> = going
        .iter()
        .enumerate()
        .map(|(i, g)| (g.run.sync_id(), i))
        .collect();
    for (sync_id, fetched) in landed.into_iter().flat_map(|l| l.out) {
        if let Some(g) = at.get(&sync_id).map(|&i| &mut going[i]) {
            if g.in_flight {
                g.in_flight = false;
                g.apply(steps, fetched);
            }
        }
    }
    true
}

/// Waits for every request in flight and applies what it brings, for a
/// driver that hands its runs back after each round (a procedure's step).
/// A cancel ends the wait, failing the runs still waiting.
pub fn settle(going: &mut [Going], steps: &impl Steps, flight: &mut Flight) {
    while flight.in_flight() {
        let landed = flight.wait(Duration::from_millis(100));
        land(going, steps, landed);
        if connection::interrupted() {
            for g in going.iter_mut().filter(|g| g.in_flight) {
                g.fail(Error::Salesforce(SalesforceError::Cancelled));
            }
            return;
        }
    }
}
