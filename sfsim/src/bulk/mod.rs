//! Bulk API 2.0 query jobs on sfsim's clock. A job waits in the queue
//! (UploadComplete) for the first half of its processing time and processes
//! (InProgress) for the second half. Its results are taken when processing
//! starts, a snapshot of the records then, and kept until the job is deleted
//! or, once final, is seven days old.

pub mod ingest;
pub mod refusals;
pub mod results;

use crate::faults::Faults;
use crate::ids;
use crate::org::Org;
use crate::soql::exec;
use crate::usage::Usage;
use chrono::{DateTime, Duration, Utc};
use parking_lot::Mutex;
use refusals::Work;
use results::{render, CsvFormat, Results};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const KEY_PREFIX: &str = "750";
pub const DEFAULT_PROCESSING_MS: i64 = 500;
/// Query jobs that may be created over a rolling 24 hours (`DailyBulkV2QueryJobs`).
pub const DEFAULT_DAILY_JOB_LIMIT: u64 = 10_000;
/// A results page holds the records that fit in this many bytes of CSV.
pub const DEFAULT_RESULTS_PAGE_BYTES: usize = 100 << 20;
/// Jobs in a final state are deleted when they are this old.
pub const RETENTION_DAYS: i64 = 7;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    UploadComplete,
    InProgress,
    JobComplete,
    Failed,
    Aborted,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::UploadComplete => "UploadComplete",
            State::InProgress => "InProgress",
            State::JobComplete => "JobComplete",
            State::Failed => "Failed",
            State::Aborted => "Aborted",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, State::JobComplete | State::Failed | State::Aborted)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Query,
    QueryAll,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Query => "query",
            Operation::QueryAll => "queryAll",
        }
    }
}

/// What a create call asks for, once checked.
pub struct NewJob {
    pub operation: Operation,
    pub object: String,
    pub soql: String,
    pub created_by: String,
    pub api_version: String,
    pub format: CsvFormat,
    pub work: Work,
}

pub struct Job {
    pub id: String,
    seq: u64,
    pub operation: Operation,
    pub object: String,
    pub soql: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub api_version: String,
    pub format: CsvFormat,
    work: Work,
    starts_at: DateTime<Utc>,
    completes_at: DateTime<Utc>,
    started: bool,
    aborted_at: Option<DateTime<Utc>>,
    results: Option<Arc<Results>>,
}

impl Job {
    /// Only a started job is past UploadComplete: starting takes its results.
    pub fn state(&self, now: DateTime<Utc>) -> State {
        if self.aborted_at.is_some() {
            State::Aborted
        } else if !self.started {
            State::UploadComplete
        } else if now < self.completes_at {
            State::InProgress
        } else if matches!(self.work, Work::Fail(_)) {
            State::Failed
        } else {
            State::JobComplete
        }
    }

    pub fn error_message(&self, now: DateTime<Utc>) -> Option<&str> {
        match &self.work {
            Work::Fail(message) if self.state(now) == State::Failed => Some(message),
            _ => None,
        }
    }

    /// When the job last changed state.
    pub fn system_modstamp(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        if let Some(aborted) = self.aborted_at {
            return aborted;
        }
        match self.state(now) {
            State::UploadComplete => self.created_at,
            State::InProgress => self.starts_at,
            _ => self.completes_at,
        }
    }

    /// The results, once the job is complete.
    pub fn results(&self, now: DateTime<Utc>) -> Option<&Arc<Results>> {
        self.results
            .as_ref()
            .filter(|_| self.state(now) == State::JobComplete)
    }

    pub fn records_processed(&self, now: DateTime<Utc>) -> usize {
        self.results(now).map_or(0, |r| r.len())
    }

    /// Milliseconds spent processing, once done.
    pub fn processing_ms(&self, now: DateTime<Utc>) -> i64 {
        match self.state(now) {
            State::JobComplete | State::Failed => {
                (self.completes_at - self.starts_at).num_milliseconds()
            }
            _ => 0,
        }
    }

