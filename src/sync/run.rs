//! One run of a sync, as steps. Each step is `prepare` (local: pacing and
//! what to ask next), `fetch` (Salesforce only, no catalog or SPI, so the
//! worker can do it outside any transaction) and `apply` (local: the rows
//! and the checkpoint that covers them, in one transaction).

use super::rows::{stamp_of, Rows};
use super::store::{self, RunProgress, Stage, SyncRow};
use crate::catalog;
use crate::connection;
use crate::error::{Error, Result};
use chrono::{DateTime, Duration as Span, Utc};
use pgrx::pg_sys::Oid;
use pgrx::PgSqlErrorCode;
use salesforce_core::client::describe::ObjectDescribe;
use salesforce_core::client::session::{DeletedRecords, QueryPage};
use salesforce_core::sync::definition::{self, SyncOptions, SyncedField};
use salesforce_core::sync::pacing::{self, Bucket};
use salesforce_core::sync::queries;
use serde_json::{Map, Value as Json};
use std::time::Duration;

/// Pauses longer than this end the run as throttled instead of waiting.
const LONGEST_WAIT: Duration = Duration::from_secs(60);
/// When the org is short of API requests, look again after this long.
const RESERVE_RETRY_SECONDS: i64 = 900;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Describe,
    Count,
    NewestStamp,
    Backfill,
    Changes,
    Deletes,
    Reconcile,
    Done,
}

