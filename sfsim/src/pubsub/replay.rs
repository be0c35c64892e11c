//! The retained events and their replay ids. A replay id is eight bytes,
//! a big-endian counter that moves by a random step for every event, so ids
//! increase but are not contiguous and clients cannot compute one. Events
//! are kept for 72 hours of sfsim's clock.

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

pub const RETENTION_HOURS: i64 = 72;
/// Replay ids move by 1 to this much per event.
const MAX_STEP: u64 = 16;

/// One published event, as every subscriber receives it.
#[derive(Clone)]
pub struct StoredEvent {
    pub replay_id: u64,
    /// The object whose change it is.
    pub object: Arc<str>,
    pub uuid: String,
    pub schema_id: Arc<str>,
    pub payload: Arc<[u8]>,
    pub published_at: DateTime<Utc>,
    /// When it was published in real time, for the delivery delay fault.
    pub published: Instant,
    /// How many times Subscribe streams have received it.
    pub deliveries: Arc<AtomicU64>,
}

pub fn encode(replay_id: u64) -> Vec<u8> {
    replay_id.to_be_bytes().to_vec()
}

pub fn decode(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_be_bytes)
}

/// Where a subscription starts, as the first FetchRequest asks, other than
/// at the tip.
pub enum Start<'a> {
    Earliest,
    After(&'a [u8]),
}

pub struct ReplayLog {
    events: VecDeque<StoredEvent>,
    /// The position before any retained event; a subscription may start
    /// after it until an event older than it expires.
    base: u64,
    /// The newest position given out.
    tip: u64,
    /// The replay id of the newest expired event.
    expired_through: u64,
    rng: StdRng,
}

impl Default for ReplayLog {
    fn default() -> Self {
        let mut rng = StdRng::from_os_rng();
        let base = rng.random_range(1_000..1_000_000);
        ReplayLog {
            events: VecDeque::new(),
            base,
            tip: base,
            expired_through: 0,
            rng,
        }
    }
}

impl ReplayLog {
    pub fn tip(&self) -> u64 {
        self.tip
    }

    /// How many events are retained.
    pub fn retained(&self) -> usize {
        self.events.len()
    }

    /// The next event's replay id.
    pub fn next_id(&mut self) -> u64 {
        self.tip += self.rng.random_range(1..=MAX_STEP);
        self.tip
    }

    /// Keeps an event whose replay id came from `next_id`.
    pub fn push(&mut self, event: StoredEvent) {
        debug_assert!(self
            .events
            .back()
            .is_none_or(|e| e.replay_id < event.replay_id));
        self.events.push_back(event);
    }

    /// Drops events older than the retention window.
    pub fn expire(&mut self, now: DateTime<Utc>) {
        let oldest_kept = now - Duration::hours(RETENTION_HOURS);
        while let Some(e) = self.events.front() {
            if e.published_at >= oldest_kept {
                break;
            }
            self.expired_through = e.replay_id;
            self.events.pop_front();
        }
    }

    /// Forgets every event; positions given out before are no longer valid.
    pub fn clear(&mut self) {
        if let Some(last) = self.events.back() {
            self.expired_through = last.replay_id;
        }
        self.events.clear();
        self.base = self.next_id();
    }

    /// The position a subscription starts after, or None when `After` names
    /// no position still retained.
    pub fn start(&self, start: Start) -> Option<u64> {
        match start {
            Start::Earliest => Some(self.events.front().map_or(self.tip, |e| e.replay_id - 1)),
            Start::After(bytes) => {
                let id = decode(bytes)?;
                let retained = id == self.base
                    || self
                        .events
                        .binary_search_by_key(&id, |e| e.replay_id)
                        .is_ok();
                (retained && id > self.expired_through).then_some(id)
            }
        }
    }

    /// Every retained event, oldest first.
    pub fn events(&self) -> impl Iterator<Item = &StoredEvent> {
        self.events.iter()
    }

    /// The events after `position`, oldest first.
    pub fn after(&self, position: u64) -> impl Iterator<Item = &StoredEvent> {
        let from = self.events.partition_point(|e| e.replay_id <= position);
        self.events.range(from..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(log: &mut ReplayLog, at: DateTime<Utc>) -> u64 {
        let replay_id = log.next_id();
        log.push(StoredEvent {
            replay_id,
            object: "Account".into(),
            uuid: String::new(),
            schema_id: "s".into(),
            payload: Arc::from(&[][..]),
            published_at: at,
            published: Instant::now(),
            deliveries: Arc::default(),
        });
        replay_id
    }

    #[test]
    fn ids_increase_with_gaps_and_expire_after_72_hours() {
        let mut log = ReplayLog::default();
        let t0 = Utc::now();
        let start = log.tip();
        assert_eq!(log.start(Start::After(&encode(start))), Some(start));
        let a = event(&mut log, t0);
        let b = event(&mut log, t0 + Duration::hours(2));
        assert!(start < a && a < b);
        assert_eq!(log.start(Start::After(&encode(a))), Some(a));
        assert_eq!(
            log.start(Start::After(&encode(a + 100))),
            None,
            "never given out"
        );
        assert_eq!(log.start(Start::After(b"short")), None);
        assert_eq!(log.start(Start::Earliest), Some(a - 1));
        assert_eq!(
            log.after(a).map(|e| e.replay_id).collect::<Vec<_>>(),
            vec![b]
        );
        log.expire(t0 + Duration::hours(73));
        assert_eq!(log.start(Start::After(&encode(a))), None, "expired");
        assert_eq!(
            log.start(Start::After(&encode(start))),
            None,
            "older than an expired event"
        );
        assert_eq!(log.start(Start::After(&encode(b))), Some(b));
        log.clear();
        assert_eq!(log.start(Start::After(&encode(b))), None);
        let fresh = log.tip();
        assert!(fresh > b);
        assert_eq!(log.start(Start::After(&encode(fresh))), Some(fresh));
        assert_eq!(log.retained(), 0);
    }
}
