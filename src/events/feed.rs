//! The sync worker's side of event feeds: each feed's topic is read with
//! its owner's user mapping, a batch at a time, after the replay id stored
//! with the feed; each batch is inserted into the feed's table as its owner
//! and the replay id moves on in the same transaction, so each event lands
//! once whatever stops the worker. A NOTIFY on the feed's channel (the
//! event's name in lower case) tells listeners. A feed that fails waits,
//! doubling up to a minute, while the others go on: each read runs on a
//! thread of its own, so a hung org holds up neither the other feeds nor
//! the worker.

use super::feed_api::COLUMNS;
use crate::access;
use crate::catalog;
use crate::connection;
use crate::error::{Error, Result};
use crate::pg::in_transaction;
use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode};
use salesforce_core::cdc::{Replay, StreamConfig};
use salesforce_core::events::{read, PlatformEvent};
use std::time::{Duration, Instant};

/// Events read at a time.
const BATCH: usize = 100;
/// How long one read waits for events.
const LISTEN: Duration = Duration::from_millis(100);
/// How often each feed is read, and the feed list looked at again.
const EVERY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(60);

type Read = std::thread::JoinHandle<
    std::result::Result<(Vec<PlatformEvent>, Vec<u8>), salesforce_core::SalesforceError>,
>;

struct Feed {
    /// The read under way, on its thread.
    reading: Option<Read>,
    id: i64,
    owner: pg_sys::Oid,
    server: String,
    topic: String,
    target: pg_sys::Oid,
    replay: Option<Vec<u8>>,
    next_read: Instant,
    failures: u32,
}

#[derive(Default)]
pub struct Feeds {
    feeds: Vec<Feed>,
    refreshed: Option<Instant>,
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::sql(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, e.to_string())
}

type Row = (
    i64,
    pg_sys::Oid,
    String,
    String,
    pg_sys::Oid,
    Option<Vec<u8>>,
);

fn listed() -> Result<Vec<Row>> {
    if Spi::get_one::<bool>("SELECT pg_catalog.to_regclass('salesforce.event_feeds') IS NOT NULL")
        .map_err(internal)?
        != Some(true)
    {
        return Ok(vec![]);
    }
    Spi::connect(|client| {
        client
            .select(
                "SELECT id, owner, server, topic, target::pg_catalog.oid, replay_id FROM salesforce.event_feeds ORDER BY id",
                None,
                &[],
            )?
            .map(|r| {
                Ok((
                    r.get::<i64>(1)?.unwrap_or_default(),
                    r.get::<pg_sys::Oid>(2)?.unwrap_or_default(),
                    r.get::<String>(3)?.unwrap_or_default(),
                    r.get::<String>(4)?.unwrap_or_default(),
                    r.get::<pg_sys::Oid>(5)?.unwrap_or_default(),
                    r.get::<Vec<u8>>(6)?,
                ))
            })
            .collect::<std::result::Result<Vec<_>, pgrx::spi::SpiError>>()
    })
    .map_err(internal)
}

impl Feeds {
    pub fn active(&self) -> bool {
        !self.feeds.is_empty()
    }

    /// How long the worker may nap before a feed is due, or a read ends.
    pub fn nap(&self) -> Duration {
        let now = Instant::now();
        if self.feeds.iter().any(|f| f.reading.is_some()) {
            return Duration::from_millis(50);
        }
        self.feeds
            .iter()
            .map(|f| f.next_read.saturating_duration_since(now))
            .min()
            .unwrap_or(EVERY)
            .min(EVERY)
    }

    fn refresh(&mut self) {
        if self.refreshed.is_some_and(|r| r.elapsed() < EVERY) {
            return;
        }
        self.refreshed = Some(Instant::now());
        let Ok(rows) = in_transaction(listed) else {
            return;
        };
        let mut old = std::mem::take(&mut self.feeds);
        for (id, owner, server, topic, target, replay) in rows {
            match old.iter().position(|f| f.id == id) {
                Some(i) => self.feeds.push(old.swap_remove(i)),
                None => self.feeds.push(Feed {
                    reading: None,
                    id,
                    owner,
                    server,
                    topic,
                    target,
                    replay,
                    next_read: Instant::now(),
                    failures: 0,
                }),
            }
        }
    }