pub enum Request {
    Describe(String),
    Query {
        soql: String,
        include_deleted: bool,
    },
    NextPage(String),
    Deleted {
        object: String,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
}

pub enum Answer {
    Describe(ObjectDescribe),
    Page(QueryPage),
    Deleted(DeletedRecords),
}

pub enum Next {
    Fetch(Request),
    Wait(Duration),
    Done,
}

/// What a fetch did, for the log and pacing, whatever its outcome.
pub struct Fetched {
    pub answer: Result<Answer>,
    pub requests: i64,
    pub limit_info: Option<String>,
    pub server_time: Option<DateTime<Utc>>,
}

pub struct Run {
    pub id: i64,
    sync: SyncRow,
    options: SyncOptions,
    /// The fields fetched this run: those synced that Salesforce still has.
    fields: Vec<SyncedField>,
    server: Oid,
    user: Oid,
    max_per_day: f64,
    reserve_percent: f64,
    phase: Phase,
    next_url: Option<String>,
    live_ids: Vec<String>,
    reconcile_at: Option<DateTime<Utc>>,
    server_time: Option<DateTime<Utc>>,
    rows_upserted: i64,
    rows_deleted: i64,
    api_requests: i64,
    notes: Vec<String>,
    /// Why the run stopped early to wait for API budget, and for how long.
    throttled: Option<(String, i64)>,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl Run {
    /// Starts a run of sync `sync_id`. The caller holds the sync's lock.
    pub fn start(sync_id: i64, started_by: &str) -> Result<Run> {
        store::close_abandoned_runs(sync_id)?;
        let sync = store::load_sync(sync_id)?;
        let options = SyncOptions::parse(&sync.options)?;
        let server = catalog::server_oid(&sync.server)?;
        let (server_options, _) = catalog::server_options(server)?;
        let id = store::insert_run(&sync, sync.stage.as_str(), started_by)?;
        Ok(Run {
            id,
            options,
            fields: vec![],
            server,
            user: Oid::from(sync.owner),
            max_per_day: server_options.max_requests_per_day as f64,
            reserve_percent: server_options.budget_reserve_percent as f64,
            sync,
            phase: Phase::Describe,
            next_url: None,
            live_ids: vec![],
            reconcile_at: None,
            server_time: None,
            rows_upserted: 0,
            rows_deleted: 0,
            api_requests: 0,
            notes: vec![],
            throttled: None,
        })
    }

    fn throttle(&mut self, why: String, retry_in: i64) {
        self.throttled = Some((why, retry_in.max(1)));
        self.phase = Phase::Done;
    }

    /// Whether pacing lets a request go now; sets `throttled` if not soon.
    fn pace(&mut self) -> Result<Option<Duration>> {
        let row = store::load_pacing(&self.sync.server, false)?;
        if let Some(r) = &row {
            if let (Some(used), Some(max), true) = (r.org_used, r.org_max, r.fresh) {
                if pacing::below_reserve(used, max, self.reserve_percent) {
                    self.throttle(format!("the org has used {used} of its {max} daily API requests; syncs leave the last {}% to other clients", self.reserve_percent), RESERVE_RETRY_SECONDS);
                    return Ok(None);
                }
            }
        }
        let now = now_ms();
        let bucket = row
            .map(|r| Bucket {
                tokens: r.tokens,
                at_ms: r.at_ms,
            })
            .unwrap_or_else(|| Bucket::full(self.max_per_day, now))
            .refilled(self.max_per_day, now);
        let wait = bucket.wait(self.max_per_day);
        if wait > LONGEST_WAIT {
            self.throttle(
                format!(
                    "max_requests_per_day ({}) is used up for now; next request in {} s",
                    self.max_per_day,
                    wait.as_secs()
                ),
                wait.as_secs() as i64 + 1,
            );
            return Ok(None);
        }
        Ok((!wait.is_zero()).then_some(wait))
    }

    fn target(&self) -> String {
        if self.sync.stage == Stage::Resync && self.phase == Phase::Backfill {
            self.sync.staging()
        } else {
            self.sync.target()
        }
    }

    fn field_names(&self) -> Vec<String> {
        self.fields.iter().map(|f| f.field.clone()).collect()
    }

    /// Salesforce's clock: from the last answer, else ours.
    fn server_now(&self) -> DateTime<Utc> {
        self.server_time.unwrap_or_else(Utc::now)
    }

    /// Local work, then what to ask Salesforce next. Needs a transaction.
    pub fn prepare(&mut self) -> Result<Next> {
        if self.phase == Phase::Done {
            return Ok(Next::Done);
        }
        if let Some(wait) = self.pace()? {
            return Ok(Next::Wait(wait));
        }
        if self.phase == Phase::Done {
            return Ok(Next::Done);
        }
        connection::prepare_session(self.server, self.user)?;
        let lookback = Span::seconds(self.options.lookback_seconds);
        let object = self.sync.object.clone();
        let request = match (self.phase, self.next_url.clone()) {
            (_, Some(url)) => Request::NextPage(url),
            (Phase::Describe, None) => Request::Describe(object),
            (Phase::Count, None) => Request::Query {
                soql: queries::count(&object),
                include_deleted: false,
            },
            (Phase::NewestStamp, None) => Request::Query {
                soql: queries::newest_stamp(&object),
                include_deleted: false,
            },
            (Phase::Backfill, None) => Request::Query {
                soql: queries::backfill(
                    &object,
                    &self.field_names(),
                    self.sync.backfill_after.as_deref(),
                ),
                include_deleted: false,
            },
            (Phase::Changes, None) => Request::Query {
                soql: queries::changes(
                    &object,
                    &self.field_names(),
                    self.sync.cursor.map(|c| c - lookback),
                ),
                include_deleted: true,
            },
            (Phase::Deletes, None) => {
                let end = self.server_now();
                let start = self.sync.deleted_cursor.unwrap_or(end) - lookback;
                Request::Deleted { object, start, end }
            }
            (Phase::Reconcile, None) => {
                self.reconcile_at = Some(self.server_now());
                Request::Query {
                    soql: queries::all_ids(&object),
                    include_deleted: false,
                }
            }
            (Phase::Done, None) => return Ok(Next::Done),
        };
        Ok(Next::Fetch(request))
    }

    /// Asks Salesforce. Reads no catalog and runs no SQL.
    pub fn fetch(&self, request: Request) -> Fetched {
        let mut counted = (0i64, None, None);
        let answer = connection::with_prepared_session(self.server, self.user, |s| {
            let before = s.requests;
            let answer = match request {
                Request::Describe(object) => s.describe(&object).map(Answer::Describe),
                Request::Query {
                    soql,
                    include_deleted,
                } => s.query(&soql, include_deleted).map(Answer::Page),
                Request::NextPage(url) => s.next_page(&url).map(Answer::Page),
                Request::Deleted { object, start, end } => {
                    s.deleted(&object, start, end).map(Answer::Deleted)
                }
            };
            counted = (
                (s.requests - before) as i64,
                s.last_limit_info.clone(),
                s.last_server_time,
            );
            answer
        });
        Fetched {
            answer,
            requests: counted.0,
            limit_info: counted.1,
            server_time: counted.2,
        }
    }

    fn debit(&self, requests: i64, limit_info: Option<&str>) -> Result<()> {
        let now = now_ms();
        let row = store::load_pacing(&self.sync.server, true)?;
        let bucket = row
            .as_ref()
            .map(|r| Bucket {
                tokens: r.tokens,
                at_ms: r.at_ms,
            })
            .unwrap_or_else(|| Bucket::full(self.max_per_day, now))
            .refilled(self.max_per_day, now);
        let org = limit_info.and_then(pacing::parse_limit_info);
        store::save_pacing(
            &self.sync.server,
            &store::PacingRow {
                tokens: bucket.tokens - requests as f64,
                at_ms: bucket.at_ms,
                org_used: org.map(|o| o.0),
                org_max: org.map(|o| o.1),
                fresh: true,
            },
        )?;
        Ok(())
    }

    /// Stores what a fetch brought and moves the checkpoint. Needs a transaction.
    pub fn apply(&mut self, fetched: Fetched) -> Result<()> {
        self.api_requests += fetched.requests;
        if fetched.server_time.is_some() {
            self.server_time = fetched.server_time;
        }
        self.debit(fetched.requests, fetched.limit_info.as_deref())?;
        let answer = match fetched.answer {
            Ok(a) => a,
            Err(e) if e.salesforce_code() == Some("REQUEST_LIMIT_EXCEEDED") => {
                self.throttle("Salesforce answered REQUEST_LIMIT_EXCEEDED: the org's daily API limit is used up".into(), RESERVE_RETRY_SECONDS);
                return self.save();
            }
            Err(e) => return Err(e),
        };
        match answer {
            Answer::Describe(d) => self.apply_describe(&d)?,
            Answer::Page(page) => self.apply_page(page)?,
            Answer::Deleted(d) => self.apply_deleted(d)?,
        }
        self.save()
    }

    fn progress(&self) -> RunProgress<'_> {
        RunProgress {
            id: self.id,
            rows_upserted: self.rows_upserted,
            rows_deleted: self.rows_deleted,
            api_requests: self.api_requests,
            cursor_to: self.sync.cursor,
            notes: &self.notes,
        }
    }

