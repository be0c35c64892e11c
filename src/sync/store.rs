//! The sync's local side through SPI: its configuration and checkpoint rows,
//! its log, its pacing row, and the rows of the copy itself.

use super::rows::Rows;
use crate::copy;
use crate::error::{Error, Result};
use crate::pg::in_subtransaction;
use chrono::{DateTime, Utc};
use pgrx::datum::DatumWithOid;
use pgrx::{JsonB, PgSqlErrorCode, Spi};
use salesforce_core::naming::quote_ident;
use salesforce_core::sync::definition::{qualified, DELETED_AT, SYNCED_AT};
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
    pub target_schema: String,
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
}

impl SyncRow {
    pub fn target(&self) -> String {
        qualified(&self.target_schema, &self.target_table)
    }

    /// Where a resync loads its new copy before it replaces the table's rows.
    pub fn staging(&self) -> String {
        let name: String = format!("{}__resync", self.target_table)
            .chars()
            .take(63)
            .collect();
        qualified(&self.target_schema, &name)
    }

    pub fn id_column(&self) -> &str {
        let i = self.fields.iter().position(|f| f == "Id").unwrap_or(0);
        &self.columns[i]
    }
}

/// Refuses to run against the SQL of another version than the library's: a
/// new library is installed before `ALTER EXTENSION ... UPDATE` runs.
pub fn check_installed_version() -> Result<()> {
    let installed = Spi::get_one::<String>(
        "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_salesforce'",
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
    let row = Spi::get_one_with_args::<JsonB>("SELECT (SELECT to_jsonb(s) || jsonb_build_object('owner', s.owner::bigint) FROM salesforce.syncs s WHERE id = $1)", &[id.into()])?;
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

pub fn sync_id(server: &str, object: &str) -> Result<Option<i64>> {
    Spi::get_one_with_args::<i64>(
        "SELECT (SELECT id FROM salesforce.syncs WHERE server = $1 AND lower(object) = lower($2))",
        &[server.into(), object.into()],
    )
    .map_err(Error::from)
}

/// Saves the checkpoint: stage, backfill progress and cursors.
pub fn save_checkpoint(s: &SyncRow) -> Result<()> {
    let stamp = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339());
    Spi::run_with_args(
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

pub fn run_sql(sql: &str) -> Result<()> {
    Spi::run(sql).map_err(Error::from)
}

/// Marks runs of a sync that were left running (their backend died) as failed.
/// Only called with the sync's lock held, so none of them is still going;
/// stream sessions run beside runs, and their stream closes its own.
pub fn close_abandoned_runs(sync_id: i64) -> Result<()> {
    Spi::run_with_args(
        "UPDATE salesforce.sync_runs SET status = 'failed', finished_at = clock_timestamp(), error = 'interrupted: the process running it stopped; the next run resumed from the checkpoint' WHERE sync_id = $1 AND status = 'running' AND kind <> 'stream'",
        &[sync_id.into()],
    )
    .map_err(Error::from)
}

/// How many of the sync's last runs in a row were throttled.
pub fn throttled_runs_in_a_row(sync_id: i64) -> Result<i64> {
    Ok(Spi::get_one_with_args::<i64>(
        "SELECT count(*) FROM salesforce.sync_runs WHERE sync_id = $1 AND status = 'throttled' AND id > coalesce((SELECT max(id) FROM salesforce.sync_runs WHERE sync_id = $1 AND status IN ('succeeded', 'failed') AND kind <> 'stream'), 0)",
        &[sync_id.into()],
    )?
    .unwrap_or(0))
}

pub fn insert_run(s: &SyncRow, kind: &str, started_by: &str) -> Result<i64> {
    Spi::get_one_with_args::<i64>(
        "INSERT INTO salesforce.sync_runs (sync_id, server, object, kind, started_by, cursor_from) VALUES ($1, $2, $3, $4, $5, $6::timestamptz) RETURNING id",
        &[s.id.into(), s.server.clone().into(), s.object.clone().into(), kind.into(), started_by.into(), s.cursor.map(|t| t.to_rfc3339()).into()],
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
    Spi::run_with_args(
        "UPDATE salesforce.sync_runs SET rows_upserted = $2, rows_deleted = $3, api_requests = $4, cursor_to = $5::timestamptz, notes = $6, rows_read = $7 WHERE id = $1",
        &[p.id.into(), p.rows_upserted.into(), p.rows_deleted.into(), p.api_requests.into(), p.cursor_to.map(|t| t.to_rfc3339()).into(), p.notes.to_vec().into(), p.rows_read.into()],
    )
    .map_err(Error::from)
}

/// Ends a run and says when its sync is next due: after `every`, or after
/// `retry_in` seconds for a throttled or failed run.
pub fn finish_run(
    run_id: i64,
    status: &str,
    error: Option<&str>,
    retry_in: Option<i64>,
) -> Result<()> {
    Spi::run_with_args(
        "WITH r AS (UPDATE salesforce.sync_runs SET status = $2, error = $3, finished_at = clock_timestamp() WHERE id = $1 RETURNING sync_id)
         UPDATE salesforce.syncs s SET next_due = clock_timestamp() + coalesce(make_interval(secs => $4), s.every) FROM r WHERE s.id = r.sync_id",
        &[run_id.into(), status.into(), error.map(crate::error::scrub).into(), retry_in.map(|s| s as f64).into()],
    )
    .map_err(Error::from)
}

/// `a = EXCLUDED.a, ...` for every quoted column but the key.
fn set_from_excluded(quoted: &[String], id: &str) -> String {
    quoted
        .iter()
        .filter(|c| *c != id)
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `WHERE` for an upsert's update: only a row whose values differ, and
/// never with an older version (by SystemModstamp) than the row holds. So a
/// re-read writes nothing: no new row version, no trigger, no WAL.
fn changed_and_newer(quoted: &[String], id: &str, stamp: Option<&str>) -> String {
    let compared: Vec<&String> = quoted
        .iter()
        .filter(|c| *c != id && c.as_str() != SYNCED_AT)
        .collect();
    let list = |prefix: &str| {
        compared
            .iter()
            .map(|c| format!("{prefix}.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let changed = format!(
        "ROW({}) IS DISTINCT FROM ROW({})",
        list("t"),
        list("EXCLUDED")
    );
    match stamp {
        Some(s) => format!(
            "{changed} AND (t.{s} IS NULL OR EXCLUDED.{s} IS NULL OR EXCLUDED.{s} >= t.{s})"
        ),
        None => changed,
    }
}

/// Writes rows into `table`, replacing rows with the same id when they
/// changed, and returns how many it wrote. Each column arrives as an array
/// of input texts and is cast to its type, which runs the type's input
/// function as a scan does.
pub fn upsert_rows(table: &str, rows: &Rows) -> Result<i64> {
    if rows.len() == 0 {
        return Ok(0);
    }
    let mut columns: Vec<String> = rows.fields.iter().map(|f| quote_ident(&f.column)).collect();
    let id = quote_ident(
        &rows
            .fields
            .iter()
            .find(|f| f.field == "Id")
            .map(|f| f.column.clone())
            .unwrap_or_else(|| "id".into()),
    );
    let mut selected: Vec<String> = rows
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| format!("r.c{i}::{}", f.pg.sql()))
        .collect();
    let mut arrays: Vec<DatumWithOid> = (0..rows.fields.len())
        .map(|c| rows.column(c).into())
        .collect();
    columns.push(SYNCED_AT.into());
    selected.push("now()".into());
    if rows.soft_delete() {
        columns.push(DELETED_AT.into());
        selected.push(format!("r.c{}::timestamptz", arrays.len()));
        arrays.push(rows.column(rows.fields.len()).into());
    }
    let parameters: Vec<String> = (1..=arrays.len())
        .map(|i| format!("${i}::text[]"))
        .collect();
    let names: Vec<String> = (0..arrays.len()).map(|i| format!("c{i}")).collect();
    let stamp = rows
        .fields
        .iter()
        .find(|f| f.field == "SystemModstamp")
        .map(|f| quote_ident(&f.column));
    let sql = format!(
        "WITH w AS (INSERT INTO {table} AS t ({}) SELECT {} FROM unnest({}) AS r({}) ON CONFLICT ({id}) DO UPDATE SET {} WHERE {} RETURNING 1) SELECT count(*) FROM w",
        columns.join(", "),
        selected.join(", "),
        parameters.join(", "),
        names.join(", "),
        set_from_excluded(&columns, &id),
        changed_and_newer(&columns, &id, stamp.as_deref())
    );
    Ok(Spi::get_one_with_args::<i64>(&sql, &arrays)?.unwrap_or(0))
}

/// Updates the given columns of rows already in the copy, where a value
/// differs and, if SystemModstamp is among them, never to an older version;
/// returns how many rows changed. Rows not in the copy are left to the
/// change polls.
pub fn update_changed_rows(table: &str, rows: &Rows) -> Result<i64> {
    if rows.len() == 0 {
        return Ok(0);
    }
    let id = rows
        .fields
        .iter()
        .position(|f| f.field == "Id")
        .expect("the rows carry their Id");
    let value = |i: usize| format!("r.c{i}::{}", rows.fields[i].pg.sql());
    let others: Vec<usize> = (0..rows.fields.len()).filter(|i| *i != id).collect();
    let column = |i: usize| quote_ident(&rows.fields[i].column);
    let set: Vec<String> = others
        .iter()
        .map(|&i| format!("{} = {}", column(i), value(i)))
        .collect();
    let old: Vec<String> = others.iter().map(|&i| format!("t.{}", column(i))).collect();
    let new: Vec<String> = others.iter().map(|&i| value(i)).collect();
    let arrays: Vec<DatumWithOid> = (0..rows.fields.len())
        .map(|c| rows.column(c).into())
        .collect();
    let parameters: Vec<String> = (1..=arrays.len())
        .map(|i| format!("${i}::text[]"))
        .collect();
    let names: Vec<String> = (0..arrays.len()).map(|i| format!("c{i}")).collect();
    let newer = rows
        .fields
        .iter()
        .position(|f| f.field == "SystemModstamp")
        .map(|i| format!(" AND (t.{0} IS NULL OR {1} >= t.{0})", column(i), value(i)))
        .unwrap_or_default();
    let sql = format!(
        "WITH w AS (UPDATE {table} AS t SET {}, {SYNCED_AT} = now() FROM unnest({}) AS r({}) WHERE t.{} = r.c{id} AND ROW({}) IS DISTINCT FROM ROW({}){newer} RETURNING 1) SELECT count(*) FROM w",
        set.join(", "),
        parameters.join(", "),
        names.join(", "),
        column(id),
        old.join(", "),
        new.join(", ")
    );
    Ok(Spi::get_one_with_args::<i64>(&sql, &arrays)?.unwrap_or(0))
}

/// Writes rows a backfill reads for the first time: through COPY, unless
/// some are in the copy already (written through, or read by an earlier
/// job), when they are upserted instead. COPY is tried first, in a
/// subtransaction: a batch that collides costs one rollback, and no batch
/// pays for a lookup of its ids.
pub fn insert_new_rows(table: &str, rows: &mut Rows) -> Result<i64> {
    if rows.len() == 0 {
        return Ok(0);
    }
    let mut columns: Vec<String> = rows.fields.iter().map(|f| f.column.clone()).collect();
    columns.push(SYNCED_AT.into());
    if rows.soft_delete() {
        columns.push(DELETED_AT.into());
    }
    let data = rows.take_copy_text();
    match in_subtransaction(|| copy::copy_in(table, &columns, data)) {
        Ok(n) => Ok(n as i64),
        Err(Error::Sql {
            code: PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION,
            ..
        }) => upsert_rows(table, rows),
        Err(e) => Err(e),
    }
}

/// Removes rows by id, or with soft deletes marks them deleted at `at`.
pub fn delete_rows(
    table: &str,
    id_column: &str,
    soft_delete: bool,
    ids: &[String],
    at: DateTime<Utc>,
) -> Result<i64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let id = quote_ident(id_column);
    let (sql, args): (String, Vec<DatumWithOid>) = if soft_delete {
        (
            format!("WITH d AS (UPDATE {table} SET {DELETED_AT} = $2::timestamptz, {SYNCED_AT} = now() WHERE {id} = ANY($1) AND {DELETED_AT} IS NULL RETURNING 1) SELECT count(*) FROM d"),
            vec![ids.to_vec().into(), at.to_rfc3339().into()],
        )
    } else {
        (format!("WITH d AS (DELETE FROM {table} WHERE {id} = ANY($1) RETURNING 1) SELECT count(*) FROM d"), vec![ids.to_vec().into()])
    };
    Ok(Spi::get_one_with_args::<i64>(&sql, &args)?.unwrap_or(0))
}

/// Removes (or marks deleted) every row whose id is not in `live`.
pub fn keep_only(
    table: &str,
    id_column: &str,
    soft_delete: bool,
    live: &[String],
    at: DateTime<Utc>,
) -> Result<i64> {
    let id = quote_ident(id_column);
    let sql = if soft_delete {
        format!("WITH d AS (UPDATE {table} SET {DELETED_AT} = $2::timestamptz, {SYNCED_AT} = now() WHERE NOT ({id} = ANY($1)) AND {DELETED_AT} IS NULL RETURNING 1) SELECT count(*) FROM d")
    } else {
        format!("WITH d AS (DELETE FROM {table} WHERE NOT ({id} = ANY($1)) AND $2::timestamptz IS NOT NULL RETURNING 1) SELECT count(*) FROM d")
    };
    Ok(
        Spi::get_one_with_args::<i64>(&sql, &[live.to_vec().into(), at.to_rfc3339().into()])?
            .unwrap_or(0),
    )
}

/// Makes `target` hold exactly the rows of `staging`, in this transaction,
/// so readers see the old copy or the new one and never a partial one.
pub fn replace_contents(
    target: &str,
    staging: &str,
    id_column: &str,
    columns: &[String],
    soft_delete: bool,
) -> Result<()> {
    let id = quote_ident(id_column);
    let mut quoted: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    quoted.push(SYNCED_AT.into());
    if soft_delete {
        quoted.push(DELETED_AT.into());
    }
    let list = quoted.join(", ");
    run_sql(&format!(
        "DELETE FROM {target} t WHERE NOT EXISTS (SELECT 1 FROM {staging} s WHERE s.{id} = t.{id})"
    ))?;
    run_sql(&format!(
        "INSERT INTO {target} AS t ({list}) SELECT {list} FROM {staging} ON CONFLICT ({id}) DO UPDATE SET {} WHERE {}",
        set_from_excluded(&quoted, &id),
        changed_and_newer(&quoted, &id, None)
    ))?;
    run_sql(&format!("DROP TABLE {staging}"))
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
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row = Spi::get_one_with_args::<JsonB>(
        &format!("SELECT (SELECT jsonb_build_array(tokens, refilled_at_ms, org_used, org_max, observed_at > clock_timestamp() - interval '15 minutes') FROM salesforce.pacing WHERE server = $1{lock})"),
        &[server.into()],
    )
    .map_err(Error::from)?;
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
    Spi::run_with_args(
        "INSERT INTO salesforce.pacing (server, tokens, refilled_at_ms, org_used, org_max, observed_at) VALUES ($1, $2, $3, $4, $5, clock_timestamp())
         ON CONFLICT (server) DO UPDATE SET tokens = EXCLUDED.tokens, refilled_at_ms = EXCLUDED.refilled_at_ms,
           org_used = coalesce(EXCLUDED.org_used, pacing.org_used), org_max = coalesce(EXCLUDED.org_max, pacing.org_max), observed_at = EXCLUDED.observed_at",
        &[server.into(), row.tokens.into(), row.at_ms.into(), row.org_used.into(), row.org_max.into()],
    )
    .map_err(Error::from)
}
