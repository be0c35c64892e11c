//! The extension's own tables through SPI: each sync's configuration and
//! checkpoint, its log, and the pacing rows. Callers run these as the
//! extension's owner with the search path pinned (`access`); the copies
//! themselves are `copy_table`'s.

use super::copy_table::CopyTable;
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use pgrx::pg_sys::Oid;
use pgrx::{JsonB, PgSqlErrorCode, Spi};
use salesforce_core::naming::with_suffix;
use serde::Deserialize;
use serde_json::Value as Json;

/// Where a sync is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Copying every record for the first time, in Id order.
    Backfill,
    /// Copying every record again into a staging table that then replaces the copy.
    Resync,
    /// Following changes by SystemModstamp.
    Incremental,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Backfill => "backfill",
            Stage::Resync => "resync",
            Stage::Incremental => "incremental",
        }
    }
}

/// A `salesforce.syncs` row.
#[derive(Clone, Debug, Deserialize)]
pub struct SyncRow {
    pub id: i64,
    pub server: String,
    pub object: String,
    pub target_table: String,
    pub options: Json,
    pub fields: Vec<String>,
    pub columns: Vec<String>,
    pub owner: u32,
    pub stage: Stage,
    pub backfill_after: Option<String>,
    pub backfill_total: Option<i64>,
    pub backfill_rows: i64,
    pub cursor: Option<DateTime<Utc>>,
    pub deleted_cursor: Option<DateTime<Utc>>,
    /// The Bulk query job a backfill reads, the locator of the results page
    /// being read (None: the first), and how many of its rows are stored.
    #[serde(default)]
    pub bulk_job: Option<String>,
    #[serde(default)]
    pub bulk_locator: Option<String>,
    #[serde(default)]
    pub bulk_page_rows: i64,
    /// Rows this backfill reads may be in the copy already (a failed job was
    /// replaced), so they are upserted rather than inserted.
    #[serde(default)]
    pub backfill_overlaps: bool,
    /// When formula fields were last read again (or first read, by the backfill).
    #[serde(default)]
    pub formulas_refreshed_at: Option<DateTime<Utc>>,
    /// The copy, and a resync's staging table, by OID.
    pub target_relid: u32,
    #[serde(default)]
    pub staging_relid: Option<u32>,
    /// Why the worker stopped running the sync, until its checks pass again.
    #[serde(default)]
    pub paused_reason: Option<String>,
    /// When the copy's rows were last counted.
    #[serde(default)]
    pub row_count_at: Option<DateTime<Utc>>,
}

impl SyncRow {
    pub fn owner(&self) -> Oid {
        Oid::from(self.owner)
    }

    pub fn target(&self) -> CopyTable {
        CopyTable::new(self.target_relid, self.owner)
    }

    /// Where a resync loads its new copy before it replaces the copy's rows.
    pub fn staging(&self) -> Option<CopyTable> {
        self.staging_relid
            .map(|relid| CopyTable::new(relid, self.owner))
    }

    /// The staging table's name: the copy's, cut by bytes to leave room
    /// for a suffix with the sync's id, so it is never the copy's own name
    /// nor another sync's staging table.
    pub fn staging_name(&self) -> String {
        with_suffix(&self.target_table, &format!("__resync_{}", self.id))
    }

    /// What messages call the sync.
    pub fn describe(&self) -> String {
        format!("the sync of {} on server {}", self.object, self.server)
    }

    pub fn id_column(&self) -> &str {
        let i = self.fields.iter().position(|f| f == "Id").unwrap_or(0);
        &self.columns[i]
    }
}

/// Refuses to run against the SQL of another version than the library's: a
/// new library is installed before `ALTER EXTENSION ... UPDATE` runs.
pub fn check_installed_version() -> Result<()> {
    let installed = crate::pg::get_one_kept::<String>(
        "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_salesforce'",
        &[],
    )?;
    let library = env!("CARGO_PKG_VERSION");
    match installed {
        Some(v) if v != library => Err(Error::sql(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("the pg_salesforce library is version {library}, but the extension installed in this database is {v}"),
        )
        .with_hint("Run ALTER EXTENSION pg_salesforce UPDATE.")),
        _ => Ok(()),
    }
}

