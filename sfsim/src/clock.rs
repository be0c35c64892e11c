//! The simulator's clock: real time plus an offset that the control API can
//! advance, so expiries and change windows can be tested without waiting.

use chrono::{DateTime, Duration, DurationRound, Utc};
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// Now, at the millisecond precision Salesforce stores.
    pub fn now(&self) -> DateTime<Utc> {
        let t = Utc::now() + Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed));
        t.duration_trunc(Duration::milliseconds(1)).unwrap_or(t)
    }

    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::Relaxed);
    }
}
