//! Large writes through a Bulk API 2.0 ingest job: rows become CSV parts
//! as they come (never the whole upload in memory), and the job's results
//! become what Salesforce applied plus the first rejected row, found by
//! content since result rows come back in any order.

use super::chunk::Rejection;
use super::journal::{Op, Queued};
use crate::client::bulk::{JobState, ResultsPage};
use crate::client::bulk_ingest::{IngestOperation, IngestResults, UPLOAD_PART_BYTES};
use crate::client::session::{RecordError, Session};
use crate::client::SalesforceError;
use crate::values::csv_cell;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

/// Rows from which a statement's writes go through Bulk, unless a server
/// or table sets `bulk_threshold`. Salesforce suggests Bulk from about 2,000.
pub const DEFAULT_THRESHOLD: usize = 2_000;

/// The threshold for a table's writes: its own option, else its server's;
/// None when Bulk is off.
pub fn threshold(table: Option<u64>, server: u64) -> Option<usize> {
    match table.unwrap_or(server) {
        0 => None,
        n => Some(n as usize),
    }
}

/// How long a closed job may take before the statement gives up on it.
pub const PATIENCE: Duration = Duration::from_secs(3600);

/// Record Ids, packed in one string: a million of them take 19 MB, not
/// the 100 MB a `Vec<String>` would.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ids(String);

impl Ids {
    pub fn push(&mut self, id: &str) {
        if !self.0.is_empty() {
            self.0.push(',');
        }
        self.0.push_str(id);
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(',').filter(|s| !s.is_empty())
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn reserve(&mut self, bytes: usize) {
        self.0.reserve(bytes);
    }
}

/// What one ingest job applied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BulkApplied {
    pub job: String,
    pub created: Ids,
    /// Updated by an update, or by an upsert that found its key.
    pub updated: Ids,
    pub deleted: Ids,
}

impl BulkApplied {
    /// How many records the job applied.
    pub fn records(&self) -> usize {
        self.created.len() + self.updated.len() + self.deleted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.updated.is_empty() && self.deleted.is_empty()
    }
}

/// The Bulk operation for a write, and the upsert key it needs.
pub fn operation_of(op: &Op) -> (IngestOperation, Option<&str>) {
    match op {
        // Events are never written: queued, they are published.
        Op::Create { .. } | Op::Publish { .. } => (IngestOperation::Insert, None),
        Op::Upsert { key_field, .. } => (IngestOperation::Upsert, Some(key_field)),
        Op::Update { .. } => (IngestOperation::Update, None),
        Op::Delete { .. } => (IngestOperation::Delete, None),
    }
}

/// The CSV columns for writes setting `fields`: the record Id first for
/// updates and deletes.
pub fn header_for(operation: IngestOperation, fields: &[String]) -> Vec<String> {
    match operation {
        IngestOperation::Delete | IngestOperation::HardDelete => vec!["Id".into()],
        IngestOperation::Update => std::iter::once("Id".to_string())
            .chain(
                fields
                    .iter()
                    .filter(|f| !f.eq_ignore_ascii_case("id"))
                    .cloned(),
            )
            .collect(),
        IngestOperation::Insert | IngestOperation::Upsert => fields.to_vec(),
    }
}

fn row_hash<'a>(cells: impl Iterator<Item = &'a str>) -> u64 {
    let mut h = DefaultHasher::new();
    for c in cells {
        c.hash(&mut h);
    }
    h.finish()
}

/// A job's upload as it is written: CSV parts of at most about 16 MB, each
/// with its header row, and a hash of each row's cells to find a result's
/// row again.
pub struct Upload {
    pub operation: IngestOperation,
    pub header: Vec<String>,
    pub statement: String,
    writer: csv::Writer<Vec<u8>>,
    rows_in_part: usize,
    /// Statement row numbers and cell hashes, in upload order.
    rows: Vec<(u32, u64)>,
    cells: Vec<String>,
}

