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
        self.forget_before(now);
        if self.used >= self.daily_limit {
            return false;
        }
        let minute = now.timestamp() / 60;
        match self.minutes.back_mut() {
            Some((m, n)) if *m == minute => *n += 1,
            _ => self.minutes.push_back((minute, 1)),
        }
        self.used += 1;
        true
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
    }
}
