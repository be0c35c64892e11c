//! The hourly platform event publishing allocation: events published over
//! a rolling hour of sfsim's clock, counted per minute.

use chrono::{DateTime, Utc};
use std::collections::VecDeque;

/// A Developer Edition org's hourly allocation for (high-volume) platform
/// events, `HourlyPublishedPlatformEvents` in `/limits`.
pub const DEFAULT_HOURLY_PUBLISHED: u64 = 50_000;

pub struct Hourly {
    pub limit: u64,
    minutes: VecDeque<(i64, u64)>,
    used: u64,
}

impl Hourly {
    pub fn new(limit: u64) -> Hourly {
        Hourly {
            limit,
            minutes: VecDeque::new(),
            used: 0,
        }
    }

    fn forget_before(&mut self, now: DateTime<Utc>) {
        let oldest_kept = now.timestamp() / 60 - 60 + 1;
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

    /// Counts one event, or answers false when the allocation is used up.
    pub fn take(&mut self, now: DateTime<Utc>) -> bool {
        self.forget_before(now);
        if self.used >= self.limit {
            return false;
        }
        let minute = now.timestamp() / 60;
        match self.minutes.back_mut() {
            Some((m, count)) if *m == minute => *count += 1,
            _ => self.minutes.push_back((minute, 1)),
        }
        self.used += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_later_the_allocation_is_back() {
        let mut h = Hourly::new(2);
        let t = Utc::now();
        assert!(h.take(t) && h.take(t));
        assert!(!h.take(t + chrono::Duration::minutes(59)));
        assert_eq!(h.used(t), 2);
        assert!(h.take(t + chrono::Duration::minutes(61)));
        assert_eq!(h.used(t + chrono::Duration::minutes(61)), 1);
    }
}
