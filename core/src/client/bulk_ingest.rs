//! Bulk API 2.0 ingest jobs: create one, upload its CSV in parts, close it,
//! watch it, and read its successful, failed and unprocessed records as
//! CSV streams (never held whole).

use super::bulk::{JobState, ResultsPage};
use super::error::SalesforceError;
use super::http::{Read, Repeat};
use super::session::{Payload, Session};
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Salesforce takes up to 150 MB per upload after base64 encoding, about
/// 100 MB of CSV; parts stay far below, so that memory stays flat.
pub const UPLOAD_PART_BYTES: usize = 16 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngestOperation {
    Insert,
    Update,
    Upsert,
    Delete,
    HardDelete,
}

impl IngestOperation {
    pub fn name(self) -> &'static str {
        match self {
            IngestOperation::Insert => "insert",
            IngestOperation::Update => "update",
            IngestOperation::Upsert => "upsert",
            IngestOperation::Delete => "delete",
            IngestOperation::HardDelete => "hardDelete",
        }
    }

    /// The cell that clears a field: empty for an insert, `#N/A` where an
    /// empty cell would leave the field as it is.
    pub fn null_cell(self) -> &'static str {
        match self {
            IngestOperation::Insert => "",
            _ => "#N/A",
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestJob {
    pub id: String,
    pub state: JobState,
    #[serde(default)]
    pub number_records_processed: Option<u64>,
    #[serde(default)]
    pub number_records_failed: Option<u64>,
    #[serde(default)]
    pub error_message: Option<String>,
}

/// Which of a finished job's record sets to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngestResults {
    /// `sf__Id`, `sf__Created`, then the uploaded columns.
    Successful,
    /// `sf__Id`, `sf__Error`, then the uploaded columns.
    Failed,
    /// The uploaded columns.
    Unprocessed,
}

impl IngestResults {
    fn resource(self) -> &'static str {
        match self {
            IngestResults::Successful => "successfulResults",
            IngestResults::Failed => "failedResults",
            IngestResults::Unprocessed => "unprocessedrecords",
        }
    }
}

impl Session {
    fn ingest_path(&self, rest: &str) -> String {
        self.data_path(&format!("jobs/ingest{rest}"))
    }

    /// Opens a job; `external_id` names the key of an upsert.
    pub fn create_ingest_job(
        &mut self,
        object: &str,
        operation: IngestOperation,
        external_id: Option<&str>,
    ) -> Result<IngestJob, SalesforceError> {
        let mut body = serde_json::json!({
            "object": object,
            "operation": operation.name(),
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        });
        if let Some(key) = external_id {
            body["externalIdFieldName"] = key.into();
        }
        let path = self.ingest_path("");
        // An open job does nothing until closed, so a second one left by
        // a retry would be harmless; still, only if surely unsent.
        self.json(
            reqwest::Method::POST,
            &path,
            Some(&body),
            None,
            Repeat::OnlyIfUnsent,
        )
    }

    /// Adds a part of the job's CSV, header row first. Sent again only if
    /// surely unsent: a part taken twice would write its records twice.
    pub fn upload_ingest_part(
        &mut self,
        id: &str,
        csv: bytes::Bytes,
    ) -> Result<(), SalesforceError> {
        let path = self.ingest_path(&format!("/{id}/batches"));
        self.request_with(
            reqwest::Method::PUT,
            &path,
            Some(Payload::Csv(csv)),
            None,
            Repeat::OnlyIfUnsent,
            Read::Whole,
        )
        .map(drop)
    }

    fn set_ingest_state(
        &mut self,
        id: &str,
        state: &str,
        repeat: Repeat,
    ) -> Result<IngestJob, SalesforceError> {
        let path = self.ingest_path(&format!("/{id}"));
        let body = serde_json::json!({ "state": state });
        self.json(reqwest::Method::PATCH, &path, Some(&body), None, repeat)
    }

    /// Ends the upload: Salesforce starts processing. Sent again only if
    /// surely unsent, so that an error answer means the job stayed open.
    pub fn close_ingest_job(&mut self, id: &str) -> Result<IngestJob, SalesforceError> {
        self.set_ingest_state(id, "UploadComplete", Repeat::OnlyIfUnsent)
    }

    pub fn abort_ingest_job(&mut self, id: &str) -> Result<IngestJob, SalesforceError> {
        self.set_ingest_state(id, "Aborted", Repeat::Safe)
    }

    pub fn ingest_job(&mut self, id: &str) -> Result<IngestJob, SalesforceError> {
        let path = self.ingest_path(&format!("/{id}"));
        self.json(reqwest::Method::GET, &path, None, None, Repeat::Safe)
    }

    /// Polls a closed job until it is final, backing off from 50 ms to 2 s
    /// between polls; gives up after `patience`.
    pub fn wait_for_ingest_job(
        &mut self,
        id: &str,
        patience: Duration,
    ) -> Result<IngestJob, SalesforceError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let job = self.ingest_job(id)?;
            if matches!(
                job.state,
                JobState::JobComplete | JobState::Failed | JobState::Aborted
            ) {
                return Ok(job);
            }
            if started.elapsed() > patience {
                return Err(SalesforceError::TimedOut(format!(
                    "Bulk ingest job {id} was still {:?} after {} s",
                    job.state,
                    patience.as_secs()
                )));
            }
            self.pause(pause)?;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Sleeps, giving way when the caller is interrupted.
    fn pause(&self, d: Duration) -> Result<(), SalesforceError> {
        super::http::wait(async { tokio::time::sleep(d).await }, self.interrupted())
    }

    pub fn delete_ingest_job(&mut self, id: &str) -> Result<(), SalesforceError> {
        let path = self.ingest_path(&format!("/{id}"));
        self.delete_path(&path)
    }

    /// One of a finished job's record sets, as a stream.
    pub fn ingest_results(
        &mut self,
        id: &str,
        which: IngestResults,
    ) -> Result<ResultsPage, SalesforceError> {
        let path = self.ingest_path(&format!("/{id}/{}", which.resource()));
        self.results_page(&path)
    }
}