impl Upload {
    pub fn new(operation: IngestOperation, header: Vec<String>, statement: String) -> Upload {
        Upload {
            operation,
            writer: Self::part_writer(&header),
            header,
            statement,
            rows_in_part: 0,
            rows: Vec::new(),
            cells: Vec::new(),
        }
    }

    fn part_writer(header: &[String]) -> csv::Writer<Vec<u8>> {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::with_capacity(1 << 20));
        w.write_record(header).expect("writing to memory");
        w
    }

    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// Adds a write; returns a part once it is full, to be uploaded.
    pub fn push(&mut self, q: &Queued) -> Option<bytes::Bytes> {
        self.push_op(q.row, &q.op)
    }

    /// Adds a write as row `row`; returns a part once it is full.
    pub fn push_op(&mut self, row: usize, op: &Op) -> Option<bytes::Bytes> {
        let null = self.operation.null_cell();
        let mut cells = std::mem::take(&mut self.cells);
        cells.clear();
        for column in &self.header {
            let cell = match (op, op.fields().and_then(|f| f.get(column))) {
                (_, Some(v)) => csv_cell(v, null).into_owned(),
                (op, None) if column == "Id" => op.id().unwrap_or_default().to_string(),
                // Not set by this write: an empty cell leaves the field be.
                (_, None) => String::new(),
            };
            cells.push(cell);
        }
        let part = self.push_cells(row, &cells);
        self.cells = cells;
        part
    }

    /// Adds a row given as its cells, in header order (`row` is its place
    /// in the statement); returns a part once it is full, to be uploaded.
    pub fn push_cells<S: AsRef<str>>(&mut self, row: usize, cells: &[S]) -> Option<bytes::Bytes> {
        self.writer
            .write_record(cells.iter().map(|c| c.as_ref().as_bytes()))
            .expect("writing to memory");
        self.rows
            .push((row as u32, row_hash(cells.iter().map(|c| c.as_ref()))));
        self.rows_in_part += 1;
        (self.writer.get_ref().len() >= UPLOAD_PART_BYTES).then(|| self.take_part())?
    }

    /// The rows pushed so far, found by their cells.
    pub fn rows_by_cells(&self) -> RowsByCells {
        let mut rows: HashMap<u64, VecDeque<u32>> = HashMap::with_capacity(self.rows.len());
        for (row, hash) in &self.rows {
            rows.entry(*hash).or_default().push_back(*row);
        }
        RowsByCells {
            rows,
            columns: self.header.len(),
        }
    }

    /// The part written so far, if it has rows.
    pub fn take_part(&mut self) -> Option<bytes::Bytes> {
        if self.rows_in_part == 0 {
            return None;
        }
        let full = std::mem::replace(&mut self.writer, Self::part_writer(&self.header));
        self.rows_in_part = 0;
        Some(bytes::Bytes::from(full.into_inner().expect("memory")))
    }
}

/// An upload's rows by their cells, to find the row a result row stands
/// for: results echo the uploaded cells but come in any order.
pub struct RowsByCells {
    /// Rows with the same cells, in upload order.
    rows: HashMap<u64, VecDeque<u32>>,
    columns: usize,
}

impl RowsByCells {
    /// Where the uploaded cells of `page`'s rows start: they come last.
    pub fn first_cell(&self, page: &ResultsPage) -> Result<usize, SalesforceError> {
        uploaded_cells_start(page, self.columns)
    }

    /// The row a result row stands for, taken so that another result with
    /// the same cells stands for the next such row; None when no row is
    /// left for it.
    pub fn take(&mut self, result: &csv::StringRecord, first_cell: usize) -> Option<usize> {
        let same = self
            .rows
            .get_mut(&row_hash(result.iter().skip(first_cell)))?;
        same.pop_front().map(|row| row as usize)
    }
}

