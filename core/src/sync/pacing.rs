//! API pacing per server: a token bucket that refills at the server's daily
//! share (`max_requests_per_day`) and holds up to an hour of it, so a
//! backfill can burst while the day's total stays capped; plus the org-wide
//! reserve read from `Sforce-Limit-Info`.

use std::time::Duration;

const SECONDS_PER_DAY: f64 = 86_400.0;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub tokens: f64,
    pub at_ms: i64,
}

fn capacity(max_per_day: f64) -> f64 {
    (max_per_day / 24.0).max(1.0)
}

impl Bucket {
    pub fn full(max_per_day: f64, now_ms: i64) -> Bucket {
        Bucket {
            tokens: capacity(max_per_day),
            at_ms: now_ms,
        }
    }

    pub fn refilled(self, max_per_day: f64, now_ms: i64) -> Bucket {
        let elapsed = (now_ms - self.at_ms).max(0) as f64 / 1000.0;
        Bucket {
            tokens: (self.tokens + elapsed * max_per_day / SECONDS_PER_DAY)
                .min(capacity(max_per_day)),
            at_ms: now_ms.max(self.at_ms),
        }
    }

    /// The bucket as stored, brought within what pacing itself can leave:
    /// from one hour's share overdrawn to one hour's share, refilled no
    /// later than now. A bad row then costs an hour at most, never the
    /// server's syncs for good.
    pub fn sane(self, max_per_day: f64, now_ms: i64) -> Bucket {
        let full = capacity(max_per_day);
        let tokens = if self.tokens.is_finite() {
            self.tokens.clamp(-full, full)
        } else {
            0.0
        };
        Bucket {
            tokens,
            at_ms: self.at_ms.min(now_ms),
        }
    }

    /// How long until a request may go.
    pub fn wait(self, max_per_day: f64) -> Duration {
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) * SECONDS_PER_DAY / max_per_day)
        }
    }
}

/// `api-usage=25/15000` → (25, 15000).
pub fn parse_limit_info(header: &str) -> Option<(i64, i64)> {
    let usage = header
        .split(';')
        .find_map(|p| p.trim().strip_prefix("api-usage="))?;
    let (used, max) = usage.split_once('/')?;
    Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
}

/// Whether the org has less left than the reserve the syncs must leave.
pub fn below_reserve(used: i64, max: i64, reserve_percent: f64) -> bool {
    max > 0 && ((max - used) as f64) < max as f64 * reserve_percent / 100.0
}

/// How long a sync waits after the org's limit stopped it, when it has
/// been stopped so `times_before` runs in a row already: a minute, doubling
/// up to 15, so a short exhaustion costs minutes, not a quarter hour.
pub fn limit_retry_seconds(times_before: i64) -> i64 {
    (60_i64 << times_before.clamp(0, 4)).min(900)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_retries_grow_from_a_minute_to_a_quarter_hour() {
        let waits: Vec<i64> = (0..7).map(limit_retry_seconds).collect();
        assert_eq!(waits, vec![60, 120, 240, 480, 900, 900, 900]);
    }

    #[test]
    fn the_bucket_bursts_an_hour_and_refills_at_the_daily_rate() {
        let b = Bucket::full(28_800.0, 0);
        assert_eq!(b.tokens, 1_200.0);
        let empty = Bucket {
            tokens: 0.0,
            at_ms: 0,
        };
        assert_eq!(
            empty.wait(28_800.0),
            Duration::from_secs(3),
            "one request every 3 s"
        );
        assert_eq!(empty.refilled(28_800.0, 3_000).tokens, 1.0);
        assert_eq!(
            empty.refilled(28_800.0, 86_400_000).tokens,
            1_200.0,
            "never more than an hour's share"
        );
        assert_eq!(
            Bucket {
                tokens: -2.0,
                at_ms: 0
            }
            .wait(86_400.0),
            Duration::from_secs(3)
        );
        assert_eq!(
            Bucket {
                tokens: 5.0,
                at_ms: 10
            }
            .refilled(28_800.0, 0)
            .at_ms,
            10,
            "a clock going back refills nothing"
        );
    }

    #[test]
    fn a_bad_bucket_costs_an_hour_at_most() {
        let now = 1_000_000;
        let drained = Bucket {
            tokens: -1e15,
            at_ms: i64::MAX,
        }
        .sane(28_800.0, now)
        .refilled(28_800.0, now);
        assert_eq!(drained.at_ms, now, "a refill time in the future is now");
        assert!(drained.wait(28_800.0) <= Duration::from_secs(2 * 3600));
        let nan = Bucket {
            tokens: f64::NAN,
            at_ms: 0,
        }
        .sane(28_800.0, now);
        assert_eq!(nan.tokens, 0.0);
        let rich = Bucket {
            tokens: 1e12,
            at_ms: 0,
        }
        .sane(28_800.0, now);
        assert_eq!(rich.tokens, 1_200.0, "never more than the bucket holds");
    }

    #[test]
    fn limit_info_and_reserve() {
        assert_eq!(parse_limit_info("api-usage=25/15000"), Some((25, 15_000)));
        assert_eq!(
            parse_limit_info("per-app-api-usage=1/2; api-usage=7/100"),
            Some((7, 100))
        );
        assert_eq!(parse_limit_info("api-usage=x/100"), None);
        assert!(!below_reserve(80, 100, 20.0));
        assert!(below_reserve(81, 100, 20.0));
        assert!(!below_reserve(0, 0, 20.0));
    }
}
