//! A run of a copy that is full, a small state machine: it polls the
//! changes since the checkpoint, with the deletions beside them; compares
//! all ids instead when getDeleted no longer reaches back to the last
//! check; and reads the formula fields again when they are due.

use super::fetch::Request;
use super::rows::{stamp_of, Rows};
use super::seen;
use super::store::SyncRow;
use super::tally::Tally;
use crate::error::{Error, Result};
use chrono::{DateTime, Duration as Span, Utc};
use pgrx::PgSqlErrorCode;
use salesforce_core::client::describe::ObjectDescribe;
use salesforce_core::client::session::{DeletedRecords, QueryPage};
use salesforce_core::sync::definition::{SyncOptions, SyncedField};
use salesforce_core::sync::poll_batch::{DeletedWindow, DuePoll, PollQuery};
use salesforce_core::sync::queries;
use serde_json::{Map, Value as Json};

/// Where an incremental run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Changes and deletions since the checkpoint.
    Changes,
    /// Formula fields read again, as their values change without SystemModstamp.
    Formulas,
    /// All ids compared with the copy's.
    Reconcile,
}

pub struct Incremental {
    step: Step,
    /// Of the fields fetched, Id and the formula fields.
    formula_fields: Vec<SyncedField>,
    /// When this run's formula refresh began.
    formulas_from: Option<DateTime<Utc>>,
    /// Deletions the poll brought, applied once its change pages are.
    pending_deleted: Option<DeletedRecords>,
    /// The ids Salesforce has, as far as its pages came, and when it was asked.
    live_ids: Vec<String>,
    reconcile_at: Option<DateTime<Utc>>,
}

impl Incremental {
    pub fn new() -> Incremental {
        Incremental {
            step: Step::Changes,
            formula_fields: vec![],
            formulas_from: None,
            pending_deleted: None,
            live_ids: vec![],
            reconcile_at: None,
        }
    }

    /// Learns from the describe which of the `fields` fetched are formulas.
    pub fn find_formula_fields(&mut self, object: &ObjectDescribe, fields: &[SyncedField]) {
        self.formula_fields = fields
            .iter()
            .filter(|f| f.field == "Id" || object.field(&f.field).is_some_and(|d| d.calculated))
            .cloned()
            .collect();
    }

    /// What to ask Salesforce next: the next page of the step's query,
    /// `next_url`, if it has one, else the step's query.
    pub fn request(
        &mut self,
        next_url: Option<String>,
        sync: &SyncRow,
        options: &SyncOptions,
        fields: &[SyncedField],
        server_now: impl Fn() -> DateTime<Utc>,
    ) -> Request {
        let lookback = Span::seconds(options.lookback_seconds);
        let object = sync.object.clone();
        match (self.step, next_url) {
            (Step::Changes, Some(url)) => Request::Poll(DuePoll {
                key: sync.id,
                object,
                query: PollQuery::NextPage(url),
                deleted: None,
            }),
            (_, Some(url)) => Request::NextPage(url),
            (Step::Changes, None) => {
                let end = server_now();
                let start = sync.deleted_cursor.unwrap_or(end) - lookback;
                let names: Vec<String> = fields.iter().map(|f| f.field.clone()).collect();
                Request::Poll(DuePoll {
                    key: sync.id,
                    query: PollQuery::Changes(queries::changes(
                        &object,
                        &names,
                        sync.cursor.map(|c| c - lookback),
                    )),
                    object,
                    deleted: Some(DeletedWindow { start, end }),
                })
            }
            (Step::Formulas, None) => {
                self.formulas_from = Some(server_now());
                let names: Vec<String> = self.formula_fields[1..]
                    .iter()
                    .map(|f| f.field.clone())
                    .collect();
                Request::Query {
                    soql: queries::formulas(&object, &names),
                    include_deleted: false,
                }
            }
            (Step::Reconcile, None) => {
                self.reconcile_at = Some(server_now());
                Request::Query {
                    soql: queries::all_ids(&object),
                    include_deleted: false,
                }
            }
        }
    }

    /// Keeps the deletions a poll brought with its first page, if it did.
    pub fn hold_deleted(&mut self, deleted: Option<DeletedRecords>) {
        if deleted.is_some() {
            self.pending_deleted = deleted;
        }
    }

