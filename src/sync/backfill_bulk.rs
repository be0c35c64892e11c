//! The Bulk backfill, a small state machine: it creates a query job, waits
//! for it, then reads its results page by page, a batch at a time. The run
//! stores each batch; the job and how far its results are read go into the
//! sync's checkpoint, so that a later run goes on where this one stopped.

use super::backfill;
use super::bulk::{self, BulkSelect};
use super::fetch::Request;
use super::store::SyncRow;
use super::tally::Tally;
use crate::error::{Error, Result};
use crate::read_ahead::ReadAhead;
use chrono::{DateTime, Utc};
use pgrx::PgSqlErrorCode;
use salesforce_core::client::bulk::{JobState, QueryJob};
use salesforce_core::client::describe::ObjectDescribe;
use salesforce_core::client::session::Session;
use salesforce_core::sync::definition::SyncedField;
use salesforce_core::sync::queries;
use salesforce_core::SalesforceError;
use std::time::{Duration, Instant};

/// Where a Bulk backfill stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// A query job is to be created.
    Create,
    /// The job runs, and is looked at now and then.
    Wait,
    /// The job is complete: its results are read.
    Read,
}

/// A Bulk backfill: where it stands, what its jobs select, the results
/// page being read, when to look at the job next, and how many jobs this
/// run started.
pub struct BulkBackfill {
    step: Step,
    select: Option<std::result::Result<BulkSelect, String>>,
    page: Option<ReadAhead<bulk::Batch>>,
    next_poll: Option<(Instant, Duration)>,
    jobs_started: u32,
}

impl BulkBackfill {
    pub fn new() -> BulkBackfill {
        BulkBackfill {
            step: Step::Create,
            select: None,
            page: None,
            next_poll: None,
            jobs_started: 0,
        }
    }

    /// Learns from the describe what the jobs select, or which field Bulk
    /// API 2.0 cannot return.
    pub fn select_from(
        &mut self,
        object: &ObjectDescribe,
        fields: &[SyncedField],
        soft_delete: bool,
    ) {
        self.select = Some(BulkSelect::new(object, fields, soft_delete));
    }

    /// Whether Bulk API 2.0 can return every field the run fetches.
    pub fn can_select(&self) -> bool {
        matches!(self.select, Some(Ok(_)))
    }

    /// Takes the backfill up where the checkpoint left it: reading the
    /// job's results, waiting for the job, or creating one.
    pub fn go_on(&mut self, sync: &SyncRow) {
        self.step = match sync.bulk_job {
            Some(_) if sync.bulk_locator.is_some() || sync.bulk_page_rows > 0 => Step::Read,
            Some(_) => Step::Wait,
            None => Step::Create,
        };
    }

    /// How long the running job is left alone still.
    pub fn until_poll(&self) -> Option<Duration> {
        if self.step != Step::Wait {
            return None;
        }
        let (at, _) = self.next_poll?;
        let now = Instant::now();
        (at > now).then(|| at - now)
    }

    /// What to ask Salesforce next, once `until_poll` has passed.
    pub fn request(&self, sync: &SyncRow, object: &str, soft_delete: bool) -> Result<Request> {
        // Checked at every step: a field Bulk cannot return may appear in
        // Salesforce while a job runs, and the run's describe adds it.
        let select = match &self.select {
            Some(Ok(select)) => select,
            Some(Err(field)) => {
                return Err(Error::sql(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    format!("Bulk API 2.0 cannot return field {field} of {object}"),
                )
                .with_hint("Sync it with the option \"api\": \"rest\" (salesforce.sync_alter), or leave the field out with \"fields\"."))
            }
            None => unreachable!("the describe comes first"),
        };
        Ok(match self.step {
            Step::Create => Request::CreateJob {
                soql: queries::bulk_backfill(object, &select.fields),
                include_deleted: soft_delete,
            },
            Step::Wait => {
                Request::PollJob(sync.bulk_job.clone().expect("a job is being waited for"))
            }
            Step::Read => Request::ReadResults {
                job: sync.bulk_job.clone().expect("a job is being read"),
                locator: sync.bulk_locator.clone(),
                skip: sync.bulk_page_rows as u64,
            },
        })
    }

