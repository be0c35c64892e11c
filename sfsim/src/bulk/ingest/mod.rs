//! Bulk API 2.0 ingest jobs on sfsim's clock. A job is Open while its CSV
//! is uploaded; closed (UploadComplete) it waits for the first half of its
//! processing time, is processed all at once when that ends (every record
//! written then, batch after batch), and reports InProgress for the second
//! half, its batches counted done as that time passes; then JobComplete,
//! or Failed. Results are kept until the job is deleted or, once final, is
//! seven days old.

pub mod ahead;
pub mod csv_in;
pub mod process;
pub mod results;
pub mod run;
pub mod worker;

use crate::bulk::results::CsvFormat;
use crate::usage::Usage;
use chrono::{DateTime, Duration, Utc};
use csv_in::Upload;
use results::Outcomes;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Records per internal batch, as Salesforce splits a job.
pub const BATCH_RECORDS: usize = 10_000;
/// Records ingested over a rolling 24 hours.
pub const DEFAULT_DAILY_RECORD_LIMIT: u64 = 150_000_000;
/// Internal batches over a rolling 24 hours (`DailyBulkApiBatches`).
pub const DEFAULT_DAILY_BATCH_LIMIT: u64 = 15_000;
/// An upload may be this large once base64 encoded, as Salesforce counts it.
pub const MAX_UPLOAD_BASE64_BYTES: usize = 150 * 1024 * 1024;
/// The CSV of a multipart create holds at most this many characters.
pub const MAX_MULTIPART_CHARS: usize = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Insert,
    Update,
    Upsert,
    Delete,
    HardDelete,
}

