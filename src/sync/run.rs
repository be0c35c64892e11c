//! One run of a sync, as steps. Each step is `prepare` (local: pacing and
//! what to ask next), `fetch` (Salesforce only, no catalog or SPI, so the
//! worker can do it outside any transaction) and `apply` (local: the rows
//! and the checkpoint that covers them, in one transaction).

use super::bulk::{self, BulkSelect};
use super::copy_table::CopyTable;
use super::fetch::{perform, Answer, Fetched, Request};
use super::rest;
use super::rows::{stamp_of, Rows};
use super::store::{self, RunProgress, Stage, SyncRow};
use crate::access;
use crate::catalog;
use crate::connection;
use crate::error::{Error, Result};
use crate::gucs;
use crate::read_ahead::{Counted, ReadAhead};
use chrono::{DateTime, Duration as Span, Utc};
use pgrx::pg_sys::Oid;
use pgrx::PgSqlErrorCode;
use salesforce_core::client::bulk::{JobState, QueryJob};
use salesforce_core::client::describe::ObjectDescribe;
use salesforce_core::client::session::{DeletedRecords, QueryPage};
use salesforce_core::sync::definition::{
    self, BackfillApi, SyncOptions, SyncedField, BULK_THRESHOLD,
};
use salesforce_core::sync::pacing::{self, Bucket};
use salesforce_core::sync::poll_batch::{DeletedWindow, DuePoll, PollQuery};
use salesforce_core::sync::queries;
use salesforce_core::SalesforceError;
use serde_json::{Map, Value as Json};
use std::time::{Duration, Instant};

/// How old the stored row count of a copy may grow before a run counts again.
const ROW_COUNT_EVERY_SECONDS: i64 = 300;

/// Pauses longer than this end the run as throttled instead of waiting.
const LONGEST_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Describe,
    Count,
    NewestStamp,
    Backfill,
    BulkCreate,
    BulkWait,
    BulkRead,
    Changes,
    /// Formula fields read again, as their values change without SystemModstamp.
    Formulas,
    Reconcile,
    Done,
}

pub enum Next {
    Fetch(Request),
    Wait(Duration),
    Done,
}