    /// Stores a page of the step's answer in the copy, and moves the
    /// checkpoint. True when the run is done.
    pub fn apply_page(
        &mut self,
        page: QueryPage,
        sync: &mut SyncRow,
        options: &SyncOptions,
        fields: &[SyncedField],
        tally: &mut Tally,
        server_now: impl Fn() -> DateTime<Utc>,
    ) -> Result<bool> {
        // The page is the query's last (the run asks for no next one).
        let done = page.done || page.next_records_url.is_none();
        let soft = options.soft_delete;
        match self.step {
            Step::Changes => {
                let is_deleted = |r: &Map<String, Json>| {
                    r.get("IsDeleted").and_then(Json::as_bool) == Some(true)
                };
                tally.rows_read += page.records.len() as i64;
                let mut live = Rows::new(fields, soft);
                let mut gone = Vec::new();
                let mut copied = Vec::new();
                for r in &page.records {
                    if !is_deleted(r) {
                        let id = r.get("Id").and_then(Json::as_str).unwrap_or_default();
                        match stamp_of(r) {
                            Some(stamp) if seen::copied(sync.id, id, stamp) => continue,
                            Some(stamp) => copied.push((id.to_string(), stamp)),
                            None => {}
                        }
                        live.push(r, None)?;
                    } else if soft {
                        live.push(r, Some(stamp_of(r).unwrap_or_else(Utc::now)))?;
                    } else if let Some(id) = r.get("Id").and_then(Json::as_str) {
                        gone.push(id.to_string());
                    }
                }
                tally.rows_upserted += sync.target().upsert_rows(&live)?;
                tally.rows_deleted +=
                    sync.target()
                        .delete_rows(sync.id_column(), false, &gone, Utc::now())?;
                if let Some(newest) = page.records.iter().filter_map(stamp_of).max() {
                    sync.cursor = Some(sync.cursor.map_or(newest, |c| c.max(newest)));
                }
                if let Some(cursor) = sync.cursor {
                    seen::remember(
                        sync.id,
                        copied,
                        cursor - Span::seconds(options.lookback_seconds),
                    );
                }
                if done {
                    let deleted = self.pending_deleted.take().ok_or_else(|| {
                        Error::sql(
                            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                            "a poll's change pages ended without its deletions",
                        )
                    })?;
                    return self.apply_deleted(deleted, sync, options, tally, server_now);
                }
            }
            Step::Formulas => {
                tally.rows_read += page.records.len() as i64;
                let mut rows = Rows::new(&self.formula_fields, false);
                for r in &page.records {
                    rows.push(r, None)?;
                }
                tally.rows_upserted += sync.target().update_changed_rows(&rows)?;
                if done {
                    sync.formulas_refreshed_at = self.formulas_from;
                    tally.notes.push("formula fields read again".into());
                    return Ok(true);
                }
            }
            Step::Reconcile => {
                self.live_ids.extend(
                    page.records
                        .iter()
                        .filter_map(|r| r.get("Id").and_then(Json::as_str))
                        .map(str::to_string),
                );
                if done {
                    let at = self.reconcile_at.unwrap_or_else(Utc::now);
                    tally.rows_deleted += sync.target().keep_only(
                        sync.id_column(),
                        soft,
                        &std::mem::take(&mut self.live_ids),
                        at,
                    )?;
                    sync.deleted_cursor = Some(at);
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Applies the deletions of the poll whose change pages are stored. True
    /// when the run is done.
    fn apply_deleted(
        &mut self,
        d: DeletedRecords,
        sync: &mut SyncRow,
        options: &SyncOptions,
        tally: &mut Tally,
        server_now: impl Fn() -> DateTime<Utc>,
    ) -> Result<bool> {
        let start = sync
            .deleted_cursor
            .map(|c| c - Span::seconds(options.lookback_seconds));
        if start.is_some_and(|s| d.earliest_date_available > s) {
            tally.notes.push(format!(
                "getDeleted only covers deletions since {}, after this copy's last check: comparing all ids instead",
                d.earliest_date_available.to_rfc3339()
            ));
            self.step = Step::Reconcile;
            return Ok(false);
        }
        let target = sync.target();
        let id_column = sync.id_column().to_string();
        if options.soft_delete {
            // Each row is marked with its own deletion time.
            for r in &d.deleted_records {
                tally.rows_deleted += target.delete_rows(
                    &id_column,
                    true,
                    std::slice::from_ref(&r.id),
                    r.deleted_date,
                )?;
            }
        } else {
            let ids: Vec<String> = d.deleted_records.iter().map(|r| r.id.clone()).collect();
            tally.rows_deleted +=
                target.delete_rows(&id_column, false, &ids, d.latest_date_covered)?;
        }
        sync.deleted_cursor = Some(d.latest_date_covered);
        if self.formulas_due(sync, options, server_now) {
            self.step = Step::Formulas;
            return Ok(false);
        }
        Ok(true)
    }

    /// Whether the copy's formula fields are due to be read again.
    fn formulas_due(
        &self,
        sync: &SyncRow,
        options: &SyncOptions,
        server_now: impl Fn() -> DateTime<Utc>,
    ) -> bool {
        let Some(every) = options.formula_refresh_seconds else {
            return false;
        };
        self.formula_fields.len() > 1
            && sync
                .formulas_refreshed_at
                .is_none_or(|t| server_now() - t >= Span::seconds(every))
    }
}
