//! Bulk API 2.0 query jobs: create one, watch it, read its results page by
//! page as a CSV stream (never held whole), and delete it.

use super::error::SalesforceError;
use super::http::{BodyReader, Read, Repeat};
use super::session::Session;
pub use csv::StringRecord;
use serde::Deserialize;

/// The most records asked for in one results page: each page costs a
/// request, and the stream keeps memory flat whatever its size.
pub const RESULTS_PAGE_RECORDS: u64 = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum JobState {
    Open,
    UploadComplete,
    InProgress,
    JobComplete,
    Failed,
    Aborted,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryJob {
    pub id: String,
    pub state: JobState,
    #[serde(default)]
    pub number_records_processed: Option<u64>,
    #[serde(default)]
    pub error_message: Option<String>,
}

/// One page of a job's results, read record by record.
pub struct ResultsPage {
    /// The locator of the next page; None on the last.
    pub next_locator: Option<String>,
    /// Records in this page, from `Sforce-NumberOfRecords`.
    pub records: Option<u64>,
    /// Column names, in SELECT order.
    pub header: Vec<String>,
    reader: csv::Reader<BodyReader>,
    record: csv::StringRecord,
}

fn bad_csv(e: csv::Error) -> SalesforceError {
    match e.kind() {
        csv::ErrorKind::Io(io) => {
            SalesforceError::Network(format!("the results were cut off: {io}"))
        }
        _ => SalesforceError::BadResponse(format!("job results: {e}")),
    }
}

impl ResultsPage {
    /// The next record's fields, in header order; None at the end of the page.
    pub fn next_record(&mut self) -> Result<Option<&csv::StringRecord>, SalesforceError> {
        if !self.reader.read_record(&mut self.record).map_err(bad_csv)? {
            return Ok(None);
        }
        if self.record.len() != self.header.len() {
            return Err(SalesforceError::BadResponse(format!(
                "a results row has {} fields for {} columns",
                self.record.len(),
                self.header.len()
            )));
        }
        Ok(Some(&self.record))
    }
}

fn header_value(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

impl Session {
    fn job_path(&self, rest: &str) -> String {
        self.data_path(&format!("jobs/query{rest}"))
    }

    /// Starts a query job (`queryAll` with deleted records).
    pub fn create_query_job(
        &mut self,
        soql: &str,
        include_deleted: bool,
    ) -> Result<QueryJob, SalesforceError> {
        let body = serde_json::json!({
            "operation": if include_deleted { "queryAll" } else { "query" },
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        });
        let path = self.job_path("");
        // A repeated create would start a second job, so only if surely unsent.
        self.json(
            reqwest::Method::POST,
            &path,
            Some(&body),
            None,
            Repeat::OnlyIfUnsent,
        )
    }

    pub fn query_job(&mut self, id: &str) -> Result<QueryJob, SalesforceError> {
        let path = self.job_path(&format!("/{id}"));
        self.json(reqwest::Method::GET, &path, None, None, Repeat::Safe)
    }

    /// Deletes a finished job and its results.
    pub fn delete_query_job(&mut self, id: &str) -> Result<(), SalesforceError> {
        let path = self.job_path(&format!("/{id}"));
        self.delete_path(&path)
    }

    /// DELETE of a resource (a query or ingest job).
    pub(super) fn delete_path(&mut self, path: &str) -> Result<(), SalesforceError> {
        self.request(
            reqwest::Method::DELETE,
            path,
            None,
            None,
            Repeat::Safe,
            Read::Whole,
        )
        .map(drop)
    }

    /// The results page at `locator` (None for the first), as a stream.
    pub fn query_job_results(
        &mut self,
        id: &str,
        locator: Option<&str>,
    ) -> Result<ResultsPage, SalesforceError> {
        let mut rest = format!("/{id}/results?maxRecords={RESULTS_PAGE_RECORDS}");
        if let Some(l) = locator {
            let encoded: String = url::form_urlencoded::byte_serialize(l.as_bytes()).collect();
            rest.push_str(&format!("&locator={encoded}"));
        }
        let path = self.job_path(&rest);
        self.results_page(&path)
    }

    /// A CSV results resource (a query job's page, an ingest job's
    /// results), read as a stream.
    pub(super) fn results_page(&mut self, path: &str) -> Result<ResultsPage, SalesforceError> {
        let answer = self.request(
            reqwest::Method::GET,
            path,
            None,
            None,
            Repeat::Safe,
            Read::Streamed,
        )?;
        let next_locator = header_value(&answer.headers, "Sforce-Locator")
            .filter(|l| !l.is_empty() && l != "null");
        let records =
            header_value(&answer.headers, "Sforce-NumberOfRecords").and_then(|n| n.parse().ok());
        let response = answer
            .stream
            .ok_or_else(|| SalesforceError::BadResponse("job results without a body".into()))?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(BodyReader::new(response, self.interrupted()));
        let header = reader
            .headers()
            .map_err(bad_csv)?
            .iter()
            .map(str::to_string)
            .collect();
        Ok(ResultsPage {
            next_locator,
            records,
            header,
            reader,
            record: csv::StringRecord::new(),
        })
    }
}
