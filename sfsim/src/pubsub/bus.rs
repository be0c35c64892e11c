//! The org's event bus: which objects publish change events (Setup's
//! selection), the retained events, the event schemas, the delivery
//! allocation and the armed faults. Subscriptions wait on it for new events
//! and for the drop-streams fault.

use super::avro::{EventSchema, Schemas};
use super::events::{drafts, Publishing};
use super::faults::CdcFaults;
use super::hourly::{Hourly, DEFAULT_HOURLY_PUBLISHED};
use super::platform::PlatformSchema;
use super::replay::{ReplayLog, Start, StoredEvent};
use super::topics::Topic;
use crate::event_defs::EventDef;
use crate::journal::Change;
use crate::org::Org;
use crate::schema::ObjectDef;
use crate::usage::Usage;
use chrono::{DateTime, Utc};
use parking_lot::{Mutex, MutexGuard};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Change events delivered per rolling 24 hours, as a Developer Edition
/// org's allocation.
pub const DEFAULT_DAILY_DELIVERIES: u64 = 10_000;

/// The bus behind its lock; the control API reads and changes it.
pub struct State {
    /// The objects selected for Change Data Capture.
    pub selected: BTreeSet<String>,
    pub log: ReplayLog,
    pub faults: CdcFaults,
    schemas: Schemas,
    /// Events delivered to subscribers over the last 24 hours.
    pub deliveries: Usage,
    commits: i64,
    /// Platform event schemas, by event name.
    pub event_schemas: HashMap<String, Arc<PlatformSchema>>,
    /// Platform events published over the last hour.
    pub published: Hourly,
}

pub struct Bus {
    state: Mutex<State>,
    /// The newest replay id; subscriptions wait for it to move.
    tip: watch::Sender<u64>,
    /// Bumped to end every open stream.
    drops: watch::Sender<u64>,
}

impl Default for Bus {
    fn default() -> Self {
        let log = ReplayLog::default();
        let (tip, _) = watch::channel(log.tip());
        let (drops, _) = watch::channel(0);
        Bus {
            state: Mutex::new(State {
                selected: BTreeSet::new(),
                log,
                schemas: Schemas::default(),
                faults: CdcFaults::default(),
                deliveries: Usage::new(DEFAULT_DAILY_DELIVERIES),
                commits: 0,
                event_schemas: HashMap::new(),
                published: Hourly::new(DEFAULT_HOURLY_PUBLISHED),
            }),
            tip,
            drops,
        }
    }
}

/// What one fetch found for a subscription.
pub struct Fetched {
    pub events: Vec<StoredEvent>,
    /// The subscription's new position: after the last event delivered, or
    /// the bus's tip when no event of its topic lies beyond it.
    pub position: u64,
    /// When the next event held back by the delay fault becomes deliverable.
    pub held_until: Option<Instant>,
}

impl Bus {
    /// The bus's state, for the control API.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Publishes the change events of committed changes.
    pub fn publish(&self, org: &Org, changes: Vec<Change>, now: DateTime<Utc>) {
        let mut state = self.state.lock();
        let state = &mut *state;
        let events = drafts(
            &mut Publishing {
                org,
                selected: &state.selected,
                schemas: &mut state.schemas,
                faults: &mut state.faults,
                commits: &mut state.commits,
            },
            changes,
        );
        if events.is_empty() {
            return;
        }
        let published = Instant::now();
        for event in events {
            let payload = event.schema.encode(&event.header, &event.carried);
            let replay_id = state.log.next_id();
            state.log.push(StoredEvent {
                replay_id,
                object: event.object,
                uuid: super::uuid(),
                schema_id: event.schema.id.clone(),
                payload: payload.into(),
                published_at: now,
                published,
                deliveries: Arc::default(),
            });
        }
        self.tip.send_replace(state.log.tip());
    }

    /// The platform event's schema, made once per event definition.
    pub fn event_schema(&self, def: &Arc<EventDef>) -> Arc<PlatformSchema> {
        let mut state = self.state.lock();
        if let Some(schema) = state.event_schemas.get(&def.name) {
            if Arc::ptr_eq(&schema.event, def) {
                return schema.clone();
            }
        }
        let schema = Arc::new(PlatformSchema::of(def.clone()));
        state.event_schemas.insert(def.name.clone(), schema.clone());
        schema
    }