pub struct Run {
    pub id: i64,
    sync: SyncRow,
    options: SyncOptions,
    /// The fields fetched this run: those synced that Salesforce still has.
    fields: Vec<SyncedField>,
    /// Of those, Id and the formula fields.
    formula_fields: Vec<SyncedField>,
    /// When this run's formula refresh began.
    formulas_from: Option<DateTime<Utc>>,
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
    /// Records read from Salesforce, written or not.
    rows_read: i64,
    rows_deleted: i64,
    api_requests: i64,
    notes: Vec<String>,
    /// Why the run stopped early to wait for API budget, and for how long.
    throttled: Option<(String, i64)>,
    /// A Bulk backfill: what its jobs select, the results page being read,
    /// when to look at the job next, and how many jobs this run started.
    bulk: Option<std::result::Result<BulkSelect, String>>,
    page: Option<ReadAhead<bulk::Batch>>,
    /// A REST backfill's query, read ahead.
    pages: Option<ReadAhead<Counted<rest::Batch>>>,
    next_poll: Option<(Instant, Duration)>,
    jobs_started: u32,
    /// The run finished a backfill: the sync is due again at once, to catch up.
    backfilled: bool,
    /// How many runs before this one in a row were throttled.
    throttled_before: i64,
    /// Deletions the poll brought, applied once its change pages are.
    pending_deleted: Option<DeletedRecords>,
    /// A describe this process made recently enough stands in for a new one.
    reuses_describe: bool,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// What starting a run came to.
pub enum Started {
    Run(Run),
    /// The sync's checks failed: it is paused, and says why.
    Paused {
        error: Error,
        /// Whether this pause is new (or for a new reason), and so logged.
        logged: Option<i64>,
    },
}

/// What every run checks before it asks Salesforce anything: the owner
/// still exists, may still use the server, and still owns its copy.
fn check_access(sync: &SyncRow) -> Result<()> {
    let owner = sync.owner();
    if !access::role_exists(owner) {
        return Err(Error::sql(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!(
                "the owner of {} (role {}) no longer exists",
                sync.describe(),
                sync.owner
            ),
        )
        .with_hint(format!(
            "A superuser may disable it with salesforce.sync_disable({}).",
            sync.id
        )));
    }
    let server = catalog::server_oid(&sync.server)?;
    access::check_server_use(server, owner)?;
    access::check_table(sync.target().relid, owner, "the copy")?;
    // Salesforce refused the mapping's refresh token (revoked, expired):
    // no login is tried again until the user mapping changes.
    connection::prepare_session(server, owner)?;
    match connection::disconnected(server, owner) {
        Some(why) => Err(disconnected(&why)),
        None => Ok(()),
    }
}

/// Why a sync whose org refused its refresh token is paused.
fn disconnected(why: &str) -> Error {
    Error::sql(
        PgSqlErrorCode::ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION,
        format!("disconnected: {why}"),
    )
    .with_hint("Connect the org again (salesforce.authorize_url and complete_authorization), or change the user mapping's refresh_token.")
}

impl Run {
    /// Starts a run of sync `sync_id`, as the extension's owner; the caller
    /// holds the sync's lock. `log_refusal` logs a failed checks' run even
    /// when the sync is paused for that reason already.
    pub fn start(sync_id: i64, started_by: &str, log_refusal: bool) -> Result<Started> {
        store::check_installed_version()?;
        store::close_abandoned_runs(sync_id)?;
        let mut sync = store::load_sync(sync_id)?;
        if let Err(error) = check_access(&sync) {
            let logged = store::pause(&sync, &error, started_by, log_refusal)?;
            return Ok(Started::Paused { error, logged });
        }
        let mut notes = vec![];
        if let Some(why) = &sync.paused_reason {
            store::resume(sync_id)?;
            notes.push(format!(
                "resumed: the checks that paused the sync pass again ({why})"
            ));
        }
        if let Some(name) = access::table_name(sync.target().relid) {
            store::save_target_name(sync_id, &name)?;
        }
        if sync.stage == Stage::Resync && !staging_is_usable(&sync) {
            let staging = sync.target().create_like(&sync.staging_name())?;
            store::request_resync(sync_id, staging.relid)?;
            notes.push("the resync's staging table was gone: the resync starts over".into());
            sync = store::load_sync(sync_id)?;
        }
        let options = SyncOptions::parse(&sync.options)?;
        let server = catalog::server_oid(&sync.server)?;
        let (server_options, _) = catalog::server_options(server)?;
        let throttled_before = store::throttled_runs_in_a_row(sync_id)?;
        let id = store::insert_run(&sync, sync.stage.as_str(), started_by)?;
        Ok(Started::Run(Run {
            id,
            throttled_before,
            options,
            fields: vec![],
            formula_fields: vec![],
            formulas_from: None,
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
            rows_read: 0,
            rows_deleted: 0,
            api_requests: 0,
            notes,
            throttled: None,
            bulk: None,
            page: None,
            pages: None,
            next_poll: None,
            jobs_started: 0,
            backfilled: false,
            pending_deleted: None,
            reuses_describe: started_by == "worker",
        }))
    }

    pub fn sync_id(&self) -> i64 {
        self.sync.id
    }

    /// The server and user mapping the run asks Salesforce through.
    pub fn mapping(&self) -> (Oid, Oid) {
        (self.server, self.user)
    }

    /// The server's name.
    pub fn server_name(&self) -> &str {
        &self.sync.server
    }

    /// When to try again after the org's limit stopped the run.
    fn limit_retry(&self) -> i64 {
        pacing::limit_retry_seconds(self.throttled_before)
    }

    fn throttle(&mut self, why: String, retry_in: i64) {
        self.throttled = Some((why, retry_in.max(1)));
        self.phase = Phase::Done;
    }