    /// Sequence number for paging through job lists.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// A create call refused because the day's jobs are used up.
pub struct DailyLimitReached {
    pub limit: u64,
}

pub struct Jobs {
    jobs: BTreeMap<u64, Job>,
    next_seq: u64,
    pub processing: Duration,
    pub results_page_bytes: usize,
    /// Job creations over the rolling 24 hours, counted as API requests are.
    pub created: Usage,
    /// Ingest jobs, numbered in the same sequence.
    pub ingest: ingest::Jobs,
}

impl Default for Jobs {
    fn default() -> Self {
        Jobs {
            jobs: BTreeMap::new(),
            next_seq: 0,
            processing: Duration::milliseconds(DEFAULT_PROCESSING_MS),
            results_page_bytes: DEFAULT_RESULTS_PAGE_BYTES,
            created: Usage::new(DEFAULT_DAILY_JOB_LIMIT),
            ingest: ingest::Jobs::default(),
        }
    }
}

impl Jobs {
    /// No jobs and a fresh daily count, keeping the settings; ids of the
    /// forgotten jobs are not given out again.
    pub fn cleared(&self) -> Jobs {
        Jobs {
            next_seq: self.next_seq,
            processing: self.processing,
            results_page_bytes: self.results_page_bytes,
            created: Usage::new(self.created.daily_limit),
            ingest: self.ingest.cleared(),
            ..Jobs::default()
        }
    }

    pub fn create(&mut self, new: NewJob, now: DateTime<Utc>) -> Result<&Job, DailyLimitReached> {
        if !self.created.take(now) {
            return Err(DailyLimitReached {
                limit: self.created.daily_limit,
            });
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        let job = Job {
            id: ids::generate(KEY_PREFIX, seq),
            seq,
            operation: new.operation,
            object: new.object,
            soql: new.soql,
            created_by: new.created_by,
            created_at: now,
            api_version: new.api_version,
            format: new.format,
            work: new.work,
            starts_at: now + self.processing / 2,
            completes_at: now + self.processing,
            started: false,
            aborted_at: None,
            results: None,
        };
        Ok(self.jobs.entry(seq).or_insert(job))
    }

    /// The next job number, for a job of either kind.
    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn seq_of(id: &str) -> Option<u64> {
        ids::sequence(id, KEY_PREFIX)
    }

    pub fn get(&self, id: &str) -> Option<&Job> {
        self.jobs.get(&Self::seq_of(id)?)
    }

    /// Jobs created after the job numbered `after`, oldest first.
    pub fn after(&self, after: u64) -> impl Iterator<Item = &Job> {
        self.jobs.range(after + 1..).map(|(_, job)| job)
    }

    /// Aborts a job that is not yet final; otherwise answers its state.
    pub fn abort(&mut self, id: &str, now: DateTime<Utc>) -> Option<Result<&Job, State>> {
        let job = self.jobs.get_mut(&Self::seq_of(id)?)?;
        let state = job.state(now);
        if state.is_final() {
            return Some(Err(state));
        }
        job.aborted_at = Some(now);
        job.results = None;
        Some(Ok(job))
    }

    /// Deletes a job in a final state; otherwise answers its state.
    pub fn delete(&mut self, id: &str, now: DateTime<Utc>) -> Option<Result<(), State>> {
        let seq = Self::seq_of(id)?;
        let state = self.jobs.get(&seq)?.state(now);
        if !state.is_final() {
            return Some(Err(state));
        }
        self.jobs.remove(&seq);
        Some(Ok(()))
    }

    fn is_due(job: &Job, now: DateTime<Utc>) -> bool {
        !job.started && job.aborted_at.is_none() && job.starts_at <= now
    }

    pub fn any_due(&self, now: DateTime<Utc>) -> bool {
        self.jobs.values().any(|job| Self::is_due(job, now))
    }

    /// Deletes final jobs past retention.
    pub fn forget_expired(&mut self, now: DateTime<Utc>) {
        self.jobs.retain(|_, job| {
            !(job.state(now).is_final() && now - job.created_at >= Duration::days(RETENTION_DAYS))
        });
    }

    /// Starts the jobs whose time has come, taking their results from `org`
    /// as it is now.
    pub fn run_due(&mut self, org: &Org, faults: &Mutex<Faults>, now: DateTime<Utc>) {
        for job in self.jobs.values_mut().filter(|job| Self::is_due(job, now)) {
            job.started = true;
            let Work::Query(plan) = &job.work else {
                continue;
            };
            let rows = exec::run(org, plan, job.operation == Operation::QueryAll);
            let planted = faults.lock().plant(&plan.def.name, |field| {
                let index = plan.def.field_index(field)?;
                let column = plan
                    .columns
                    .iter()
                    .position(|c| c.path.hops.is_empty() && c.path.field == index);
                column.filter(|_| !rows.is_empty())
            });
            job.results = Some(Arc::new(render(
                org,
                &plan.def,
                &plan.columns,
                &rows,
                job.format,
                planted.as_ref().map(|(column, raw)| (*column, raw)),
            )));
        }
    }
}