impl Operation {
    pub fn parse(name: &str) -> Option<Operation> {
        Some(match name {
            "insert" => Operation::Insert,
            "update" => Operation::Update,
            "upsert" => Operation::Upsert,
            "delete" => Operation::Delete,
            "hardDelete" => Operation::HardDelete,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Upsert => "upsert",
            Operation::Delete => "delete",
            Operation::HardDelete => "hardDelete",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Open,
    UploadComplete,
    InProgress,
    JobComplete,
    Failed,
    Aborted,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Open => "Open",
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

pub struct Job {
    pub id: String,
    pub seq: u64,
    pub operation: Operation,
    pub object: String,
    pub external_id: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub api_version: String,
    pub format: CsvFormat,
    pub uploads: Vec<Upload>,
    closed_at: Option<DateTime<Utc>>,
    starts_at: DateTime<Utc>,
    completes_at: DateTime<Utc>,
    aborted_at: Option<DateTime<Utc>>,
    /// What processing did, once it has run.
    pub outcomes: Option<Arc<Outcomes>>,
}

impl Job {
    pub fn state(&self, now: DateTime<Utc>) -> State {
        if self.aborted_at.is_some() {
            State::Aborted
        } else if self.closed_at.is_none() {
            State::Open
        } else if self.outcomes.is_none() {
            State::UploadComplete
        } else if now < self.completes_at {
            State::InProgress
        } else if self.error_message().is_some() {
            State::Failed
        } else {
            State::JobComplete
        }
    }

    fn error_message(&self) -> Option<&str> {
        self.outcomes.as_ref()?.error.as_deref()
    }

    /// The job's error, once it has Failed.
    pub fn failure(&self, now: DateTime<Utc>) -> Option<&str> {
        (self.state(now) == State::Failed)
            .then(|| self.error_message())
            .flatten()
    }

    pub fn system_modstamp(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        if let Some(aborted) = self.aborted_at {
            return aborted;
        }
        match self.state(now) {
            State::Open => self.created_at,
            State::UploadComplete => self.closed_at.unwrap_or(self.created_at),
            State::InProgress => self.starts_at,
            _ => self.completes_at,
        }
    }

    /// The share of the processing time gone by, 0 to 1.
    fn progress(&self, now: DateTime<Utc>) -> f64 {
        if self.outcomes.is_none() {
            return 0.0;
        }
        let total = (self.completes_at - self.starts_at).num_milliseconds();
        let done = (now - self.starts_at).num_milliseconds();
        if total <= 0 || done >= total {
            1.0
        } else {
            done.max(0) as f64 / total as f64
        }
    }

    /// Records processed and failed so far: batches count as done one after
    /// the other while the job is InProgress; an aborted job keeps what was
    /// done when it was aborted.
    pub fn counts(&self, now: DateTime<Utc>) -> (usize, usize) {
        let Some(outcomes) = &self.outcomes else {
            return (0, 0);
        };
        let at = self.aborted_at.map_or(now, |a| a.min(now));
        outcomes.counts_after(self.progress(at))
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

    pub fn records_uploaded(&self) -> usize {
        self.uploads.iter().map(|u| u.rows).sum()
    }
}

/// The ingest jobs of an org, numbered in the sequence query jobs share.
pub struct Jobs {
    jobs: BTreeMap<u64, Job>,
    /// Records ingested over the rolling 24 hours.
    pub records: Usage,
    /// Internal batches over the rolling 24 hours (`DailyBulkApiBatches`).
    pub batches: Usage,
}

impl Default for Jobs {
    fn default() -> Self {
        Jobs {
            jobs: BTreeMap::new(),
            records: Usage::new(DEFAULT_DAILY_RECORD_LIMIT),
            batches: Usage::new(DEFAULT_DAILY_BATCH_LIMIT),
        }
    }
}

/// What a create call asks for, once checked.
pub struct NewJob {
    pub operation: Operation,
    pub object: String,
    pub external_id: Option<String>,
    pub created_by: String,
    pub api_version: String,
    pub format: CsvFormat,
}

impl Jobs {
    /// No jobs and fresh daily counts, keeping the limits.
    pub fn cleared(&self) -> Jobs {
        Jobs {
            jobs: BTreeMap::new(),
            records: Usage::new(self.records.daily_limit),
            batches: Usage::new(self.batches.daily_limit),
        }
    }

    pub fn create(&mut self, new: NewJob, seq: u64, now: DateTime<Utc>) -> &mut Job {
        let job = Job {
            id: crate::ids::generate(crate::bulk::KEY_PREFIX, seq),
            seq,
            operation: new.operation,
            object: new.object,
            external_id: new.external_id,
            created_by: new.created_by,
            created_at: now,
            api_version: new.api_version,
            format: new.format,
            uploads: vec![],
            closed_at: None,
            starts_at: now,
            completes_at: now,
            aborted_at: None,
            outcomes: None,
        };
        self.jobs.entry(seq).or_insert(job)
    }

    pub fn get(&self, id: &str) -> Option<&Job> {
        self.jobs
            .get(&crate::ids::sequence(id, crate::bulk::KEY_PREFIX)?)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Job> {
        self.jobs
            .get_mut(&crate::ids::sequence(id, crate::bulk::KEY_PREFIX)?)
    }

    pub fn all(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values()
    }

    /// Closes an Open job: it is processed once half of `processing` has passed.
    pub fn close(job: &mut Job, processing: Duration, now: DateTime<Utc>) {
        job.closed_at = Some(now);
        job.starts_at = now + processing / 2;
        job.completes_at = now + processing;
    }

    pub fn abort(job: &mut Job, now: DateTime<Utc>) {
        job.aborted_at = Some(now);
    }

    pub fn remove(&mut self, seq: u64) {
        self.jobs.remove(&seq);
    }

    pub fn forget_expired(&mut self, now: DateTime<Utc>) {
        self.jobs.retain(|_, job| {
            !(job.state(now).is_final()
                && now - job.created_at >= Duration::days(crate::bulk::RETENTION_DAYS))
        });
    }

    fn is_due(job: &Job, now: DateTime<Utc>) -> bool {
        job.closed_at.is_some()
            && job.aborted_at.is_none()
            && job.outcomes.is_none()
            && job.starts_at <= now
    }

    /// Whether any job is due to be processed by now.
    pub fn any_due(&self, now: DateTime<Utc>) -> bool {
        self.jobs.values().any(|job| Self::is_due(job, now))
    }

    /// The jobs due to be processed by now, oldest first.
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<&mut Job> {
        self.jobs
            .values_mut()
            .filter(|job| Self::is_due(job, now))
            .collect()
    }
}