    fn save(&self) -> Result<()> {
        store::save_checkpoint(&self.sync)?;
        store::save_progress(&self.progress())?;
        Ok(())
    }

    fn apply_describe(&mut self, object: &ObjectDescribe) -> Result<()> {
        let drift = definition::drift(
            object,
            &self.sync.fields,
            &self.sync.columns,
            self.options.fields.is_none(),
        );
        if !drift.added.is_empty() {
            let mut tables = vec![self.sync.target()];
            if self.sync.stage == Stage::Resync {
                tables.push(self.sync.staging());
            }
            for table in tables {
                store::run_sql(&definition::add_columns_sql(&table, &drift.added))?;
            }
            for f in &drift.added {
                self.notes.push(format!(
                    "new field {} copied into new column {}",
                    f.field, f.column
                ));
                self.sync.fields.push(f.field.clone());
                self.sync.columns.push(f.column.clone());
            }
        }
        for f in &drift.removed {
            self.notes.push(format!(
                "field {f} is gone from Salesforce; its column stays and is no longer updated"
            ));
        }
        self.fields = definition::present_fields(&self.sync.fields, &self.sync.columns, object);
        self.phase = match self.sync.stage {
            Stage::Incremental => Phase::Changes,
            _ if self.sync.backfill_total.is_none() => Phase::Count,
            _ => Phase::Backfill,
        };
        Ok(())
    }

