//! One run of a sync, as steps. Each step is `prepare` (local: pacing and
//! what to ask next), `fetch` (Salesforce only, no catalog or SPI, so the
//! worker can do it outside any transaction) and `apply` (local: the rows
//! and the checkpoint that covers them, in one transaction). The run
//! describes the object, counts its records, and hands on to a backfill
//! (`backfill_bulk`, `backfill_rest`) or, once the copy is full, to
//! `incremental`.

use super::backfill;
use super::backfill_bulk::BulkBackfill;
use super::backfill_rest::RestBackfill;
use super::budget::{Budget, Pace};
use super::checks::{check_access, disconnected, staging_is_usable};
use super::drift;
use super::fetch::{perform, Answer, Fetched, Request};
use super::incremental::Incremental;
use super::store::{self, RunProgress, Stage, SyncRow};
use super::tally::Tally;
use crate::access;
use crate::catalog;
use crate::connection;
use crate::error::{Error, Result};
use crate::gucs;
use chrono::{DateTime, Duration as Span, Utc};
use pgrx::pg_sys::Oid;
use pgrx::PgSqlErrorCode;
use salesforce_core::client::describe::ObjectDescribe;
use salesforce_core::client::session::QueryPage;
use salesforce_core::sync::definition::{self, SyncOptions, SyncedField};
use salesforce_core::sync::queries;
use std::time::Duration;