    /// Whether pacing lets a request go now; sets `throttled` if not soon.
    fn pace(&mut self) -> Result<Option<Duration>> {
        let row = store::load_pacing(&self.sync.server, false)?;
        // After a throttle, the run's first request looks afresh at the
        // org's usage (every answer carries it) instead of trusting the last.
        let probing = self.throttled_before > 0 && self.api_requests == 0;
        if let Some(r) = row.as_ref().filter(|_| !probing) {
            if let (Some(used), Some(max), true) = (r.org_used, r.org_max, r.fresh) {
                if pacing::below_reserve(used, max, self.reserve_percent) {
                    self.throttle(format!("the org has used {used} of its {max} daily API requests; syncs leave the last {}% to other clients", self.reserve_percent), self.limit_retry());
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
            .sane(self.max_per_day, now)
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

    /// Where the run writes: the copy, or a resync's staging table.
    fn target(&self) -> CopyTable {
        let backfilling = matches!(
            self.phase,
            Phase::Backfill | Phase::BulkCreate | Phase::BulkWait | Phase::BulkRead
        );
        match self.sync.staging() {
            Some(staging) if self.sync.stage == Stage::Resync && backfilling => staging,
            _ => self.sync.target(),
        }
    }

    fn field_names(&self) -> Vec<String> {
        self.fields.iter().map(|f| f.field.clone()).collect()
    }

    /// Salesforce's clock: at this run's last answer; before the first, the
    /// session's, carried on from an earlier run; else ours.
    fn server_now(&self) -> DateTime<Utc> {
        self.server_time
            .or_else(|| connection::server_now(self.server, self.user))
            .unwrap_or_else(Utc::now)
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
        if self.phase == Phase::Describe && self.reuses_describe {
            let every = Duration::from_secs(gucs::DESCRIBE_INTERVAL.get() as u64);
            if let Some(d) =
                connection::recent_describe(self.server, self.user, &self.sync.object, every)
            {
                self.apply_describe(&d)?;
            }
        }
        let lookback = Span::seconds(self.options.lookback_seconds);
        let object = self.sync.object.clone();
        let request = match (self.phase, self.next_url.clone()) {
            (Phase::Changes, Some(url)) => Request::Poll(DuePoll {
                key: self.sync.id,
                object,
                query: PollQuery::NextPage(url),
                deleted: None,
            }),
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
            (Phase::Backfill, None) => Request::ReadPages(queries::backfill(
                &object,
                &self.field_names(),
                self.sync.backfill_after.as_deref(),
            )),
            (Phase::Changes, None) => {
                let end = self.server_now();
                let start = self.sync.deleted_cursor.unwrap_or(end) - lookback;
                Request::Poll(DuePoll {
                    key: self.sync.id,
                    query: PollQuery::Changes(queries::changes(
                        &object,
                        &self.field_names(),
                        self.sync.cursor.map(|c| c - lookback),
                    )),
                    object,
                    deleted: Some(DeletedWindow { start, end }),
                })
            }
            (Phase::BulkCreate, None) => {
                let select = match &self.bulk {
                    Some(Ok(select)) => select,
                    Some(Err(field)) => {
                        return Err(Error::sql(
                            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                            format!("Bulk API 2.0 cannot return field {field} of {object}"),
                        )
                        .with_hint("Sync it with the option \"api\": \"rest\", or leave the field out with \"fields\"."))
                    }
                    None => unreachable!("the describe comes first"),
                };
                Request::CreateJob {
                    soql: queries::bulk_backfill(&object, &select.fields),
                    include_deleted: self.options.soft_delete,
                }
            }
            (Phase::BulkWait, None) => {
                if let Some((at, _)) = self.next_poll {
                    let now = Instant::now();
                    if at > now {
                        return Ok(Next::Wait(at - now));
                    }
                }
                Request::PollJob(
                    self.sync
                        .bulk_job
                        .clone()
                        .expect("a job is being waited for"),
                )
            }
            (Phase::BulkRead, None) => Request::ReadResults {
                job: self.sync.bulk_job.clone().expect("a job is being read"),
                locator: self.sync.bulk_locator.clone(),
                skip: self.sync.bulk_page_rows as u64,
            },
            (Phase::Formulas, None) => {
                self.formulas_from = Some(self.server_now());
                let names: Vec<String> = self.formula_fields[1..]
                    .iter()
                    .map(|f| f.field.clone())
                    .collect();
                Request::Query {
                    soql: queries::formulas(&object, &names),
                    include_deleted: false,
                }
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
    pub fn fetch(&mut self, request: Request) -> Fetched {
        if request.is_detached() {
            return connection::with_prepared_session(self.server, self.user, |s| {
                Ok(perform(s, request))
            })
            .unwrap_or_else(Fetched::failed);
        }
        let mut counted = (0i64, None, None);
        let page = &mut self.page;
        let pages = &mut self.pages;
        let select = self.bulk.as_ref().and_then(|b| b.as_ref().ok());
        let fields = &self.fields;
        let soft_delete = self.options.soft_delete;
        let answer = connection::with_prepared_session(self.server, self.user, |s| {
            let before = s.requests;
            let answer = match request {
                Request::ReadPages(soql) => {
                    if pages.is_none() {
                        *pages = Some(rest::read_ahead(s.fork(), soql, fields, soft_delete));
                    }
                    Ok(Answer::Opened)
                }
                Request::ReadResults { job, locator, skip } => {
                    if page.is_none() {
                        let select = select.expect("a Bulk backfill has its select");
                        let open =
                            bulk::open_page(s, select, fields, &job, locator.as_deref(), skip)?;
                        *page = Some(bulk::read_ahead(open, fields, soft_delete));
                    }
                    Ok(Answer::Opened)
                }
                _ => unreachable!("detached requests are made above"),
            };
            counted = (
                (s.requests - before) as i64,
                s.last_limit_info.clone(),
                s.last_server_time,
            );
            answer
        });
        let answer = match answer {
            Ok(Answer::Opened) if self.pages.is_some() => return self.next_pages(),
            Ok(Answer::Opened) => bulk::next_batch(&mut self.page).map(Answer::Batch),
            other => other,
        };
        Fetched {
            answer,
            requests: counted.0,
            limit_info: counted.1,
            server_time: counted.2,
        }
    }

    /// The next batch of the REST backfill being read ahead, with what it cost.
    fn next_pages(&mut self) -> Fetched {
        let item = self
            .pages
            .as_ref()
            .expect("the query is being read")
            .next(connection::interrupted)
            .unwrap_or_else(|| {
                Err(Error::sql(
                    PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                    "the query's pages ended without their last batch",
                ))
            });
        let fetched = match item {
            Ok(counted) => Fetched {
                requests: counted.requests,
                limit_info: counted.limit_info.clone(),
                server_time: counted.server_time,
                answer: counted.into_answer().map(Answer::Pages),
            },
            Err(e) => Fetched {
                answer: Err(e),
                requests: 0,
                limit_info: None,
                server_time: None,
            },
        };
        if fetched
            .answer
            .as_ref()
            .map_or(true, |a| matches!(a, Answer::Pages(b) if b.done))
        {
            self.pages = None;
        }
        fetched
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
            .sane(self.max_per_day, now)
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
                self.throttle("Salesforce answered REQUEST_LIMIT_EXCEEDED: the org's daily API limit is used up".into(), self.limit_retry());
                return self.save();
            }
            Err(e) if self.job_is_gone(&e) => {
                self.replace_job(format!(
                    "Bulk job {} can no longer be read ({})",
                    self.sync.bulk_job.clone().unwrap_or_default(),
                    e.message()
                ))?;
                return self.save();
            }
            Err(e) => return Err(e),
        };
        match answer {
            Answer::Describe(d) => {
                self.apply_describe(&d)?;
                connection::remember_describe(self.server, self.user, d);
            }
            Answer::Page(page) => self.apply_page(page)?,
            Answer::Poll(page, deleted) => {
                if deleted.is_some() {
                    self.pending_deleted = deleted;
                }
                self.apply_page(page)?
            }
            Answer::Job(job) => self.apply_job(job)?,
            Answer::Batch(batch) => self.apply_batch(batch)?,
            Answer::Pages(batch) => self.apply_pages(batch)?,
            Answer::Opened => unreachable!("fetch reads what it opens"),
        }
        self.save()
    }

    fn progress(&self) -> RunProgress<'_> {
        RunProgress {
            id: self.id,
            rows_upserted: self.rows_upserted,
            rows_read: self.rows_read,
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
                tables.extend(self.sync.staging());
            }
            for table in tables {
                table.add_columns(&drift.added)?;
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
        self.formula_fields = self
            .fields
            .iter()
            .filter(|f| f.field == "Id" || object.field(&f.field).is_some_and(|d| d.calculated))
            .cloned()
            .collect();
        if self.sync.stage != Stage::Incremental {
            self.bulk = Some(BulkSelect::new(
                object,
                &self.fields,
                self.options.soft_delete,
            ));
        }
        self.phase = match self.sync.stage {
            Stage::Incremental => Phase::Changes,
            _ if self.sync.backfill_total.is_none() => Phase::Count,
            _ => self.backfill_phase(),
        };
        Ok(())
    }

    /// Where a backfill goes on: the Bulk job or REST pages it began with,
    /// else the API the `api` option and the record count choose.
    fn backfill_phase(&self) -> Phase {
        if self.sync.bulk_job.is_some() {
            if self.sync.bulk_locator.is_some() || self.sync.bulk_page_rows > 0 {
                Phase::BulkRead
            } else {
                Phase::BulkWait
            }
        } else if self.sync.backfill_rows > 0 || self.sync.backfill_after.is_some() {
            Phase::Backfill
        } else if self.uses_bulk() {
            Phase::BulkCreate
        } else {
            Phase::NewestStamp
        }
    }

    fn uses_bulk(&self) -> bool {
        match self.options.api {
            BackfillApi::Rest => false,
            BackfillApi::Bulk => true,
            BackfillApi::Auto => {
                self.sync.backfill_total.unwrap_or(0) as u64 >= BULK_THRESHOLD
                    && matches!(self.bulk, Some(Ok(_)))
            }
        }
    }

    /// Stores rows a backfill reads: inserted through COPY, unless an
    /// earlier job may have stored some of them already.
    fn store_backfill_rows(&mut self, rows: &mut Rows) -> Result<()> {
        self.rows_read += rows.len() as i64;
        let n = if self.sync.backfill_overlaps {
            self.target().upsert_rows(rows)?
        } else {
            self.target().insert_new_rows(rows)?
        };
        self.rows_upserted += n;
        self.sync.backfill_rows += rows.len() as i64;
        Ok(())
    }

    /// The backfill is done: a resync's copy replaces the old one, and the
    /// run ends, leaving the changes made meanwhile to the next run, due at once.
    fn finish_backfill(&mut self) -> Result<()> {
        if let (Stage::Resync, Some(staging)) = (self.sync.stage, self.sync.staging()) {
            self.sync.target().replace_contents(
                &staging,
                self.sync.id_column(),
                &self.sync.columns,
                self.options.soft_delete,
            )?;
            store::set_staging(self.sync.id, None)?;
            self.sync.staging_relid = None;
            self.notes
                .push("the copy was replaced with the reloaded records".into());
        }
        self.sync.stage = Stage::Incremental;
        self.sync.backfill_after = None;
        self.sync.bulk_job = None;
        self.sync.bulk_locator = None;
        self.sync.bulk_page_rows = 0;
        self.sync.backfill_overlaps = false;
        // The backfill read the formulas; they are as fresh as its start, about.
        self.sync.formulas_refreshed_at = Some(self.server_now());
        self.phase = Phase::Done;
        self.backfilled = true;
        Ok(())
    }

    fn apply_job(&mut self, job: QueryJob) -> Result<()> {
        if self.phase == Phase::BulkCreate {
            if self.sync.backfill_rows == 0 && !self.sync.backfill_overlaps {
                // The job's snapshot starts the copy: changes after it come
                // from the cursor, the newest SystemModstamp it holds.
                self.sync.cursor = None;
                self.sync.deleted_cursor = Some(self.server_now());
            }
            self.notes
                .push(format!("Bulk query job {} started", job.id));
            self.sync.bulk_job = Some(job.id);
            self.sync.bulk_locator = None;
            self.sync.bulk_page_rows = 0;
            self.jobs_started += 1;
            self.next_poll = Some((Instant::now() + bulk::FIRST_POLL, bulk::FIRST_POLL));
            self.phase = Phase::BulkWait;
            return Ok(());
        }
        match job.state {
            JobState::JobComplete => {
                self.notes.push(format!(
                    "Bulk query job {} complete: {} records",
                    job.id,
                    job.number_records_processed.unwrap_or(0)
                ));
                self.next_poll = None;
                self.phase = Phase::BulkRead;
            }
            JobState::Failed | JobState::Aborted => self.replace_job(format!(
                "Bulk query job {} {}: {}",
                job.id,
                if job.state == JobState::Failed {
                    "failed"
                } else {
                    "was aborted"
                },
                job.error_message.unwrap_or_default()
            ))?,
            _ => {
                let every = self
                    .next_poll
                    .map_or(bulk::FIRST_POLL, |(_, e)| (e * 2).min(bulk::LONGEST_POLL));
                self.next_poll = Some((Instant::now() + every, every));
            }
        }
        Ok(())
    }

    /// Whether an error means the job or its results are gone (deleted,
    /// expired, a locator no longer valid), so a new job must be started.
    fn job_is_gone(&self, e: &Error) -> bool {
        matches!(self.phase, Phase::BulkWait | Phase::BulkRead)
            && matches!(e, Error::Salesforce(SalesforceError::Api { status, code, .. })
                if (400..500).contains(status) && code != "REQUEST_LIMIT_EXCEEDED" && code != "INVALID_SESSION_ID")
    }

    /// Starts the backfill's records over with a new job. Rows already
    /// copied stay and are upserted again, never duplicated.
    fn replace_job(&mut self, why: String) -> Result<()> {
        self.page = None;
        if self.jobs_started >= bulk::MAX_JOBS_PER_RUN {
            return Err(Error::sql(
                PgSqlErrorCode::ERRCODE_FDW_ERROR,
                format!(
                    "{why}; this run started {} jobs already, so it stops here",
                    self.jobs_started
                ),
            ));
        }
        self.notes
            .push(format!("{why}: a new job reads the records again"));
        self.sync.backfill_overlaps |= self.sync.backfill_rows > 0;
        self.sync.bulk_job = None;
        self.sync.bulk_locator = None;
        self.sync.bulk_page_rows = 0;
        self.phase = Phase::BulkCreate;
        Ok(())
    }

    fn apply_batch(&mut self, mut batch: bulk::Batch) -> Result<()> {
        self.store_backfill_rows(&mut batch.rows)?;
        self.sync.bulk_page_rows += batch.rows.len() as i64;
        if let Some(newest) = batch.newest {
            self.sync.cursor = Some(self.sync.cursor.map_or(newest, |c| c.max(newest)));
        }
        if batch.page_done {
            match batch.next_locator {
                Some(next) => {
                    self.sync.bulk_locator = Some(next);
                    self.sync.bulk_page_rows = 0;
                }
                None => self.finish_backfill()?,
            }
        }
        Ok(())
    }

    fn apply_pages(&mut self, mut batch: rest::Batch) -> Result<()> {
        self.store_backfill_rows(&mut batch.rows)?;
        if let Some(last) = batch.last_id {
            self.sync.backfill_after = Some(last);
        }
        if batch.done {
            self.finish_backfill()?;
        }
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
                self.phase = self.backfill_phase();
            }
            Phase::NewestStamp => {
                self.sync.cursor = page.records.first().and_then(stamp_of);
                self.sync.deleted_cursor = Some(self.server_now());
                self.sync.backfill_after = None;
                self.sync.backfill_rows = 0;
                self.phase = Phase::Backfill;
            }
            Phase::Changes => {
                let is_deleted = |r: &Map<String, Json>| {
                    r.get("IsDeleted").and_then(Json::as_bool) == Some(true)
                };
                self.rows_read += page.records.len() as i64;
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
                self.rows_upserted += self.target().upsert_rows(&live)?;
                self.rows_deleted +=
                    self.target()
                        .delete_rows(self.sync.id_column(), false, &gone, Utc::now())?;
                if let Some(newest) = page.records.iter().filter_map(stamp_of).max() {
                    self.sync.cursor = Some(self.sync.cursor.map_or(newest, |c| c.max(newest)));
                }
                if done {
                    let deleted = self.pending_deleted.take().ok_or_else(|| {
                        Error::sql(
                            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                            "a poll's change pages ended without its deletions",
                        )
                    })?;
                    self.apply_deleted(deleted)?;
                }
            }
            Phase::Formulas => {
                self.rows_read += page.records.len() as i64;
                let mut rows = Rows::new(&self.formula_fields, false);
                for r in &page.records {
                    rows.push(r, None)?;
                }
                self.rows_upserted += self.target().update_changed_rows(&rows)?;
                if done {
                    self.sync.formulas_refreshed_at = self.formulas_from;
                    self.notes.push("formula fields read again".into());
                    self.phase = Phase::Done;
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
                    self.rows_deleted += self.target().keep_only(
                        self.sync.id_column(),
                        soft,
                        &std::mem::take(&mut self.live_ids),
                        at,
                    )?;
                    self.sync.deleted_cursor = Some(at);
                    self.phase = Phase::Done;
                }
            }
            Phase::Describe
            | Phase::Backfill
            | Phase::Done
            | Phase::BulkCreate
            | Phase::BulkWait
            | Phase::BulkRead => {
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
                self.rows_deleted += target.delete_rows(
                    &id_column,
                    true,
                    std::slice::from_ref(&r.id),
                    r.deleted_date,
                )?;
            }
        } else {
            let ids: Vec<String> = d.deleted_records.iter().map(|r| r.id.clone()).collect();
            self.rows_deleted +=
                target.delete_rows(&id_column, false, &ids, d.latest_date_covered)?;
        }
        self.sync.deleted_cursor = Some(d.latest_date_covered);
        self.phase = if self.formulas_due() {
            Phase::Formulas
        } else {
            Phase::Done
        };
        Ok(())
    }

    /// Whether the copy's formula fields are due to be read again.
    fn formulas_due(&self) -> bool {
        let Some(every) = self.options.formula_refresh_seconds else {
            return false;
        };
        self.formula_fields.len() > 1
            && self
                .sync
                .formulas_refreshed_at
                .is_none_or(|t| self.server_now() - t >= Span::seconds(every))
    }

    pub fn finished(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Ends the run in the log, and says when it is next due. The checkpoint
    /// is not saved here: after a failure only what `apply` committed counts.
    pub fn finish(self, failure: Option<Error>) -> Result<()> {
        if failure.is_some() {
            // The failure may come from a field Salesforce no longer has.
            connection::forget_describe(self.server, self.user, &self.sync.object);
        }
        store::save_progress(&self.progress())?;
        // Counted after a run that changed the copy, and every few minutes
        // besides, for what write-through and change events did.
        let changed = self.rows_upserted + self.rows_deleted > 0 || self.backfilled;
        let stale = self
            .sync
            .row_count_at
            .is_none_or(|at| Utc::now() - at > Span::seconds(ROW_COUNT_EVERY_SECONDS));
        if failure.is_none() && (changed || stale) {
            store::save_row_count(self.sync.id, self.sync.target().count_rows()?)?;
        }
        // A run that found its org's refresh token refused pauses the sync
        // at once: the next check finds it disconnected, and logs nothing new.
        let failure = match (failure, connection::disconnected(self.server, self.user)) {
            (Some(_), Some(why)) => {
                let e = disconnected(&why);
                store::set_paused(self.sync.id, &e.message())?;
                let mut problem = store::Problem::of(&e);
                problem.message = format!("paused: {}", e.message());
                store::finish_run(
                    self.id,
                    "failed",
                    Some(&problem),
                    Some(store::PAUSE_RECHECK_SECONDS),
                )?;
                return Ok(());
            }
            (failure, _) => failure,
        };
        let (status, problem, retry) = match (&failure, &self.throttled) {
            (Some(e), _) => ("failed", Some(store::Problem::of(e)), Some(60)),
            (None, Some((why, retry))) => (
                "throttled",
                Some(store::Problem::note(why.clone())),
                Some(*retry),
            ),
            (None, None) => ("succeeded", None, self.backfilled.then_some(0)),
        };
        store::finish_run(self.id, status, problem.as_ref(), retry)?;
        Ok(())
    }
}

/// Whether a resync's staging table is there to load into.
fn staging_is_usable(sync: &SyncRow) -> bool {
    sync.staging()
        .is_some_and(|s| access::check_table(s.relid, sync.owner(), "the staging table").is_ok())
}