/// Where the `columns` uploaded cells of a results page's rows start: they
/// follow Salesforce's own columns.
fn uploaded_cells_start(page: &ResultsPage, columns: usize) -> Result<usize, SalesforceError> {
    page.header.len().checked_sub(columns).ok_or_else(|| {
        SalesforceError::BadResponse(format!(
            "ingest results with {} columns for {columns} uploaded",
            page.header.len()
        ))
    })
}

/// How a job ended.
#[derive(Debug)]
pub struct Outcome {
    pub applied: BulkApplied,
    /// The rejected row that came first in the statement.
    pub rejection: Option<Box<Rejection>>,
    pub failed: u64,
    pub unprocessed: u64,
    /// The job failed as a whole (an unknown field, say): Salesforce's reason.
    pub job_error: Option<String>,
}

/// `REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --`
pub fn parse_sf_error(text: &str) -> RecordError {
    let (code, rest) = text.split_once(':').unwrap_or(("UNKNOWN_EXCEPTION", text));
    let rest = rest.trim_end().trim_end_matches("--").trim_end();
    let (message, fields) = match rest.rsplit_once(':') {
        Some((m, f)) if !f.contains(' ') || f.trim().is_empty() => (m, f.trim()),
        _ => (rest, ""),
    };
    RecordError {
        status_code: code.trim().to_string(),
        message: message.trim().to_string(),
        fields: fields
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect(),
    }
}

/// Where a results page has column `name`.
pub fn column(page: &ResultsPage, name: &str) -> Result<usize, SalesforceError> {
    page.header.iter().position(|h| h == name).ok_or_else(|| {
        SalesforceError::BadResponse(format!("ingest results without a {name} column"))
    })
}