pub fn load_sync(id: i64) -> Result<SyncRow> {
    let row = crate::pg::get_one_kept::<JsonB>("SELECT (SELECT to_jsonb(s) || jsonb_build_object('owner', s.owner::bigint, 'target_relid', s.target_relid::bigint, 'staging_relid', s.staging_relid::bigint) FROM salesforce.syncs s WHERE id = $1)", &[id.into()])?;
    let row = row.ok_or_else(|| {
        Error::sql(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("sync {id} no longer exists"),
        )
    })?;
    serde_json::from_value(row.0).map_err(|e| {
        Error::sql(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!("cannot read sync {id}: {e}"),
        )
    })
}

/// The syncs of an object on a server, each with its owner, in id order.
pub fn syncs_of_object(server: &str, object: &str) -> Result<Vec<(i64, Oid)>> {
    select_pairs(
        "SELECT id, owner FROM salesforce.syncs WHERE server = $1 AND lower(object) = lower($2) ORDER BY id",
        &[server.into(), object.into()],
    )
}

/// The enabled syncs of a server, each with its owner, in id order.
pub fn syncs_of_server(server: &str) -> Result<Vec<(i64, Oid)>> {
    select_pairs(
        "SELECT id, owner FROM salesforce.syncs WHERE server = $1 AND enabled ORDER BY id",
        &[server.into()],
    )
}

fn select_pairs(sql: &str, args: &[pgrx::datum::DatumWithOid]) -> Result<Vec<(i64, Oid)>> {
    Spi::connect(|client| {
        client
            .select(sql, None, args)?
            .map(|r| {
                Ok((
                    r.get::<i64>(1)?.unwrap_or(0),
                    r.get::<Oid>(2)?.unwrap_or(Oid::INVALID),
                ))
            })
            .collect::<std::result::Result<Vec<_>, pgrx::spi::SpiError>>()
    })
    .map_err(Error::from)
}

/// Whether sync `id` exists.
pub fn sync_exists(id: i64) -> Result<bool> {
    Ok(crate::pg::get_one_kept::<bool>(
        "SELECT EXISTS (SELECT 1 FROM salesforce.syncs WHERE id = $1)",
        &[id.into()],
    )?
    .unwrap_or(false))
}

/// How many syncs a role owns.
pub fn syncs_owned(owner: Oid) -> Result<i64> {
    Ok(crate::pg::get_one_kept::<i64>(
        "SELECT count(*) FROM salesforce.syncs WHERE owner = $1",
        &[owner.into()],
    )?
    .unwrap_or(0))
}

/// The sync whose copy is table `relid`, if any.
pub fn sync_of_table(relid: Oid) -> Result<Option<i64>> {
    crate::pg::get_one_kept::<i64>(
        "SELECT (SELECT id FROM salesforce.syncs WHERE target_relid = $1 OR staging_relid = $1 LIMIT 1)",
        &[relid.into()],
    )
    .map_err(Error::from)
}

/// A new sync, as `sync_enable` checked it.
pub struct NewSync<'a> {
    pub server: &'a str,
    pub object: &'a str,
    pub target: &'a crate::access::TableName,
    pub target_relid: Oid,
    pub every: pgrx::datum::Interval,
    pub options: JsonB,
    pub fields: Vec<String>,
    pub columns: Vec<String>,
    pub owner: Oid,
}

pub fn insert_sync(s: NewSync) -> Result<i64> {
    crate::pg::get_one_kept::<i64>(
        "INSERT INTO salesforce.syncs (server, object, target_schema, target_table, target_relid, every, options, fields, columns, owner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        &[
            s.server.into(),
            s.object.into(),
            s.target.schema.clone().into(),
            s.target.table.clone().into(),
            s.target_relid.into(),
            s.every.into(),
            s.options.into(),
            s.fields.into(),
            s.columns.into(),
            s.owner.into(),
        ],
    )?
    .ok_or_else(|| Error::sql(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, "no sync id"))
}

pub fn delete_sync(id: i64) -> Result<()> {
    crate::pg::run_kept("DELETE FROM salesforce.syncs WHERE id = $1", &[id.into()])
        .map_err(Error::from)
}

/// A sync's new schedule and options (`sync_alter`): a shorter interval
/// makes the next run due sooner.
pub fn alter_sync(id: i64, every: Option<pgrx::datum::Interval>, options: JsonB) -> Result<()> {
    crate::pg::run_kept(
        "UPDATE salesforce.syncs SET every = coalesce($2, every), options = $3,
             next_due = CASE WHEN $2 IS NULL THEN next_due ELSE least(next_due, now() + $2) END WHERE id = $1",
        &[id.into(), every.into(), options.into()],
    )
    .map_err(Error::from)
}

