//! A circuit breaker per server, for the sync worker. An org that keeps
//! failing (no connection, timeouts, 5xx after the client's own retries)
//! is left alone for a while, longer each time, instead of holding a run
//! and a request open on every cycle; one success closes it again. Pure
//! logic: the worker asks it before it starts a server's runs.

use std::time::{Duration, Instant};

/// Failed fetches in a row that open the breaker: one, since a fetch fails
/// only after the client's own retries (`http::MAX_RETRIES`) failed too.
pub const FAILURES_TO_OPEN: u32 = 1;
const FIRST_PAUSE: Duration = Duration::from_secs(5);
/// A server that is down is tried again at least this often, so that
/// queued writes and syncs resume within about half a minute of its return;
/// a try costs one request on a thread of its own.
const LONGEST_PAUSE: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, Default)]
pub struct Breaker {
    failures: u32,
    /// How many times in a row it opened: each doubles the pause.
    openings: u32,
    open_until: Option<Instant>,
}

/// What a failure or a success did to the breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Opened(Duration),
    Closed,
    None,
}

impl Breaker {
    /// Whether the server may be asked now: closed, or open and its pause
    /// over (one run tries it again).
    pub fn allows(&self, now: Instant) -> bool {
        self.open_until.is_none_or(|until| now >= until)
    }

    pub fn is_open(&self) -> bool {
        self.open_until.is_some()
    }

    /// When the server may be asked again, while open.
    pub fn open_until(&self) -> Option<Instant> {
        self.open_until
    }

    pub fn failure(&mut self, now: Instant) -> Change {
        if self.open_until.is_some_and(|until| now < until) {
            // Another run's news of the same outage.
            return Change::None;
        }
        self.failures += 1;
        let trying_again = self.open_until.is_some_and(|until| now >= until);
        if self.failures < FAILURES_TO_OPEN && !trying_again {
            return Change::None;
        }
        let pause = FIRST_PAUSE
            .saturating_mul(1 << self.openings.min(10))
            .min(LONGEST_PAUSE);
        self.openings += 1;
        self.open_until = Some(now + pause);
        Change::Opened(pause)
    }

    pub fn success(&mut self) -> Change {
        let was_open = self.open_until.is_some();
        *self = Breaker::default();
        if was_open {
            Change::Closed
        } else {
            Change::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_opens_it_and_the_pause_doubles_up_to_five_minutes() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        assert!(b.allows(t0));
        assert_eq!(b.failure(t0), Change::Opened(Duration::from_secs(5)));
        assert!(!b.allows(t0 + Duration::from_secs(4)));
        assert!(b.allows(t0 + Duration::from_secs(5)), "one run tries again");
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(
            b.failure(t1),
            Change::Opened(Duration::from_secs(10)),
            "a failed try opens it at once"
        );
        let mut t = t1 + Duration::from_secs(10);
        let mut last = Duration::ZERO;
        for _ in 0..10 {
            if let Change::Opened(p) = b.failure(t) {
                last = p;
                t += p;
            }
        }
        assert_eq!(last, Duration::from_secs(30));
        assert_eq!(b.success(), Change::Closed);
        assert!(b.allows(t) && !b.is_open());
        assert_eq!(b.success(), Change::None);
    }

    #[test]
    fn a_success_closes_it_and_starts_the_pauses_over() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        b.failure(t0);
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(b.failure(t1), Change::Opened(Duration::from_secs(10)));
        assert_eq!(b.success(), Change::Closed);
        assert_eq!(b.failure(t1), Change::Opened(Duration::from_secs(5)));
    }

    #[test]
    fn the_runs_of_one_outage_open_it_once() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        assert_eq!(b.failure(t0), Change::Opened(Duration::from_secs(5)));
        for _ in 0..3 {
            assert_eq!(
                b.failure(t0),
                Change::None,
                "the other syncs of that request"
            );
        }
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(b.failure(t1), Change::Opened(Duration::from_secs(10)));
    }
}