fn describe_cells(upload: &Upload, cells: &[&str], key: Option<&str>) -> String {
    let pairs = upload.header.iter().zip(cells.iter());
    let quoted = |v: &str| format!("'{v}'");
    if let Some(key) = key {
        if let Some((_, v)) = pairs.clone().find(|(h, _)| h.eq_ignore_ascii_case(key)) {
            return format!("{key} {}", quoted(v));
        }
    }
    if let Some((_, v)) = pairs.clone().find(|(h, _)| *h == "Id") {
        return format!("Id {v}");
    }
    pairs
        .filter(|(_, v)| !v.is_empty())
        .take(3)
        .map(|(h, v)| format!("{h} {}", quoted(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads the successful results into what the job applied.
fn read_successful(
    session: &mut Session,
    job: &str,
    operation: IngestOperation,
    processed: u64,
) -> Result<BulkApplied, SalesforceError> {
    let mut applied = BulkApplied {
        job: job.to_string(),
        ..Default::default()
    };
    let room = (processed as usize).saturating_mul(19);
    match operation {
        IngestOperation::Insert => applied.created.reserve(room),
        IngestOperation::Update => applied.updated.reserve(room),
        IngestOperation::Delete | IngestOperation::HardDelete => applied.deleted.reserve(room),
        IngestOperation::Upsert => {}
    }
    let mut page = session.ingest_results(job, IngestResults::Successful)?;
    let id_at = column(&page, "sf__Id")?;
    let created_at = column(&page, "sf__Created")?;
    while let Some(r) = page.next_record()? {
        let id = &r[id_at];
        match operation {
            IngestOperation::Delete | IngestOperation::HardDelete => applied.deleted.push(id),
            _ if r[created_at].eq_ignore_ascii_case("true") => applied.created.push(id),
            _ => applied.updated.push(id),
        }
    }
    Ok(applied)
}

/// Reads the failed results; returns how many, and the one whose row came
/// first in the statement.
fn read_failed(
    session: &mut Session,
    job: &str,
    upload: &Upload,
    key: Option<&str>,
) -> Result<(u64, Option<Box<Rejection>>), SalesforceError> {
    let mut page = session.ingest_results(job, IngestResults::Failed)?;
    let error_at = column(&page, "sf__Error")?;
    let first_cell = uploaded_cells_start(&page, upload.header.len())?;
    let mut by_hash: HashMap<u64, (String, Vec<String>)> = HashMap::new();
    let mut count = 0;
    while let Some(r) = page.next_record()? {
        count += 1;
        let cells: Vec<&str> = r.iter().skip(first_cell).collect();
        by_hash
            .entry(row_hash(cells.iter().copied()))
            .or_insert_with(|| {
                (
                    r[error_at].to_string(),
                    cells.iter().map(|c| c.to_string()).collect(),
                )
            });
    }
    let first = upload
        .rows
        .iter()
        .find_map(|(row, hash)| by_hash.get(hash).map(|found| (*row, found)));
    let rejection = first.map(|(row, (error, cells))| {
        let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
        Box::new(Rejection {
            statement: upload.statement.clone(),
            row: row as usize,
            which: describe_cells(upload, &cells, key),
            error: parse_sf_error(error),
        })
    });
    Ok((count, rejection))
}

fn count_unprocessed(session: &mut Session, job: &str) -> Result<u64, SalesforceError> {
    let mut page = session.ingest_results(job, IngestResults::Unprocessed)?;
    let mut n = 0;
    while page.next_record()?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// Uploads the part written so far, if it has rows.
pub fn upload_rest(
    session: &mut Session,
    job: &str,
    upload: &mut Upload,
) -> Result<(), SalesforceError> {
    match upload.take_part() {
        Some(part) => session.upload_ingest_part(job, part),
        None => Ok(()),
    }
}

/// Uploads what is left and closes the job: from here on Salesforce
/// applies its records. An error that may have closed it is the caller's
/// to treat as an unknown outcome.
pub fn close(session: &mut Session, job: &str, upload: &mut Upload) -> Result<(), SalesforceError> {
    upload_rest(session, job, upload)?;
    session.close_ingest_job(job).map(drop)
}

/// Waits for a closed job, reads its results and deletes it.
pub fn collect(
    session: &mut Session,
    job: &str,
    upload: Upload,
    key: Option<&str>,
) -> Result<Outcome, SalesforceError> {
    let operation = upload.operation;
    let ended = session.wait_for_ingest_job(job, PATIENCE)?;
    let rows = upload.rows() as u64;
    let (failed, rejection) = if ended.number_records_failed.unwrap_or(1) > 0 {
        read_failed(session, job, &upload, key)?
    } else {
        (0, None)
    };
    // The rows' hashes served to find the rejected row; the Ids come next.
    drop(upload);
    let processed = ended.number_records_processed.unwrap_or(0);
    let applied = read_successful(session, job, operation, processed)?;
    let unprocessed = if processed < rows {
        count_unprocessed(session, job)?
    } else {
        0
    };
    let job_error = ended.error_message.filter(|m| !m.is_empty()).or_else(|| {
        (ended.state != JobState::JobComplete).then(|| format!("the job ended {:?}", ended.state))
    });
    // The results were read; a job left behind only costs storage.
    let _ = session.delete_ingest_job(job);
    Ok(Outcome {
        applied,
        rejection,
        failed,
        unprocessed,
        job_error,
    })
}

/// Deletes records through one ingest job (an abort taking back what a
/// large write created). Returns those Salesforce refused, with why; one
/// already gone counts as deleted.
pub fn delete_all(
    session: &mut Session,
    object: &str,
    ids: &[String],
    patience: Duration,
) -> Result<Vec<(String, String)>, SalesforceError> {
    let job = session
        .create_ingest_job(object, IngestOperation::Delete, None)?
        .id;
    let mut upload = Upload::new(IngestOperation::Delete, vec!["Id".into()], String::new());
    for (row, id) in ids.iter().enumerate() {
        if let Some(part) = upload.push_cells(row + 1, &[id]) {
            session.upload_ingest_part(&job, part)?;
        }
    }
    close(session, &job, &mut upload)?;
    let ended = session.wait_for_ingest_job(&job, patience)?;
    // Deleted: what the successful results list, and what was gone already.
    let mut deleted: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut page = session.ingest_results(&job, IngestResults::Successful)?;
    let id_at = column(&page, "sf__Id")?;
    while let Some(r) = page.next_record()? {
        deleted.insert(r[id_at].to_string());
    }
    let mut why: HashMap<String, String> = HashMap::new();
    if ended.number_records_failed != Some(0) {
        let mut page = session.ingest_results(&job, IngestResults::Failed)?;
        let id_at = page.header.iter().position(|h| h == "Id").unwrap_or(0);
        let error_at = column(&page, "sf__Error")?;
        while let Some(r) = page.next_record()? {
            let error = parse_sf_error(&r[error_at]);
            if error.status_code == "ENTITY_IS_DELETED" {
                deleted.insert(r[id_at].to_string());
            } else {
                why.insert(
                    r[id_at].to_string(),
                    format!("{}: {}", error.status_code, error.message),
                );
            }
        }
    }
    let _ = session.delete_ingest_job(&job);
    let left = ids
        .iter()
        .filter(|id| !deleted.contains(*id))
        .map(|id| {
            let reason = why.remove(id).unwrap_or_else(|| {
                format!(
                    "not processed: Bulk delete job {job} ended {:?}",
                    ended.state
                )
            });
            (id.clone(), reason)
        })
        .collect();
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::journal::Target;
    use serde_json::json;

    fn q(row: usize, op: Op) -> Queued {
        Queued {
            target: Target {
                server: 1,
                user: 2,
                object: "Contact".into(),
            },
            op,
            row,
            statement: "INSERT into contact".into(),
            bulk_from: None,
        }
    }

    #[test]
    fn parts_carry_their_header_and_quote_values() {
        let mut u = Upload::new(
            IngestOperation::Insert,
            vec!["LastName".into(), "Email".into()],
            "INSERT into contact".into(),
        );
        let record = json!({"LastName": "O'Hara, \"Scarlett\"", "Email": null});
        assert!(u
            .push(&q(
                1,
                Op::Create {
                    record: record.as_object().unwrap().clone()
                }
            ))
            .is_none());
        let part = u.take_part().unwrap();
        assert_eq!(
            std::str::from_utf8(&part).unwrap(),
            "LastName,Email\n\"O'Hara, \"\"Scarlett\"\"\",\n"
        );
        assert!(u.take_part().is_none(), "an empty part is not uploaded");
    }

    #[test]
    fn updates_lead_with_the_id_and_clear_with_na() {
        let header = header_for(IngestOperation::Update, &["Title".into()]);
        let mut u = Upload::new(IngestOperation::Update, header, "UPDATE of contact".into());
        let fields = json!({"Title": null}).as_object().unwrap().clone();
        u.push(&q(
            1,
            Op::Update {
                id: "003000000000001AAA".into(),
                fields,
            },
        ));
        let part = u.take_part().unwrap();
        assert_eq!(
            std::str::from_utf8(&part).unwrap(),
            "Id,Title\n003000000000001AAA,#N/A\n"
        );
    }

    #[test]
    fn salesforce_errors_split_into_code_message_and_fields() {
        let e = parse_sf_error(
            "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --",
        );
        assert_eq!(e.status_code, "REQUIRED_FIELD_MISSING");
        assert_eq!(e.message, "Required fields are missing: [LastName]");
        assert_eq!(e.fields, vec!["LastName"]);
        let e = parse_sf_error("DUPLICATE_VALUE:duplicate value found: Email duplicates value on record with id: 003x:--");
        assert_eq!(e.status_code, "DUPLICATE_VALUE");
        assert!(
            e.message.starts_with("duplicate value found"),
            "{}",
            e.message
        );
    }

    #[test]
    fn ids_pack_and_iterate() {
        let mut ids = Ids::default();
        assert!(ids.is_empty());
        ids.push("003A");
        ids.push("003B");
        assert_eq!(ids.iter().collect::<Vec<_>>(), vec!["003A", "003B"]);
        assert_eq!(ids.len(), 2);
    }
}