/// Why the stream cannot keep a sync's copy current, or None.
pub fn set_stream_warning(sync_id: i64, warning: Option<&str>) -> Result<()> {
    crate::pg::run_kept(
        "UPDATE salesforce.syncs SET stream_warning = $2 WHERE id = $1 AND stream_warning IS DISTINCT FROM $2",
        &[sync_id.into(), warning.into()],
    )
    .map_err(Error::from)
}

/// Leaves a backfill's Bulk job for the API the sync now names: the
/// backfill starts over, upserting over the rows the job brought.
pub fn leave_bulk_job(id: i64) -> Result<()> {
    crate::pg::run_kept(
        "UPDATE salesforce.syncs SET bulk_job = NULL, bulk_locator = NULL, bulk_page_rows = 0, backfill_after = NULL,
             backfill_overlaps = backfill_overlaps OR backfill_rows > 0 WHERE id = $1 AND bulk_job IS NOT NULL",
        &[id.into()],
    )
    .map_err(Error::from)
}

/// The fields a sync copies, and their columns, in the same order.
pub fn set_fields(id: i64, fields: Vec<String>, columns: Vec<String>) -> Result<()> {
    crate::pg::run_kept(
        "UPDATE salesforce.syncs SET fields = $2, columns = $3 WHERE id = $1",
        &[id.into(), fields.into(), columns.into()],
    )
    .map_err(Error::from)
}

/// Records the staging table of a resync, or that there is none.
pub fn set_staging(id: i64, relid: Option<Oid>) -> Result<()> {
    crate::pg::run_kept(
        "UPDATE salesforce.syncs SET staging_relid = $2 WHERE id = $1",
        &[id.into(), relid.into()],
    )
    .map_err(Error::from)
}

/// Starts the sync over from the beginning, into its staging table.
pub fn request_resync(id: i64, staging: Oid) -> Result<()> {
    crate::pg::run_kept(
        "UPDATE salesforce.syncs SET stage = 'resync', staging_relid = $2, backfill_after = NULL, backfill_total = NULL, backfill_rows = 0, bulk_job = NULL, bulk_locator = NULL, bulk_page_rows = 0, backfill_overlaps = false WHERE id = $1",
        &[id.into(), staging.into()],
    )
    .map_err(Error::from)
}

/// The copy's names as the catalog has them now (it may have been renamed).
pub fn save_target_name(id: i64, name: &crate::access::TableName) -> Result<()> {
    crate::pg::run_kept(
        "UPDATE salesforce.syncs SET target_schema = $2, target_table = $3 WHERE id = $1 AND (target_schema, target_table) IS DISTINCT FROM ($2::name, $3::name)",
        &[id.into(), name.schema.clone().into(), name.table.clone().into()],
    )
    .map_err(Error::from)
}

pub fn save_row_count(id: i64, rows: i64) -> Result<()> {
    crate::pg::run_kept(
        "UPDATE salesforce.syncs SET row_count = $2, row_count_at = clock_timestamp() WHERE id = $1",
        &[id.into(), rows.into()],
    )
    .map_err(Error::from)
}

/// Stops running a sync whose checks failed, and looks again in a minute:
/// a sync is never run while paused. Logs why as a failed run when the
/// reason is new, or `always`; returns that run.
pub fn pause(s: &SyncRow, why: &Error, started_by: &str, always: bool) -> Result<Option<i64>> {
    let reason = why.message();
    let logged = if always || s.paused_reason.as_deref() != Some(reason.as_str()) {
        let run = insert_run(s, s.stage.as_str(), started_by)?;
        let mut problem = Problem::of(why);
        problem.message = format!("paused: {reason}");
        finish_run(run, "failed", Some(&problem), Some(PAUSE_RECHECK_SECONDS))?;
        Some(run)
    } else {
        None
    };
    crate::pg::run_kept(
        "UPDATE salesforce.syncs SET paused_reason = $2, next_due = clock_timestamp() + make_interval(secs => $3) WHERE id = $1",
        &[s.id.into(), reason.into(), (PAUSE_RECHECK_SECONDS as f64).into()],
    )?;
    Ok(logged)
}

/// How often the worker checks a paused sync again: the checks are local
/// and cost no API request.
pub const PAUSE_RECHECK_SECONDS: i64 = 60;

/// Marks a sync paused, without logging a run: the caller logs its own.
pub fn set_paused(id: i64, reason: &str) -> Result<()> {
    crate::pg::run_kept(
        "UPDATE salesforce.syncs SET paused_reason = $2 WHERE id = $1",
        &[id.into(), reason.into()],
    )
    .map_err(Error::from)
}

