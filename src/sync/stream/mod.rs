//! Change Data Capture: the sync worker holds one Pub/Sub stream per server
//! and owner with syncs that have `"cdc": true` and have finished their
//! backfill, and applies its events to their copies. Each stream logs in
//! with its owner's user mapping, so Salesforce sends only what that user
//! may see, and each copy is written as its owner. Each batch is applied in one
//! transaction that also stores its last replay id, so an event is applied
//! once, whatever stops the worker; a new stream resumes after that id.
//!
//! Where the stream cannot say what changed, polls do: a stream with no
//! replay id (the first, or after Salesforce forgot ours) subscribes from
//! the newest event and makes its syncs due for a poll at once, which
//! covers everything before; GAP_OVERFLOW does the same for its object; other
//! gap events are read again by id. The syncs' own schedule stays as the
//! safety net.

mod apply;
mod state;

use self::apply::{is_gap, Counts, Reread, Target};
use self::state::StreamKey;
use super::store;
use super::together::Steps;
use crate::catalog;
use crate::connection;
use crate::error::{self, Error, Result};
use pgrx::pg_sys::Oid;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use salesforce_core::cdc::{
    selection, ChangeEvent, ChangeType, Replay, StreamConfig, StreamItem, Subscription,
};
use salesforce_core::sync::definition::{present_fields, SyncOptions};
use salesforce_core::SalesforceError;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const TOPIC: &str = "/data/ChangeEvents";
/// Events asked for at a time; the Pub/Sub API allows 100 outstanding.
const BATCH: i32 = 100;
/// Items taken from a stream per pump, so one busy stream cannot starve runs.
const ITEMS_PER_PUMP: usize = 20;
const LONGEST_RETRY: Duration = Duration::from_secs(60);
/// Salesforce sends a keepalive within 270 s of silence: a stream quiet for
/// longer has lost its connection without noticing.
const SILENCE: Duration = Duration::from_secs(600);

fn internal(message: impl Into<String>) -> Error {
    Error::sql(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, message)
}

/// How often the worker looks for syncs that start or stop streaming.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Streams {
    streams: Vec<Stream>,
    refreshed: Option<Instant>,
}

struct Stream {
    key: StreamKey,
    sync_ids: Vec<i64>,
    /// The syncs' fields and columns as the stream opened with them: a
    /// change (sync_alter, a field added in Salesforce) reopens it.
    shape: String,
    mapping: Option<(Oid, Oid)>,
    targets: Vec<Target>,
    subscription: Option<Subscription>,
    /// When the stream last brought anything.
    heard_at: Instant,
    retry_at: Instant,
    failures: u32,
}

impl Streams {
    /// Whether any stream is wanted: the worker then naps briefly, to apply
    /// events as they come.
    pub fn active(&self) -> bool {
        !self.streams.is_empty()
    }

    /// Opens a stream for each server whose syncs stream, and closes those
    /// no longer wanted or whose syncs changed.
    pub fn refresh(&mut self, steps: &impl Steps) {
        if self.refreshed.is_some_and(|t| t.elapsed() < REFRESH_EVERY) {
            return;
        }
        self.refreshed = Some(Instant::now());
        let wanted = match steps.local(state::streaming_syncs) {
            Ok(w) => w,
            Err(e) => {
                error::notice(
                    PgLogLevel::WARNING,
                    &format!(
                        "pg_salesforce: cannot list streaming syncs: {}",
                        e.message()
                    ),
                );
                return;
            }
        };
        let (keep, gone): (Vec<Stream>, Vec<Stream>) = std::mem::take(&mut self.streams)
            .into_iter()
            .partition(|s| {
                wanted.iter().any(|(key, ids, shape)| {
                    *key == s.key && *ids == s.sync_ids && *shape == s.shape
                })
            });
        for mut s in gone {
            s.close(steps, None);
        }
        self.streams = keep;
        for (key, sync_ids, shape) in wanted {
            if !self.streams.iter().any(|s| s.key == key) {
                self.streams.push(Stream {
                    key,
                    sync_ids,
                    shape,
                    mapping: None,
                    targets: vec![],
                    subscription: None,
                    heard_at: Instant::now(),
                    retry_at: Instant::now(),
                    failures: 0,
                });
            }
        }
    }

    /// Applies what the streams brought, opening those that are due to.
    pub fn pump(&mut self, steps: &impl Steps) {
        for s in &mut self.streams {
            s.pump(steps);
        }
    }

    pub fn close(&mut self, steps: &impl Steps) {
        for mut s in std::mem::take(&mut self.streams) {
            s.close(steps, Some("the sync worker stopped"));
        }
    }
}

