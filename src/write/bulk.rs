//! A statement's (or a COMMIT's) writes through one Bulk API 2.0 ingest
//! job: opened when the writes reach the threshold, fed part by part as
//! rows come, closed and read at the end. The job is not atomic: what it
//! applied is journaled before any rejection is raised, so the abort the
//! rejection causes takes it back (see `transaction`).

use super::upload_behind::UploadBehind;
use super::{sent_file, transaction};
use crate::connection;
use crate::error::{Error, Result};
use pgrx::pg_sys::Oid;
use salesforce_core::write::bulk::{self, header_for, operation_of, Outcome, Upload};
use salesforce_core::write::journal::{Done, Queued, Target};
use salesforce_core::write::sent_log::{self, Entry};

pub struct BulkWrite {
    target: Target,
    job: String,
    key: Option<String>,
    upload: Upload,
    /// Full parts go out on a thread of their own while the next fills.
    parts: UploadBehind,
}

fn on_session<T>(
    t: &Target,
    f: impl FnOnce(
        &mut salesforce_core::client::session::Session,
    ) -> std::result::Result<T, salesforce_core::SalesforceError>,
) -> Result<T> {
    connection::with_session(Oid::from(t.server), Oid::from(t.user), |s| Ok(f(s)))?
        .map_err(Error::Salesforce)
}

impl BulkWrite {
    /// Opens a job for writes like `first`, setting `fields`.
    pub fn open(first: &Queued, fields: &[String]) -> Result<BulkWrite> {
        // The transaction's callbacks, before anything can need them.
        transaction::ensure_callbacks();
        let (operation, key) = operation_of(&first.op);
        let key = key.map(str::to_string);
        let target = first.target.clone();
        let (job, fork) = on_session(&target, |s| {
            s.create_ingest_job(&target.object, operation, key.as_deref())
                .map(|job| (job, s.fork()))
        })?;
        Ok(BulkWrite {
            parts: UploadBehind::start(fork, job.id.clone()),
            upload: Upload::new(
                operation,
                header_for(operation, fields),
                first.statement.clone(),
            ),
            target,
            job: job.id,
            key,
        })
    }

    /// Adds a write, uploading a part when one is full.
    pub fn push(&mut self, q: &Queued) -> Result<()> {
        match self.upload.push(q) {
            Some(part) => self.parts.send(part),
            None => Ok(()),
        }
    }

    /// Adds a row given as its CSV cells, in the order of the fields the
    /// job was opened with (no `Queued` made: the path of large INSERTs).
    pub fn push_cells<S: AsRef<str>>(&mut self, row: usize, cells: &[S]) -> Result<()> {
        match self.upload.push_cells(row, cells) {
            Some(part) => self.parts.send(part),
            None => Ok(()),
        }
    }

    /// The text that clears a field in this job's CSV.
    pub fn null_cell(&self) -> &'static str {
        self.upload.operation.null_cell()
    }

    /// Closes the job and waits for it; journals what it applied, then
    /// fails on the first rejected row. Returns the rows applied.
    pub fn finish(self) -> Result<usize> {
        let BulkWrite {
            target,
            job,
            key,
            mut upload,
            parts,
        } = self;
        parts.finish()?;
        let statement = upload.statement.clone();
        let rows = upload.rows();
        // From the close on, Salesforce applies records: a crash, a cancel
        // or an error leaves the job in the log, for the worker to list.
        sent_file::append(
            &Entry::BulkSending {
                target: target.clone(),
                job: job.clone(),
            },
            true,
        )?;
        transaction::unanswered(target.clone(), vec![sent_log::bulk_job_marker(&job)]);
        match on_session(&target, |s| bulk::close(s, &job, &mut upload)) {
            Ok(()) => {}
            Err(Error::Salesforce(e)) if !e.may_have_applied() => {
                // Still open: it applies nothing.
                transaction::answered();
                let _ = sent_file::append(&Entry::NotApplied, false);
                return Err(Error::Salesforce(e));
            }
            Err(e) => return Err(e),
        }
        let outcome: Outcome =
            on_session(&target, |s| bulk::collect(s, &job, upload, key.as_deref()))?;
        transaction::answered();
        let applied = outcome.applied.records();
        let done = Done::Bulk {
            target,
            applied: outcome.applied,
        };
        // Not cloned: a million Ids are 19 MB.
        let entry = Entry::Applied(vec![done]);
        let _ = sent_file::append(&entry, false);
        if let Entry::Applied(done) = entry {
            done.into_iter().for_each(transaction::record_applied);
        }
        if let Some(r) = outcome.rejection {
            return Err(Error::from(r));
        }
        if outcome.failed > 0 || outcome.unprocessed > 0 || applied < rows {
            let why = outcome
                .job_error
                .unwrap_or_else(|| "no reason given".to_string());
            return Err(Error::mapping(
                format!(
                    "Salesforce's Bulk job {job} for the {statement} applied {applied} of {rows} rows ({} failed, {} not processed): {why}",
                    outcome.failed, outcome.unprocessed
                ),
                "The transaction rolls back; what the job applied is undone.",
            ));
        }
        Ok(applied)
    }
}