    /// Opens the results page at `locator` of `job`, past its first `skip`
    /// rows, unless a page is open already. Asks Salesforce only: no
    /// catalog, no SQL.
    pub fn open(
        &mut self,
        s: &mut Session,
        fields: &[SyncedField],
        job: &str,
        locator: Option<&str>,
        skip: u64,
        soft_delete: bool,
    ) -> std::result::Result<(), SalesforceError> {
        if self.page.is_none() {
            let Some(Ok(select)) = self.select.as_ref() else {
                // `request` refused the step already.
                return Err(SalesforceError::Config(
                    "the Bulk backfill has no fields to read".into(),
                ));
            };
            let open = bulk::open_page(s, select, fields, job, locator, skip)?;
            self.page = Some(bulk::read_ahead(open, fields, soft_delete));
        }
        Ok(())
    }

    /// The next batch of the open results page.
    pub fn next_batch(&mut self) -> Result<bulk::Batch> {
        bulk::next_batch(&mut self.page)
    }

    /// Follows the job Salesforce describes: the one just created, or the
    /// one waited for.
    pub fn apply_job(
        &mut self,
        job: QueryJob,
        sync: &mut SyncRow,
        notes: &mut Vec<String>,
        server_now: impl Fn() -> DateTime<Utc>,
    ) -> Result<()> {
        if self.step == Step::Create {
            if sync.backfill_rows == 0 && !sync.backfill_overlaps {
                // The job's snapshot starts the copy: changes after it come
                // from the cursor, the newest SystemModstamp it holds.
                sync.cursor = None;
                sync.deleted_cursor = Some(server_now());
            }
            notes.push(format!("Bulk query job {} started", job.id));
            sync.bulk_job = Some(job.id);
            sync.bulk_locator = None;
            sync.bulk_page_rows = 0;
            self.jobs_started += 1;
            self.next_poll = Some((Instant::now() + bulk::FIRST_POLL, bulk::FIRST_POLL));
            self.step = Step::Wait;
            return Ok(());
        }
        match job.state {
            JobState::JobComplete => {
                notes.push(format!(
                    "Bulk query job {} complete: {} records",
                    job.id,
                    job.number_records_processed.unwrap_or(0)
                ));
                self.next_poll = None;
                self.step = Step::Read;
            }
            JobState::Failed | JobState::Aborted => self.replace_job(
                format!(
                    "Bulk query job {} {}: {}",
                    job.id,
                    if job.state == JobState::Failed {
                        "failed"
                    } else {
                        "was aborted"
                    },
                    job.error_message.unwrap_or_default()
                ),
                sync,
                notes,
            )?,
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
    pub fn job_is_gone(&self, e: &Error) -> bool {
        matches!(self.step, Step::Wait | Step::Read)
            && matches!(e, Error::Salesforce(SalesforceError::Api { status, code, .. })
                if (400..500).contains(status) && code != "REQUEST_LIMIT_EXCEEDED" && code != "INVALID_SESSION_ID")
    }

    /// Starts the backfill's records over with a new job. Rows already
    /// copied stay and are upserted again, never duplicated.
    pub fn replace_job(
        &mut self,
        why: String,
        sync: &mut SyncRow,
        notes: &mut Vec<String>,
    ) -> Result<()> {
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
        notes.push(format!("{why}: a new job reads the records again"));
        sync.backfill_overlaps |= sync.backfill_rows > 0;
        sync.bulk_job = None;
        sync.bulk_locator = None;
        sync.bulk_page_rows = 0;
        self.step = Step::Create;
        Ok(())
    }

    /// Stores a batch of the job's results, and moves the checkpoint past
    /// it. True when it was the last: the backfill is done.
    pub fn apply_batch(
        &self,
        mut batch: bulk::Batch,
        sync: &mut SyncRow,
        tally: &mut Tally,
    ) -> Result<bool> {
        backfill::store_rows(&mut batch.rows, sync, tally)?;
        sync.bulk_page_rows += batch.rows.len() as i64;
        if let Some(newest) = batch.newest {
            sync.cursor = Some(sync.cursor.map_or(newest, |c| c.max(newest)));
        }
        if batch.page_done {
            match batch.next_locator {
                Some(next) => {
                    sync.bulk_locator = Some(next);
                    sync.bulk_page_rows = 0;
                }
                None => return Ok(true),
            }
        }
        Ok(false)
    }
}