impl Stream {
    fn pump(&mut self, steps: &impl Steps) {
        if self.subscription.is_none() {
            if Instant::now() < self.retry_at {
                return;
            }
            if let Err(e) = self.open(steps) {
                self.fail(steps, e);
                return;
            }
        }
        for _ in 0..ITEMS_PER_PUMP {
            let Some(subscription) = self.subscription.as_mut() else {
                return;
            };
            let outcome = match subscription.next(Duration::ZERO) {
                Ok(None) if self.heard_at.elapsed() > SILENCE => Err(Error::from(
                    SalesforceError::Network("the stream was silent for 10 minutes".into()),
                )),
                Ok(None) => return,
                Ok(Some(StreamItem::Keepalive { latest_replay_id })) => steps
                    .local(|| state::applied(&self.key, &latest_replay_id, 0, None))
                    .map_err(|e| internal(format!("cannot store the replay id: {}", e.message()))),
                Ok(Some(StreamItem::Events {
                    events,
                    latest_replay_id,
                })) => self.apply(steps, &events, &latest_replay_id),
                Err(e) => Err(Error::from(e)),
            };
            if let Err(e) = outcome {
                self.fail(steps, e);
                return;
            }
            self.heard_at = Instant::now();
            self.failures = 0;
        }
    }

    /// Describes the syncs' objects, logs in and subscribes: from the last
    /// applied event, or from now with a poll to cover the time before.
    fn open(&mut self, steps: &impl Steps) -> Result<()> {
        let sync_ids = self.sync_ids.clone();
        let key = self.key.clone();
        let server = key.server.clone();
        let (mapping, targets, server_options, replay_id) = steps.local(|| {
            let rows = sync_ids
                .iter()
                .map(|id| store::load_sync(*id))
                .collect::<Result<Vec<_>>>()?;
            let server_oid = catalog::server_oid(&server)?;
            let user = key.owner;
            if !crate::access::role_exists(user) {
                return Err(internal(format!(
                    "the owner of the streaming syncs (role {}) no longer exists",
                    user.to_u32()
                )));
            }
            crate::access::check_server_use(server_oid, user)?;
            let (options, _) = catalog::server_options(server_oid)?;
            let mut targets = Vec::with_capacity(rows.len());
            for row in &rows {
                let describe = connection::describe(server_oid, user, &row.object)?;
                targets.push(Target {
                    sync_id: row.id,
                    run_id: 0,
                    object: row.object.clone(),
                    copy: row.target(),
                    id_column: row.id_column().to_string(),
                    soft_delete: SyncOptions::parse(&row.options)?.soft_delete,
                    fields: present_fields(&row.fields, &row.columns, &describe),
                });
            }
            state::set_status(&key, "starting", None)?;
            Ok((
                (server_oid, user),
                targets,
                options,
                state::replay_id(&key)?,
            ))
        })?;
        self.mapping = Some(mapping);
        let mut targets = targets;
        let token = connection::with_prepared_session(mapping.0, mapping.1, |s| s.live_token())?;
        let tenant_id = token.org_id.clone().ok_or_else(|| {
            Error::from(SalesforceError::Config(
                "Change Data Capture needs a grant that logs in (the org id comes from the login), not access_token".into(),
            ))
        })?;
        // One Tooling query: an object the org has not selected sends no
        // events, and its sync must say so rather than look current.
        let selection =
            connection::with_prepared_session(mapping.0, mapping.1, |s| s.cdc_selection());
        let warnings: Vec<(i64, Option<String>)> = match &selection {
            Ok(selected) => targets
                .iter()
                .map(|t| (t.sync_id, selection::warning(selected, &t.object)))
                .collect(),
            Err(_) => Vec::new(),
        };
        for (t, (_, w)) in targets.iter().zip(&warnings) {
            if let Some(w) = w {
                error::notice(
                    PgLogLevel::WARNING,
                    &format!(
                        "pg_salesforce: sync of {} on server {server}: {w}.",
                        t.object
                    ),
                );
            }
        }
        if let Err(e) = &selection {
            error::notice(
                PgLogLevel::WARNING,
                &format!(
                    "pg_salesforce: cannot read which objects server {server} selected for Change Data Capture ({}): {e}",
                    selection::UNREADABLE
                ),
            );
        }
        let recovering = replay_id.is_none();
        let subscription = Subscription::open(StreamConfig {
            pubsub_url: server_options.pubsub_url.clone(),
            topic: TOPIC.into(),
            access_token: token.access_token,
            instance_url: token.instance_url,
            tenant_id,
            replay: replay_id.map_or(Replay::Latest, Replay::After),
            batch: BATCH,
            timeout: server_options.request_timeout,
        })?;
        let run_ids = steps.local(|| {
            state::close_abandoned_sessions(&sync_ids)?;
            if recovering {
                state::poll_now(&sync_ids)?;
            }
            state::set_status(&key, "streaming", None)?;
            for (sync_id, warning) in &warnings {
                store::set_stream_warning(*sync_id, warning.as_deref())?;
            }
            sync_ids
                .iter()
                .map(|id| state::start_session(*id))
                .collect::<Result<Vec<_>>>()
        })?;
        for (t, run_id) in targets.iter_mut().zip(run_ids) {
            t.run_id = run_id;
        }
        self.targets = targets;
        self.subscription = Some(subscription);
        self.heard_at = Instant::now();
        Ok(())
    }