    fn apply_page(&mut self, page: QueryPage) -> Result<()> {
        self.next_url = if page.done {
            None
        } else {
            page.next_records_url.clone()
        };
        let done = self.next_url.is_none();
        let soft = self.options.soft_delete;
        match self.phase {
            Phase::Count => {
                self.sync.backfill_total = Some(page.total_size as i64);
                self.phase = Phase::NewestStamp;
            }
            Phase::NewestStamp => {
                self.sync.cursor = page.records.first().and_then(stamp_of);
                self.sync.deleted_cursor = Some(self.server_now());
                self.sync.backfill_after = None;
                self.sync.backfill_rows = 0;
                self.phase = Phase::Backfill;
            }
            Phase::Backfill => {
                let mut rows = Rows::new(&self.fields, soft);
                for r in &page.records {
                    rows.push(r, None)?;
                }
                let n = store::upsert_rows(&self.target(), &rows)?;
                self.rows_upserted += n;
                self.sync.backfill_rows += n;
                if let Some(last) = page
                    .records
                    .last()
                    .and_then(|r| r.get("Id"))
                    .and_then(Json::as_str)
                {
                    self.sync.backfill_after = Some(last.to_string());
                }
                if done {
                    if self.sync.stage == Stage::Resync {
                        store::replace_contents(
                            &self.sync.target(),
                            &self.sync.staging(),
                            self.sync.id_column(),
                            &self.sync.columns,
                            soft,
                        )?;
                        self.notes
                            .push("the copy was replaced with the reloaded records".into());
                    }
                    self.sync.stage = Stage::Incremental;
                    self.sync.backfill_after = None;
                    self.phase = Phase::Changes;
                }
            }
            Phase::Changes => {
                let is_deleted = |r: &Map<String, Json>| {
                    r.get("IsDeleted").and_then(Json::as_bool) == Some(true)
                };
                let mut live = Rows::new(&self.fields, soft);
                let mut gone = Vec::new();
                for r in &page.records {
                    if !is_deleted(r) {
                        live.push(r, None)?;
                    } else if soft {
                        live.push(r, Some(stamp_of(r).unwrap_or_else(Utc::now)))?;
                    } else if let Some(id) = r.get("Id").and_then(Json::as_str) {
                        gone.push(id.to_string());
                    }
                }
                self.rows_upserted += store::upsert_rows(&self.target(), &live)?;
                self.rows_deleted += store::delete_rows(
                    &self.target(),
                    self.sync.id_column(),
                    false,
                    &gone,
                    Utc::now(),
                )?;
                if let Some(newest) = page.records.iter().filter_map(stamp_of).max() {
                    self.sync.cursor = Some(self.sync.cursor.map_or(newest, |c| c.max(newest)));
                }
                if done {
                    self.phase = Phase::Deletes;
                }
            }
            Phase::Reconcile => {
                self.live_ids.extend(
                    page.records
                        .iter()
                        .filter_map(|r| r.get("Id").and_then(Json::as_str))
                        .map(str::to_string),
                );
                if done {
                    let at = self.reconcile_at.unwrap_or_else(Utc::now);
                    self.rows_deleted += store::keep_only(
                        &self.target(),
                        self.sync.id_column(),
                        soft,
                        &std::mem::take(&mut self.live_ids),
                        at,
                    )?;
                    self.sync.deleted_cursor = Some(at);
                    self.phase = Phase::Done;
                }
            }
            Phase::Describe | Phase::Deletes | Phase::Done => {
                return Err(Error::sql(
                    PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                    "unexpected query page",
                ))
            }
        }
        Ok(())
    }

    fn apply_deleted(&mut self, d: DeletedRecords) -> Result<()> {
        let start = self
            .sync
            .deleted_cursor
            .map(|c| c - Span::seconds(self.options.lookback_seconds));
        if start.is_some_and(|s| d.earliest_date_available > s) {
            self.notes.push(format!(
                "getDeleted only covers deletions since {}, after this copy's last check: comparing all ids instead",
                d.earliest_date_available.to_rfc3339()
            ));
            self.phase = Phase::Reconcile;
            return Ok(());
        }
        let target = self.target();
        let id_column = self.sync.id_column().to_string();
        if self.options.soft_delete {
            // Each row is marked with its own deletion time.
            for r in &d.deleted_records {
                self.rows_deleted += store::delete_rows(
                    &target,
                    &id_column,
                    true,
                    std::slice::from_ref(&r.id),
                    r.deleted_date,
                )?;
            }
        } else {
            let ids: Vec<String> = d.deleted_records.iter().map(|r| r.id.clone()).collect();
            self.rows_deleted +=
                store::delete_rows(&target, &id_column, false, &ids, d.latest_date_covered)?;
        }
        self.sync.deleted_cursor = Some(d.latest_date_covered);
        self.phase = Phase::Done;
        Ok(())
    }

    pub fn finished(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Ends the run in the log, and says when it is next due. The checkpoint
    /// is not saved here: after a failure only what `apply` committed counts.
    pub fn finish(self, failure: Option<String>) -> Result<()> {
        store::save_progress(&self.progress())?;
        let (status, error, retry) = match (&failure, &self.throttled) {
            (Some(e), _) => ("failed", Some(e.clone()), Some(60)),
            (None, Some((why, retry))) => ("throttled", Some(why.clone()), Some(*retry)),
            (None, None) => ("succeeded", None, None),
        };
        store::finish_run(self.id, status, error.as_deref(), retry)?;
        Ok(())
    }
}