pub fn resume(id: i64) -> Result<()> {
    crate::pg::run_kept(
        "UPDATE salesforce.syncs SET paused_reason = NULL WHERE id = $1",
        &[id.into()],
    )
    .map_err(Error::from)
}

/// Saves the checkpoint: stage, backfill progress and cursors.
pub fn save_checkpoint(s: &SyncRow) -> Result<()> {
    let stamp = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339());
    crate::pg::run_kept(
        "UPDATE salesforce.syncs SET stage = $2, backfill_after = $3, backfill_total = $4, backfill_rows = $5, cursor = $6::timestamptz, deleted_cursor = $7::timestamptz, fields = $8, columns = $9, bulk_job = $10, bulk_locator = $11, bulk_page_rows = $12, backfill_overlaps = $13, formulas_refreshed_at = $14::timestamptz WHERE id = $1",
        &[
            s.id.into(),
            s.stage.as_str().into(),
            s.backfill_after.clone().into(),
            s.backfill_total.into(),
            s.backfill_rows.into(),
            stamp(s.cursor).into(),
            stamp(s.deleted_cursor).into(),
            s.fields.clone().into(),
            s.columns.clone().into(),
            s.bulk_job.clone().into(),
            s.bulk_locator.clone().into(),
            s.bulk_page_rows.into(),
            s.backfill_overlaps.into(),
            stamp(s.formulas_refreshed_at).into(),
        ],
    )
    .map_err(Error::from)
}

/// Marks runs of a sync that were left running (their backend died) as failed.
/// Only called with the sync's lock held, so none of them is still going;
/// stream sessions run beside runs, and their stream closes its own.
/// Only runs newer than its last finished one can be: each run closes the
/// ones before it when it starts, so the log is never read further back.
pub fn close_abandoned_runs(sync_id: i64) -> Result<()> {
    crate::pg::run_kept(
        "UPDATE salesforce.sync_runs SET status = 'failed', finished_at = clock_timestamp(), error = 'interrupted: the process running it stopped; the next run resumed from the checkpoint' WHERE sync_id = $1 AND status = 'running' AND kind <> 'stream' AND id > coalesce((SELECT max(id) FROM salesforce.sync_runs WHERE sync_id = $1 AND status <> 'running' AND kind <> 'stream'), 0)",
        &[sync_id.into()],
    )
    .map_err(Error::from)
}

/// How many of the sync's last runs in a row were throttled.
pub fn throttled_runs_in_a_row(sync_id: i64) -> Result<i64> {
    Ok(crate::pg::get_one_kept::<i64>(
        "SELECT count(*) FROM salesforce.sync_runs WHERE sync_id = $1 AND status = 'throttled' AND id > coalesce((SELECT max(id) FROM salesforce.sync_runs WHERE sync_id = $1 AND status IN ('succeeded', 'failed') AND kind <> 'stream'), 0)",
        &[sync_id.into()],
    )?
    .unwrap_or(0))
}

pub fn insert_run(s: &SyncRow, kind: &str, started_by: &str) -> Result<i64> {
    crate::pg::get_one_kept::<i64>(
        "INSERT INTO salesforce.sync_runs (sync_id, server, object, kind, started_by, cursor_from, owner) VALUES ($1, $2, $3, $4, $5, $6::timestamptz, $7) RETURNING id",
        &[s.id.into(), s.server.clone().into(), s.object.clone().into(), kind.into(), started_by.into(), s.cursor.map(|t| t.to_rfc3339()).into(), s.owner().into()],
    )
    ?
    .ok_or_else(|| Error::sql(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, "no run id"))
}

/// A run's counters as the log shows them.
pub struct RunProgress<'a> {
    pub id: i64,
    pub rows_upserted: i64,
    pub rows_read: i64,
    pub rows_deleted: i64,
    pub api_requests: i64,
    pub cursor_to: Option<DateTime<Utc>>,
    pub notes: &'a [String],
}

pub fn save_progress(p: &RunProgress) -> Result<()> {
    crate::pg::run_kept(
        "UPDATE salesforce.sync_runs SET rows_upserted = $2, rows_deleted = $3, api_requests = $4, cursor_to = $5::timestamptz, notes = $6, rows_read = $7 WHERE id = $1",
        &[p.id.into(), p.rows_upserted.into(), p.rows_deleted.into(), p.api_requests.into(), p.cursor_to.map(|t| t.to_rfc3339()).into(), p.notes.iter().map(|n| crate::error::scrub(n)).collect::<Vec<_>>().into(), p.rows_read.into()],
    )
    .map_err(Error::from)
}