    /// Reads gap events' records again, then applies the batch and stores
    /// its replay id in one transaction.
    fn apply(&self, steps: &impl Steps, events: &[ChangeEvent], latest: &[u8]) -> Result<()> {
        let reread = self.reread_gaps(events)?;
        let replay_id = events.last().map_or(latest, |e| e.replay_id.as_slice());
        let last_commit = events.iter().map(|e| e.commit_timestamp).max();
        steps
            .local(|| {
                let mut counts: HashMap<usize, Counts> = HashMap::new();
                let mut overflowed = Vec::new();
                for event in events {
                    for (i, t) in self
                        .targets
                        .iter()
                        .enumerate()
                        .filter(|(_, t)| t.follows(event))
                    {
                        if event.change_type == ChangeType::GapOverflow {
                            overflowed.push(t.sync_id);
                        }
                        let c = apply::apply(t, event, &reread)?;
                        let total = counts.entry(i).or_default();
                        total.events += c.events;
                        total.upserted += c.upserted;
                        total.deleted += c.deleted;
                    }
                }
                state::poll_now(&overflowed)?;
                for (i, c) in counts {
                    state::count_session(self.targets[i].run_id, c.events, c.upserted, c.deleted)?;
                }
                state::applied(&self.key, replay_id, events.len() as i64, last_commit)
            })
            .map_err(|e| internal(format!("cannot apply change events: {}", e.message())))
    }

    fn reread_gaps(&self, events: &[ChangeEvent]) -> Result<Reread> {
        let mut reread = Reread::new();
        let Some((server, user)) = self.mapping else {
            return Ok(reread);
        };
        for t in &self.targets {
            let ids: Vec<String> = events
                .iter()
                .filter(|e| is_gap(&e.change_type) && t.follows(e))
                .flat_map(|e| e.record_ids.iter().cloned())
                .collect();
            let fields: Vec<String> = t.fields.iter().map(|f| f.field.clone()).collect();
            for chunk in ids.chunks(200) {
                let records = connection::with_prepared_session(server, user, |s| {
                    s.retrieve(&t.object, chunk, &fields)
                })?;
                for (id, record) in chunk.iter().zip(records) {
                    reread.insert(id.clone(), record);
                }
            }
        }
        Ok(reread)
    }

    /// Ends the stream after an error and says when to open it again.
    fn fail(&mut self, steps: &impl Steps, e: Error) {
        let message = e.message();
        self.close(steps, Some(&message));
        let mapping = self.mapping;
        let key = self.key.clone();
        let server = key.server.clone();
        let sync_ids = self.sync_ids.clone();
        if e.salesforce_code() == Some("INVALID_SESSION_ID") {
            // The token expired: log in again and resume at once.
            if let Some((s, u)) = mapping {
                let _ = connection::with_prepared_session(s, u, |s| {
                    s.token_refused();
                    Ok(())
                });
            }
            self.retry_at = Instant::now();
            return;
        }
        if e.salesforce_code() == Some("REPLAY_ID_INVALID") {
            // Salesforce no longer has our place: subscribe from now and poll.
            let _ = steps.local(|| state::forget_replay_id(&key));
            self.retry_at = Instant::now();
            return;
        }
        self.failures += 1;
        let wait = Duration::from_secs(1 << self.failures.min(6)).min(LONGEST_RETRY);
        self.retry_at = Instant::now() + wait;
        let _ = steps.local(|| state::set_status(&key, "failed", Some(&message)));
        error::notice(
            PgLogLevel::WARNING,
            &format!(
                "pg_salesforce: the Change Data Capture stream of server {server} failed (syncs {sync_ids:?}), again in {} s: {message}",
                wait.as_secs()
            ),
        );
    }

    fn close(&mut self, steps: &impl Steps, error: Option<&str>) {
        if self.subscription.take().is_none() {
            return;
        }
        let targets = std::mem::take(&mut self.targets);
        let _ = steps.local(|| {
            for t in &targets {
                state::end_session(t.run_id, error)?;
            }
            Ok(())
        });
    }
}