    /// Stores what finished reads brought, and starts reads of the feeds
    /// that are due.
    pub fn step(&mut self, stopping: impl Fn() -> bool) {
        self.refresh();
        for feed in self.feeds.iter_mut() {
            if stopping() {
                return;
            }
            let outcome = feed.step();
            let Err(e) = outcome else { continue };
            feed.failures += 1;
            let wait = (EVERY * 2u32.saturating_pow(feed.failures)).min(LONGEST_RETRY);
            feed.next_read = Instant::now() + wait;
            let message = crate::error::scrub(&e.message());
            let _ = in_transaction(|| {
                access::as_extension(|| {
                    Spi::run_with_args(
                        "UPDATE salesforce.event_feeds SET status = 'failing', error = $2 WHERE id = $1",
                        &[feed.id.into(), message.as_str().into()],
                    )
                    .map_err(internal)
                })
            });
        }
    }
}

impl Feed {
    fn config(&self) -> Result<StreamConfig> {
        in_transaction(|| {
            let server = catalog::server_oid(&self.server)?;
            access::check_server_use(server, self.owner)?;
            let topic = format!("/event/{}", self.topic);
            let replay = self.replay.clone().map_or(Replay::Earliest, Replay::After);
            connection::with_session(server, self.owner, |s| {
                StreamConfig::for_session(s, &topic, replay, BATCH as i32)
            })
        })
    }

    /// Takes a finished read's events into the table, or starts a read
    /// when one is due.
    fn step(&mut self) -> Result<()> {
        if let Some(reading) = self.reading.take_if(|r| r.is_finished()) {
            let (events, _) = reading
                .join()
                .map_err(|_| internal("an event feed's read panicked"))?
                .map_err(Error::Salesforce)?;
            self.failures = 0;
            // A full batch: more may be waiting.
            self.next_read = match events.len() {
                BATCH => Instant::now(),
                _ => Instant::now() + EVERY,
            };
            if let Some(last) = events.last().map(|e| e.replay_id.clone()) {
                in_transaction(|| self.store(&events, &last))?;
                self.replay = Some(last);
            }
            return Ok(());
        }
        if self.reading.is_some() || self.next_read > Instant::now() {
            return Ok(());
        }
        let config = self.config()?;
        let reading = std::thread::Builder::new()
            .name("salesforce-feed".into())
            .spawn(move || read(&config, BATCH, LISTEN))
            .map_err(|e| internal(format!("cannot start a thread: {e}")))?;
        self.reading = Some(reading);
        Ok(())
    }

    fn store(&self, events: &[PlatformEvent], last: &[u8]) -> Result<()> {
        let table = access::check_table(self.target, self.owner, "the feed's table")?;
        let columns: Vec<&str> = COLUMNS.iter().map(|(c, _)| *c).collect();
        let insert = format!(
            "INSERT INTO {} ({}) VALUES ($1, $2, $3::pg_catalog.timestamptz, $4) ON CONFLICT DO NOTHING",
            table.qualified(),
            columns.join(", ")
        );
        access::as_role(self.owner, || -> Result<()> {
            for e in events {
                let created = e
                    .fields
                    .get("CreatedDate")
                    .and_then(|v| v.as_str())
                    .map(str::to_string);
                let payload = JsonB(serde_json::Value::Object(e.fields.clone()));
                Spi::run_with_args(
                    &insert,
                    &[
                        e.replay_id.clone().into(),
                        e.event_uuid.as_str().into(),
                        created.into(),
                        payload.into(),
                    ],
                )
                .map_err(internal)?;
            }
            Ok(())
        })?;
        access::as_extension(|| {
            Spi::run_with_args(
                "UPDATE salesforce.event_feeds SET replay_id = $2, events = events + $3, heard_at = pg_catalog.now(), status = 'streaming', error = NULL WHERE id = $1",
                &[self.id.into(), last.to_vec().into(), (events.len() as i64).into()],
            )
            .map_err(internal)?;
            Spi::run_with_args(
                "SELECT pg_catalog.pg_notify($1, $2)",
                &[
                    self.topic.to_ascii_lowercase().into(),
                    events.len().to_string().into(),
                ],
            )
            .map_err(internal)
        })
    }
}