/// What a run's log row says went wrong, or why it was throttled: the
/// message, and for an error its SQLSTATE and hint, as they were raised.
pub struct Problem {
    pub message: String,
    pub sqlstate: Option<String>,
    pub hint: Option<String>,
}

impl Problem {
    pub fn of(e: &Error) -> Problem {
        Problem {
            message: e.message(),
            sqlstate: Some(e.sqlstate()),
            hint: e.hint(),
        }
    }

    pub fn note(message: impl Into<String>) -> Problem {
        Problem {
            message: message.into(),
            sqlstate: None,
            hint: None,
        }
    }
}

/// Ends a run and says when its sync is next due: after `every`, or after
/// `retry_in` seconds for a throttled or failed run.
pub fn finish_run(
    run_id: i64,
    status: &str,
    problem: Option<&Problem>,
    retry_in: Option<i64>,
) -> Result<()> {
    let scrubbed = |t: Option<&String>| t.map(|t| crate::error::scrub(t));
    crate::pg::run_kept(
        "WITH r AS (UPDATE salesforce.sync_runs SET status = $2, error = $3, error_sqlstate = $5, error_hint = $6, finished_at = clock_timestamp() WHERE id = $1 RETURNING sync_id)
         UPDATE salesforce.syncs s SET next_due = clock_timestamp() + coalesce(make_interval(secs => $4), s.every) FROM r WHERE s.id = r.sync_id",
        &[
            run_id.into(),
            status.into(),
            scrubbed(problem.map(|p| &p.message)).into(),
            retry_in.map(|s| s as f64).into(),
            problem.and_then(|p| p.sqlstate.clone()).into(),
            scrubbed(problem.and_then(|p| p.hint.as_ref())).into(),
        ],
    )
    .map_err(Error::from)
}

/// The pacing row of a server: bucket and the org's last known usage.
pub struct PacingRow {
    pub tokens: f64,
    pub at_ms: i64,
    pub org_used: Option<i64>,
    pub org_max: Option<i64>,
    /// Whether the org's usage was seen in the last 15 minutes: older
    /// figures say little, as usage rolls off over 24 hours.
    pub fresh: bool,
}

/// `for_update` locks the row until the transaction ends, for a debit.
pub fn load_pacing(server: &str, for_update: bool) -> Result<Option<PacingRow>> {
    let sql = if for_update {
        "SELECT (SELECT jsonb_build_array(tokens, refilled_at_ms, org_used, org_max, observed_at > clock_timestamp() - interval '15 minutes') FROM salesforce.pacing WHERE server = $1 FOR UPDATE)"
    } else {
        "SELECT (SELECT jsonb_build_array(tokens, refilled_at_ms, org_used, org_max, observed_at > clock_timestamp() - interval '15 minutes') FROM salesforce.pacing WHERE server = $1)"
    };
    let row = crate::pg::get_one_kept::<JsonB>(sql, &[server.into()]).map_err(Error::from)?;
    Ok(row.map(|j| {
        let a = |i: usize| j.0.get(i).cloned().unwrap_or(Json::Null);
        PacingRow {
            tokens: a(0).as_f64().unwrap_or(0.0),
            at_ms: a(1).as_i64().unwrap_or(0),
            org_used: a(2).as_i64(),
            org_max: a(3).as_i64(),
            fresh: a(4).as_bool().unwrap_or(false),
        }
    }))
}

pub fn save_pacing(server: &str, row: &PacingRow) -> Result<()> {
    crate::pg::run_kept(
        "INSERT INTO salesforce.pacing (server, tokens, refilled_at_ms, org_used, org_max, observed_at) VALUES ($1, $2, $3, $4, $5, clock_timestamp())
         ON CONFLICT (server) DO UPDATE SET tokens = EXCLUDED.tokens, refilled_at_ms = EXCLUDED.refilled_at_ms,
           org_used = coalesce(EXCLUDED.org_used, pacing.org_used), org_max = coalesce(EXCLUDED.org_max, pacing.org_max), observed_at = EXCLUDED.observed_at",
        &[server.into(), row.tokens.into(), row.at_ms.into(), row.org_used.into(), row.org_max.into()],
    )
    .map_err(Error::from)
}
