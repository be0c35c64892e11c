//! What a stream keeps in `salesforce.streams` and logs in `sync_runs`.

use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// The replay id to resume after, if a stream of the server applied events.
pub fn replay_id(server: &str) -> Result<Option<Vec<u8>>> {
    Spi::get_one_with_args::<Vec<u8>>(
        "SELECT replay_id FROM salesforce.streams WHERE server = $1",
        &[server.into()],
    )
    .map_err(Error::from)
}

pub fn set_status(server: &str, status: &str, error: Option<&str>) -> Result<()> {
    Spi::run_with_args(
        "INSERT INTO salesforce.streams (server, status, error) VALUES ($1, $2, $3)
         ON CONFLICT (server) DO UPDATE SET status = $2, error = $3, updated_at = clock_timestamp()",
        &[
            server.into(),
            status.into(),
            error.map(crate::error::scrub).into(),
        ],
    )
    .map_err(Error::from)
}

/// Forgets where the stream was: its replay id expired.
pub fn forget_replay_id(server: &str) -> Result<()> {
    Spi::run_with_args(
        "UPDATE salesforce.streams SET replay_id = NULL WHERE server = $1",
        &[server.into()],
    )
    .map_err(Error::from)
}

/// Records a batch as applied: in the transaction that applied it, so a
/// batch is applied exactly once whatever stops the worker.
pub fn applied(
    server: &str,
    replay_id: &[u8],
    events: i64,
    last_commit: Option<DateTime<Utc>>,
) -> Result<()> {
    Spi::run_with_args(
        "UPDATE salesforce.streams SET replay_id = $2, status = 'streaming', error = NULL, events = events + $3,
             last_event_at = CASE WHEN $3 > 0 THEN clock_timestamp() ELSE last_event_at END,
             last_commit_at = coalesce($4::timestamptz, last_commit_at), updated_at = clock_timestamp()
         WHERE server = $1",
        &[
            server.into(),
            replay_id.to_vec().into(),
            events.into(),
            last_commit.map(|t| t.to_rfc3339()).into(),
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
        "INSERT INTO salesforce.sync_runs (sync_id, server, object, kind, started_by)
         SELECT id, server, object, 'stream', 'worker' FROM salesforce.syncs WHERE id = $1 RETURNING id",
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

/// Servers with a sync that streams, each with those syncs in Id order:
/// only syncs past their backfill, which a poll has brought up to date.
pub fn streaming_syncs() -> Result<Vec<(String, Vec<i64>)>> {
    let installed = Spi::get_one::<bool>("SELECT to_regclass('salesforce.streams') IS NOT NULL")?;
    if installed != Some(true) {
        return Ok(vec![]);
    }
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT server::text, array_agg(id ORDER BY id) FROM salesforce.syncs
             WHERE enabled AND stage = 'incremental' AND (options->>'cdc')::boolean
             GROUP BY server ORDER BY server",
            None,
            &[],
        )?;
        rows.map(|r| {
            Ok((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<Vec<i64>>(2)?.unwrap_or_default(),
            ))
        })
        .collect::<std::result::Result<Vec<_>, pgrx::spi::SpiError>>()
    })
    .map_err(Error::from)
}
