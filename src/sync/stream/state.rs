//! What a stream keeps in `salesforce.streams` and logs in `sync_runs`.

use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use pgrx::pg_sys::Oid;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// A stream is a server's events as one role's user mapping sees them:
/// Salesforce applies that user's field-level security to what it sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamKey {
    pub server: String,
    pub owner: Oid,
}

/// The replay id to resume after, if a stream of the server applied events.
pub fn replay_id(key: &StreamKey) -> Result<Option<Vec<u8>>> {
    Spi::get_one_with_args::<Vec<u8>>(
        "SELECT replay_id FROM salesforce.streams WHERE server = $1 AND owner = $2",
        &[key.server.as_str().into(), key.owner.into()],
    )
    .map_err(Error::from)
}

pub fn set_status(key: &StreamKey, status: &str, error: Option<&str>) -> Result<()> {
    Spi::run_with_args(
        "INSERT INTO salesforce.streams (server, owner, status, error) VALUES ($1, $4, $2, $3)
         ON CONFLICT (server, owner) DO UPDATE SET status = $2, error = $3, updated_at = clock_timestamp()",
        &[
            key.server.as_str().into(),
            status.into(),
            error.map(crate::error::scrub).into(),
            key.owner.into(),
        ],
    )
    .map_err(Error::from)
}

/// Forgets where the stream was: its replay id expired.
pub fn forget_replay_id(key: &StreamKey) -> Result<()> {
    Spi::run_with_args(
        "UPDATE salesforce.streams SET replay_id = NULL WHERE server = $1 AND owner = $2",
        &[key.server.as_str().into(), key.owner.into()],
    )
    .map_err(Error::from)
}

/// Records a batch as applied: in the transaction that applied it, so a
/// batch is applied exactly once whatever stops the worker.
pub fn applied(
    key: &StreamKey,
    replay_id: &[u8],
    events: i64,
    last_commit: Option<DateTime<Utc>>,
) -> Result<()> {
    Spi::run_with_args(
        "UPDATE salesforce.streams SET replay_id = $2, status = 'streaming', error = NULL, events = events + $3,
             last_event_at = CASE WHEN $3 > 0 THEN clock_timestamp() ELSE last_event_at END,
             last_commit_at = coalesce($4::timestamptz, last_commit_at), updated_at = clock_timestamp(),
             heard_at = CASE WHEN $3 = 0 THEN clock_timestamp() ELSE heard_at END
         WHERE server = $1 AND owner = $5",
        &[
            key.server.as_str().into(),
            replay_id.to_vec().into(),
            events.into(),
            last_commit.map(|t| t.to_rfc3339()).into(),
            key.owner.into(),
        ],
    )
    .map_err(Error::from)
}

/// Makes syncs due at once, for a poll to cover what the stream lost.
pub fn poll_now(sync_ids: &[i64]) -> Result<()> {
    Spi::run_with_args(
        "UPDATE salesforce.syncs SET next_due = clock_timestamp() WHERE id = ANY($1)",
        &[sync_ids.to_vec().into()],
    )
    .map_err(Error::from)
}

/// Ends the sessions a stopped worker left running, as failed.
pub fn close_abandoned_sessions(sync_ids: &[i64]) -> Result<()> {
    Spi::run_with_args(
        "UPDATE salesforce.sync_runs SET status = 'failed', finished_at = clock_timestamp(), error = 'interrupted: the worker stopped; the stream resumed after its last applied event' WHERE sync_id = ANY($1) AND kind = 'stream' AND status = 'running'",
        &[sync_ids.to_vec().into()],
    )
    .map_err(Error::from)
}

/// A stream session's log row for one sync.
pub fn start_session(sync_id: i64) -> Result<i64> {
    Spi::get_one_with_args::<i64>(
        "INSERT INTO salesforce.sync_runs (sync_id, server, object, kind, started_by, owner)
         SELECT id, server, object, 'stream', 'worker', owner FROM salesforce.syncs WHERE id = $1 RETURNING id",
        &[sync_id.into()],
    )?
    .ok_or_else(|| {
        Error::sql(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("sync {sync_id} no longer exists"),
        )
    })
}

pub fn count_session(run_id: i64, events: i64, upserted: i64, deleted: i64) -> Result<()> {
    Spi::run_with_args(
        "UPDATE salesforce.sync_runs SET events = events + $2, rows_upserted = rows_upserted + $3, rows_deleted = rows_deleted + $4 WHERE id = $1",
        &[run_id.into(), events.into(), upserted.into(), deleted.into()],
    )
    .map_err(Error::from)
}

pub fn end_session(run_id: i64, error: Option<&str>) -> Result<()> {
    Spi::run_with_args(
        "UPDATE salesforce.sync_runs SET status = CASE WHEN $2 IS NULL THEN 'succeeded' ELSE 'failed' END, error = $2, finished_at = clock_timestamp() WHERE id = $1 AND status = 'running'",
        &[run_id.into(), error.map(crate::error::scrub).into()],
    )
    .map_err(Error::from)
}

/// Each server and owner with a sync that streams, with those syncs in Id
/// order: only syncs past their backfill, which a poll has brought up to
/// date, and not paused.
pub fn streaming_syncs() -> Result<Vec<(StreamKey, Vec<i64>, String)>> {
    let installed = Spi::get_one::<bool>("SELECT to_regclass('salesforce.streams') IS NOT NULL")?;
    if installed != Some(true) {
        return Ok(vec![]);
    }
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT server::text, owner, array_agg(id ORDER BY id),
                    md5(string_agg(id || ':' || array_to_string(fields, ',') || ':' || array_to_string(columns, ','), '|' ORDER BY id))
               FROM salesforce.syncs
             WHERE enabled AND stage = 'incremental' AND (options->>'cdc')::boolean AND paused_reason IS NULL
             GROUP BY server, owner ORDER BY server, owner",
            None,
            &[],
        )?;
        rows.map(|r| {
            Ok((
                StreamKey {
                    server: r.get::<String>(1)?.unwrap_or_default(),
                    owner: r.get::<Oid>(2)?.unwrap_or(Oid::INVALID),
                },
                r.get::<Vec<i64>>(3)?.unwrap_or_default(),
                r.get::<String>(4)?.unwrap_or_default(),
            ))
        })
        .collect::<std::result::Result<Vec<_>, pgrx::spi::SpiError>>()
    })
    .map_err(Error::from)
}