/// How old the stored row count of a copy may grow before a run counts again.
const ROW_COUNT_EVERY_SECONDS: i64 = 300;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Describe,
    Count,
    /// A backfill through REST query pages, as `rest` tells where it stands.
    RestBackfill,
    /// A backfill through a Bulk query job, as `bulk` tells where it stands.
    BulkBackfill,
    /// Changes since the checkpoint, and what follows from them, as
    /// `incremental` tells where it stands.
    Incremental,
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
    server: Oid,
    user: Oid,
    budget: Budget,
    phase: Phase,
    next_url: Option<String>,
    server_time: Option<DateTime<Utc>>,
    tally: Tally,
    /// Why the run stopped early to wait for API budget, and for how long.
    throttled: Option<(String, i64)>,
    bulk: BulkBackfill,
    rest: RestBackfill,
    incremental: Incremental,
    /// The run finished a backfill: the sync is due again at once, to catch up.
    backfilled: bool,
    /// A describe this process made recently enough stands in for a new one.
    reuses_describe: bool,
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
            options,
            fields: vec![],
            server,
            user: Oid::from(sync.owner),
            budget: Budget::new(
                server_options.max_requests_per_day as f64,
                server_options.budget_reserve_percent as f64,
                throttled_before,
            ),
            sync,
            phase: Phase::Describe,
            next_url: None,
            server_time: None,
            tally: Tally {
                notes,
                ..Tally::default()
            },
            throttled: None,
            bulk: BulkBackfill::new(),
            rest: RestBackfill::new(),
            incremental: Incremental::new(),
            backfilled: false,
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

    fn throttle(&mut self, why: String, retry_in: i64) {
        self.throttled = Some((why, retry_in.max(1)));
        self.phase = Phase::Done;
    }

    /// Salesforce's clock: at this run's last answer; before the first, the
    /// session's, carried on from an earlier run; else ours. It borrows
    /// nothing of the run, so the run's parts may read it while they work.
    fn clock(&self) -> impl Fn() -> DateTime<Utc> {
        let (server_time, server, user) = (self.server_time, self.server, self.user);
        move || {
            server_time
                .or_else(|| connection::server_now(server, user))
                .unwrap_or_else(Utc::now)
        }
    }

    /// Local work, then what to ask Salesforce next. Needs a transaction.
    pub fn prepare(&mut self) -> Result<Next> {
        if self.phase == Phase::Done {
            return Ok(Next::Done);
        }
        match self
            .budget
            .pace(&self.sync.server, self.tally.api_requests)?
        {
            Pace::Now => {}
            Pace::After(wait) => return Ok(Next::Wait(wait)),
            Pace::Throttled(why, retry_in) => {
                self.throttle(why, retry_in);
                return Ok(Next::Done);
            }
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
        let object = self.sync.object.clone();
        let request = match (self.phase, self.next_url.clone()) {
            (Phase::Incremental, next_url) => self.incremental.request(
                next_url,
                &self.sync,
                &self.options,
                &self.fields,
                self.clock(),
            ),
            (_, Some(url)) => Request::NextPage(url),
            (Phase::Describe, None) => Request::Describe(object),
            (Phase::Count, None) => Request::Query {
                soql: queries::count(&object),
                include_deleted: false,
            },
            (Phase::RestBackfill, None) => self.rest.request(&self.sync, &object, &self.fields),
            (Phase::BulkBackfill, None) => match self.bulk.until_poll() {
                Some(wait) => return Ok(Next::Wait(wait)),
                None => self
                    .bulk
                    .request(&self.sync, &object, self.options.soft_delete)?,
            },
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
        let bulk = &mut self.bulk;
        let rest = &mut self.rest;
        let fields = &self.fields;
        let soft_delete = self.options.soft_delete;
        let answer = connection::with_prepared_session(self.server, self.user, |s| {
            let before = s.requests;
            let answer = match request {
                Request::ReadPages(soql) => {
                    rest.open(s, soql, fields, soft_delete);
                    Ok(Answer::Opened)
                }
                Request::ReadResults { job, locator, skip } => {
                    bulk.open(s, fields, &job, locator.as_deref(), skip, soft_delete)?;
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
            Ok(Answer::Opened) if self.rest.reading() => return self.rest.next_batch(),
            Ok(Answer::Opened) => self.bulk.next_batch().map(Answer::Batch),
            other => other,
        };
        Fetched {
            answer,
            requests: counted.0,
            limit_info: counted.1,
            server_time: counted.2,
        }
    }

    /// Stores what a fetch brought and moves the checkpoint. Needs a transaction.
    pub fn apply(&mut self, fetched: Fetched) -> Result<()> {
        self.tally.api_requests += fetched.requests;
        if fetched.server_time.is_some() {
            self.server_time = fetched.server_time;
        }
        self.budget.debit(
            &self.sync.server,
            fetched.requests,
            fetched.limit_info.as_deref(),
        )?;
        let answer = match fetched.answer {
            Ok(a) => a,
            Err(e) if e.salesforce_code() == Some("REQUEST_LIMIT_EXCEEDED") => {
                self.throttle("Salesforce answered REQUEST_LIMIT_EXCEEDED: the org's daily API limit is used up".into(), self.budget.limit_retry());
                return self.save();
            }
            Err(e) if self.phase == Phase::BulkBackfill && self.bulk.job_is_gone(&e) => {
                let why = format!(
                    "Bulk job {} can no longer be read ({})",
                    self.sync.bulk_job.clone().unwrap_or_default(),
                    e.message()
                );
                self.bulk
                    .replace_job(why, &mut self.sync, &mut self.tally.notes)?;
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
                self.incremental.hold_deleted(deleted);
                self.apply_page(page)?
            }
            Answer::Job(job) => {
                let server_now = self.clock();
                self.bulk
                    .apply_job(job, &mut self.sync, &mut self.tally.notes, server_now)?
            }
            Answer::Batch(batch) => {
                if self
                    .bulk
                    .apply_batch(batch, &mut self.sync, &mut self.tally)?
                {
                    self.finish_backfill()?;
                }
            }
            Answer::Pages(batch) => {
                if self
                    .rest
                    .apply_batch(batch, &mut self.sync, &mut self.tally)?
                {
                    self.finish_backfill()?;
                }
            }
            Answer::Opened => unreachable!("fetch reads what it opens"),
        }
        self.save()
    }

    fn progress(&self) -> RunProgress<'_> {
        self.tally.progress(self.id, self.sync.cursor)
    }

    fn save(&self) -> Result<()> {
        store::save_checkpoint(&self.sync)?;
        store::save_progress(&self.progress())?;
        Ok(())
    }

    /// Takes in what the describe tells of the object, and chooses the phase.
    fn apply_describe(&mut self, object: &ObjectDescribe) -> Result<()> {
        drift::follow(object, &mut self.sync, &self.options, &mut self.tally.notes)?;
        self.fields = definition::present_fields(&self.sync.fields, &self.sync.columns, object);
        self.incremental.find_formula_fields(object, &self.fields);
        if self.sync.stage != Stage::Incremental {
            self.bulk
                .select_from(object, &self.fields, self.options.soft_delete);
        }
        match self.sync.stage {
            Stage::Incremental => self.phase = Phase::Incremental,
            _ if self.sync.backfill_total.is_none() => self.phase = Phase::Count,
            _ => self.go_on_backfilling(),
        }
        Ok(())
    }

    fn apply_page(&mut self, page: QueryPage) -> Result<()> {
        self.next_url = if page.done {
            None
        } else {
            page.next_records_url.clone()
        };
        match self.phase {
            Phase::Count => {
                self.sync.backfill_total = Some(page.total_size as i64);
                self.go_on_backfilling();
            }
            Phase::RestBackfill if self.rest.asks_newest_stamp() => {
                let server_now = self.clock();
                self.rest
                    .apply_newest_stamp(&page, &mut self.sync, server_now);
            }
            Phase::Incremental => {
                let server_now = self.clock();
                let done = self.incremental.apply_page(
                    page,
                    &mut self.sync,
                    &self.options,
                    &self.fields,
                    &mut self.tally,
                    server_now,
                )?;
                if done {
                    self.phase = Phase::Done;
                }
            }
            Phase::Describe | Phase::RestBackfill | Phase::BulkBackfill | Phase::Done => {
                return Err(Error::sql(
                    PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                    "unexpected query page",
                ))
            }
        }
        Ok(())
    }

    /// Goes on with the backfill the checkpoint holds, or starts one.
    fn go_on_backfilling(&mut self) {
        if backfill::uses_bulk(&self.sync, self.options.api, self.bulk.can_select()) {
            self.bulk.go_on(&self.sync);
            self.phase = Phase::BulkBackfill;
        } else {
            self.rest.go_on(&self.sync);
            self.phase = Phase::RestBackfill;
        }
    }

    /// The backfill is done, and the run ends, leaving the changes made
    /// meanwhile to the next run, due at once.
    fn finish_backfill(&mut self) -> Result<()> {
        let server_now = self.clock();
        backfill::finish(
            &mut self.sync,
            self.options.soft_delete,
            &mut self.tally.notes,
            server_now,
        )?;
        self.phase = Phase::Done;
        self.backfilled = true;
        Ok(())
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
            super::seen::forget(self.sync.id);
        }
        store::save_progress(&self.progress())?;
        // Counted after a run that changed the copy, and every few minutes
        // besides, for what write-through and change events did.
        let changed = self.tally.rows_upserted + self.tally.rows_deleted > 0 || self.backfilled;
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
