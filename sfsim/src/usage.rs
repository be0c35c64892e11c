//! Daily API request accounting over a rolling 24 hours, as Salesforce counts it.

use chrono::{DateTime, Utc};
use std::collections::VecDeque;

const WINDOW_MINUTES: i64 = 24 * 60;

pub struct Usage {
    pub daily_limit: u64,
    /// Requests counted per minute of simulated time, oldest first.
    minutes: VecDeque<(i64, u64)>,
    used: u64,
    /// Every authenticated API request, counted or refused.
    pub requests_seen: u64,
}

impl Usage {
    pub fn new(daily_limit: u64) -> Usage {
        Usage {
            daily_limit,
            minutes: VecDeque::new(),
            used: 0,
            requests_seen: 0,
        }
    }

    fn forget_before(&mut self, now: DateTime<Utc>) {
        let oldest_kept = now.timestamp() / 60 - WINDOW_MINUTES + 1;
        while let Some(&(minute, n)) = self.minutes.front() {
            if minute >= oldest_kept {
                break;
            }
            self.used -= n;
            self.minutes.pop_front();
        }
    }

    pub fn used(&mut self, now: DateTime<Utc>) -> u64 {
        self.forget_before(now);
        self.used
    }

    /// Counts one request, or refuses it when the daily limit is reached.
    pub fn take(&mut self, now: DateTime<Utc>) -> bool {
        self.requests_seen += 1;
        self.take_many(1, now) == 1
    }

    /// Counts as many of `n` uses as the daily limit leaves room for, and
    /// answers how many that is.
    pub fn take_many(&mut self, n: u64, now: DateTime<Utc>) -> u64 {
        self.forget_before(now);
        let n = n.min(self.daily_limit.saturating_sub(self.used));
        if n == 0 {
            return 0;
        }
        let minute = now.timestamp() / 60;
        match self.minutes.back_mut() {
            Some((m, count)) if *m == minute => *count += n,
            _ => self.minutes.push_back((minute, n)),
        }
        self.used += n;
        n
    }

    /// The `Sforce-Limit-Info` header value.
    pub fn header(&mut self, now: DateTime<Utc>) -> String {
        format!("api-usage={}/{}", self.used(now), self.daily_limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn limit_refuses_then_window_rolls() {
        let t0 = Utc::now();
        let mut u = Usage::new(2);
        assert!(u.take(t0) && u.take(t0));
        assert!(!u.take(t0), "third request is over the limit");
        assert_eq!(u.header(t0), "api-usage=2/2");
        assert!(!u.take(t0 + Duration::hours(23)));
        assert!(
            u.take(t0 + Duration::hours(24) + Duration::minutes(1)),
            "budget returns after 24 hours"
        );
        assert_eq!(u.requests_seen, 5);
        let mut events = Usage::new(10);
        assert_eq!(events.take_many(7, t0), 7);
        assert_eq!(events.take_many(7, t0), 3, "only what the limit leaves");
        assert_eq!(events.used(t0 + Duration::hours(25)), 0);
    }
}
