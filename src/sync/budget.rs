//! A run's share of its server's API budget: whether its next request may
//! go now, and what each request cost. Every run on a server draws from
//! one bucket, kept in `salesforce.pacing`; the rules of the bucket are
//! `salesforce_core::sync::pacing`.

use super::store;
use crate::error::Result;
use chrono::Utc;
use salesforce_core::sync::pacing::{self, Bucket};
use std::time::Duration;

/// Pauses longer than this end the run as throttled instead of waiting.
const LONGEST_WAIT: Duration = Duration::from_secs(60);

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The server's limits for syncs, and how the sync's last runs fared.
pub struct Budget {
    max_per_day: f64,
    reserve_percent: f64,
    /// How many runs before this one in a row were throttled.
    throttled_before: i64,
}

/// Whether the next request may go.
pub enum Pace {
    Now,
    After(Duration),
    /// Not soon: the run stops as throttled, says why, and is due again
    /// in so many seconds.
    Throttled(String, i64),
}

impl Budget {
    pub fn new(max_per_day: f64, reserve_percent: f64, throttled_before: i64) -> Budget {
        Budget {
            max_per_day,
            reserve_percent,
            throttled_before,
        }
    }

    /// When to try again after the org's limit stopped the run.
    pub fn limit_retry(&self) -> i64 {
        pacing::limit_retry_seconds(self.throttled_before)
    }

    /// Whether the run's next request on `server` may go now, after the
    /// `api_requests` it made so far.
    pub fn pace(&self, server: &str, api_requests: i64) -> Result<Pace> {
        let row = store::load_pacing(server, false)?;
        // After a throttle, the run's first request looks afresh at the
        // org's usage (every answer carries it) instead of trusting the last.
        let probing = self.throttled_before > 0 && api_requests == 0;
        if let Some(r) = row.as_ref().filter(|_| !probing) {
            if let (Some(used), Some(max), true) = (r.org_used, r.org_max, r.fresh) {
                if pacing::below_reserve(used, max, self.reserve_percent) {
                    return Ok(Pace::Throttled(format!("the org has used {used} of its {max} daily API requests; syncs leave the last {}% to other clients", self.reserve_percent), self.limit_retry()));
                }
            }
        }
        let bucket = self.bucket(row.as_ref(), now_ms());
        let wait = bucket.wait(self.max_per_day);
        if wait > LONGEST_WAIT {
            return Ok(Pace::Throttled(
                format!(
                    "max_requests_per_day ({}) is used up for now; next request in {} s",
                    self.max_per_day,
                    wait.as_secs()
                ),
                wait.as_secs() as i64 + 1,
            ));
        }
        Ok(if wait.is_zero() {
            Pace::Now
        } else {
            Pace::After(wait)
        })
    }

    /// The server's bucket as stored (full when none is), refilled to `now`.
    fn bucket(&self, row: Option<&store::PacingRow>, now: i64) -> Bucket {
        row.map(|r| Bucket {
            tokens: r.tokens,
            at_ms: r.at_ms,
        })
        .unwrap_or_else(|| Bucket::full(self.max_per_day, now))
        .sane(self.max_per_day, now)
        .refilled(self.max_per_day, now)
    }

    /// Takes `requests` from `server`'s bucket, and keeps the org's usage
    /// that the last answer's `limit_info` tells.
    pub fn debit(&self, server: &str, requests: i64, limit_info: Option<&str>) -> Result<()> {
        let row = store::load_pacing(server, true)?;
        let bucket = self.bucket(row.as_ref(), now_ms());
        let org = limit_info.and_then(pacing::parse_limit_info);
        store::save_pacing(
            server,
            &store::PacingRow {
                tokens: bucket.tokens - requests as f64,
                at_ms: bucket.at_ms,
                org_used: org.map(|o| o.0),
                org_max: org.map(|o| o.1),
                fresh: true,
            },
        )?;
        Ok(())
    }
}