    /// Counts one platform event against the hourly publishing allocation;
    /// false when it is used up.
    pub fn take_publish(&self, now: DateTime<Utc>) -> bool {
        self.state.lock().published.take(now)
    }

    /// Puts a published platform event on the bus; answers its replay id.
    pub fn publish_event(
        &self,
        event: &str,
        schema_id: Arc<str>,
        payload: Vec<u8>,
        now: DateTime<Utc>,
    ) -> (u64, String) {
        let mut state = self.state.lock();
        let replay_id = state.log.next_id();
        let uuid = super::uuid();
        state.log.push(StoredEvent {
            replay_id,
            object: event.into(),
            uuid: uuid.clone(),
            schema_id,
            payload: payload.into(),
            published_at: now,
            published: Instant::now(),
            deliveries: Arc::default(),
        });
        self.tip.send_replace(state.log.tip());
        (replay_id, uuid)
    }

    /// Forgets every event and disarms the faults; the selection and the
    /// delivery allocation stay, as settings do.
    pub fn reset(&self) {
        let mut state = self.state.lock();
        state.log.clear();
        state.faults = CdcFaults::default();
        self.tip.send_replace(state.log.tip());
    }

    pub fn is_selected(&self, object: &str) -> bool {
        self.state.lock().selected.contains(object)
    }

    pub fn schema(&self, def: &Arc<ObjectDef>) -> Arc<EventSchema> {
        self.state.lock().schemas.current(def)
    }

    pub fn schema_json(&self, id: &str) -> Option<Arc<str>> {
        let state = self.state.lock();
        state.schemas.json(id).or_else(|| {
            state
                .event_schemas
                .values()
                .find(|s| &*s.id == id)
                .map(|s| s.json.clone())
        })
    }

    /// The newest position: where a subscription to new events starts.
    pub fn tip(&self) -> u64 {
        self.state.lock().log.tip()
    }

    /// The position a new subscription starts after, None for a replay id
    /// that names no retained position.
    pub fn start(&self, start: Start, now: DateTime<Utc>) -> Option<u64> {
        let mut state = self.state.lock();
        state.log.expire(now);
        state.log.start(start)
    }

    /// Up to `max` deliverable events of `topic` after `position`.
    pub fn fetch(&self, topic: &Topic, position: u64, max: usize, now: DateTime<Utc>) -> Fetched {
        let mut state = self.state.lock();
        state.log.expire(now);
        let delay = Duration::from_millis(state.faults.delay_ms);
        let ready_by = Instant::now();
        let mut fetched = Fetched {
            events: Vec::new(),
            position,
            held_until: None,
        };
        let mut matching = state
            .log
            .after(position)
            .filter(|e| topic.carries(&e.object));
        for event in matching.by_ref().take(max) {
            let deliverable_at = event.published + delay;
            if deliverable_at > ready_by {
                fetched.held_until = Some(deliverable_at);
                break;
            }
            fetched.position = event.replay_id;
            fetched.events.push(event.clone());
        }
        let rest = fetched.held_until.is_some()
            || fetched.events.len() == max && matching.next().is_some();
        if fetched.events.is_empty() && !rest {
            fetched.position = state.log.tip();
        }
        fetched
    }

    /// Counts deliveries against the 24-hour allocation; answers how many of
    /// `n` it allows.
    pub fn deliver(&self, n: u64, now: DateTime<Utc>) -> u64 {
        self.state.lock().deliveries.take_many(n, now)
    }

    pub fn watch_tip(&self) -> watch::Receiver<u64> {
        self.tip.subscribe()
    }

    pub fn watch_drops(&self) -> watch::Receiver<u64> {
        self.drops.subscribe()
    }

    /// Ends every open Subscribe stream.
    pub fn drop_streams(&self) {
        self.drops.send_modify(|n| *n += 1);
    }

    /// Open Subscribe streams.
    pub fn streams(&self) -> usize {
        self.drops.receiver_count()
    }
}
