//! `/services/data/vNN.N/jobs/ingest...`: Bulk API 2.0 ingest jobs (create,
//! also multipart with the CSV; upload; close or abort; info; list; delete)
//! and their three result files.

use super::bulk::{accepts_gzip, bad_request, body, gzip};
use super::data::ApiRequest;
use super::errors::{json, ApiError};
use crate::bulk::ingest::csv_in::Upload;
use crate::bulk::ingest::results::{Kind, Outcomes};
use crate::bulk::ingest::{
    Job, Jobs, NewJob, Operation, State, MAX_MULTIPART_CHARS, MAX_UPLOAD_BASE64_BYTES,
};
use crate::bulk::results::{ColumnDelimiter, CsvFormat, LineEnding};
use crate::value::format_datetime;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value as Json;
use std::sync::Arc;

/// Ingest jobs exist from this API version on.
const FIRST_VERSION: f64 = 41.0;

pub fn route(req: &mut ApiRequest, segments: &[&str]) -> Result<Response, ApiError> {
    if req
        .version
        .parse::<f64>()
        .map_or(true, |v| v < FIRST_VERSION)
    {
        return Err(ApiError::not_found());
    }
    let method = req.method.as_str().to_string();
    let allow = |allowed: &str| Err(ApiError::method_not_allowed(&method, allowed));
    match segments {
        [] => match method.as_str() {
            "GET" => list(req),
            "POST" => create(req),
            _ => allow("GET, POST"),
        },
        [id] => match method.as_str() {
            "GET" => info(req, id),
            "PATCH" => change_state(req, id),
            "DELETE" => delete(req, id),
            _ => allow("GET, PATCH, DELETE"),
        },
        [id, "batches"] => match method.as_str() {
            "PUT" => upload(req, id),
            _ => allow("PUT"),
        },
        // Salesforce documents `unprocessedrecords`; clients also send
        // `unprocessedRecords`, which it answers too.
        [id, kind]
            if ["successfulResults", "failedResults", "unprocessedrecords"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(kind)) =>
        {
            match method.as_str() {
                "GET" => results(req, id, kind),
                _ => allow("GET"),
            }
        }
        _ => Err(ApiError::not_found()),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum View {
    /// The answer to create and state changes.
    Brief,
    Listed,
    Detailed,
}

fn job_info(job: &Job, now: DateTime<Utc>, view: View) -> Json {
    let mut info = serde_json::json!({
        "id": job.id,
        "operation": job.operation.name(),
        "object": job.object,
        "createdById": job.created_by,
        "createdDate": format_datetime(&job.created_at),
        "systemModstamp": format_datetime(&job.system_modstamp(now)),
        "state": job.state(now).name(),
    });
    let map = info.as_object_mut().expect("a JSON object");
    if let Some(field) = &job.external_id {
        map.insert("externalIdFieldName".into(), field.as_str().into());
    }
    map.insert("concurrencyMode".into(), "Parallel".into());
    map.insert("contentType".into(), "CSV".into());
    map.insert(
        "apiVersion".into(),
        job.api_version.parse::<f64>().unwrap_or_default().into(),
    );
    if view != View::Brief {
        map.insert("jobType".into(), "V2Ingest".into());
    }
    if view != View::Listed {
        map.insert(
            "contentUrl".into(),
            format!(
                "services/data/v{}/jobs/ingest/{}/batches",
                job.api_version, job.id
            )
            .into(),
        );
    }
    map.insert("lineEnding".into(), job.format.line_ending.name().into());
    map.insert("columnDelimiter".into(), job.format.delimiter.name().into());
    if view == View::Detailed {
        let (processed, failed) = job.counts(now);
        let ms = job.processing_ms(now);
        map.insert("numberRecordsProcessed".into(), processed.into());
        map.insert("numberRecordsFailed".into(), failed.into());
        map.insert("retries".into(), 0.into());
        map.insert("totalProcessingTime".into(), ms.into());
        map.insert("apiActiveProcessingTime".into(), ms.into());
        map.insert("apexProcessingTime".into(), 0.into());
        if let Some(message) = job.failure(now) {
            map.insert("errorMessage".into(), message.into());
        }
    }
    info
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRequest {
    object: Option<String>,
    operation: Option<String>,
    external_id_field_name: Option<String>,
    content_type: Option<String>,
    column_delimiter: Option<String>,
    line_ending: Option<String>,
}

/// Checks a create call's job; answers it ready to be added.
fn new_job(req: &ApiRequest, request: CreateRequest) -> Result<NewJob, ApiError> {
    let operation = match request.operation.as_deref() {
        None => return Err(bad_request("API_ERROR", "The operation is required")),
        Some(name) => Operation::parse(name).ok_or_else(|| {
            bad_request(
                "API_ERROR",
                format!("Invalid operation: {name}. An ingest job's operation is insert, update, upsert, delete or hardDelete"),
            )
        })?,
    };
    if let Some(other) = request.content_type.filter(|c| c != "CSV") {
        return Err(bad_request(
            "API_ERROR",
            format!("Invalid contentType: {other}. The only content type is CSV"),
        ));
    }
    let delimiter = match request.column_delimiter {
        None => ColumnDelimiter::Comma,
        Some(name) => ColumnDelimiter::parse(&name).ok_or_else(|| {
            bad_request(
                "API_ERROR",
                format!(
                    "Invalid columnDelimiter: {name}. It is one of {}",
                    ColumnDelimiter::NAMES
                ),
            )
        })?,
    };
    let line_ending = match request.line_ending {
        None => LineEnding::Lf,
        Some(name) => LineEnding::parse(&name).ok_or_else(|| {
            bad_request(
                "API_ERROR",
                format!("Invalid lineEnding: {name}. It is LF or CRLF"),
            )
        })?,
    };
    let name = request
        .object
        .filter(|o| !o.trim().is_empty())
        .ok_or_else(|| bad_request("API_ERROR", "The object is required"))?;
    let org = req.sim.org.read();
    let object = org.object(&name).ok_or_else(|| {
        bad_request(
            "INVALIDENTITY",
            format!("Entity '{name}' is not supported by the Bulk API."),
        )
    })?;
    let def = org.def(object);
    let external_id = match (operation, request.external_id_field_name) {
        (Operation::Upsert, None) => {
            return Err(bad_request(
                "INVALIDJOB",
                format!(
                    "External ID was blank for {}. An External ID must be specified for upsert.",
                    def.name
                ),
            ))
        }
        (Operation::Upsert, Some(field)) => {
            let access = org.field_access(req.user);
            let index = def
                .field_index(&field)
                .filter(|i| def.fields[*i].external_id || *i == def.system.id)
                .filter(|i| access.can_see(object, *i))
                .ok_or_else(|| {
                    bad_request(
                        "INVALIDJOB",
                        format!(
                            "Field name provided, {field} does not match an External ID, Salesforce Id, or indexed field for {}",
                            def.name
                        ),
                    )
                })?;
            Some(def.fields[index].name.clone())
        }
        _ => None,
    };
    if operation == Operation::HardDelete && !org.has_permission(req.user, "BulkApiHardDelete") {
        return Err(bad_request(
            "FEATURENOTENABLED",
            "hardDelete needs the Bulk API Hard Delete user permission, which the user's profile does not grant",
        ));
    }
    Ok(NewJob {
        operation,
        object: def.name.clone(),
        external_id,
        created_by: req.user.to_string(),
        api_version: req.version.to_string(),
        format: CsvFormat {
            delimiter,
            line_ending,
        },
    })
}

fn quota_left(jobs: &mut crate::bulk::Jobs, now: DateTime<Utc>) -> Result<(), ApiError> {
    let batches = &mut jobs.ingest.batches;
    if batches.used(now) >= batches.daily_limit {
        return Err(bad_request(
            "LIMIT_EXCEEDED",
            "ApiBatchItems Limit exceeded.",
        ));
    }
    Ok(())
}

fn create(req: &mut ApiRequest) -> Result<Response, ApiError> {
    let content_type = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return super::multipart::create(req, &content_type);
    }
    let request: CreateRequest = body(req)?;
    let new = new_job(req, request)?;
    let now = req.sim.clock.now();
    let mut jobs = req.sim.bulk.lock();
    quota_left(&mut jobs, now)?;
    let seq = jobs.next_seq();
    let job = jobs.ingest.create(new, seq, now);
    Ok(json(StatusCode::OK, &job_info(job, now, View::Brief)))
}

/// The multipart create: a job made from the `job` part, given the
/// `content` part as its one upload, and closed.
pub(super) fn create_with_content(
    req: &mut ApiRequest,
    job_json: &[u8],
    content: &[u8],
) -> Result<Response, ApiError> {
    let request: CreateRequest = serde_json::from_slice(job_json).map_err(ApiError::bad_json)?;
    let new = new_job(req, request)?;
    let chars = String::from_utf8_lossy(content).chars().count();
    if chars > MAX_MULTIPART_CHARS {
        return Err(bad_request(
            "API_ERROR",
            format!("The CSV of a multipart request may hold at most {MAX_MULTIPART_CHARS} characters; upload larger data with PUT .../batches"),
        ));
    }
    let upload = Upload::parse(content, new.format);
    req.info.records = Some(upload.rows);
    let now = req.sim.clock.now();
    let mut jobs = req.sim.bulk.lock();
    quota_left(&mut jobs, now)?;
    let processing = jobs.processing;
    let seq = jobs.next_seq();
    let job = jobs.ingest.create(new, seq, now);
    job.uploads.push(upload);
    Jobs::close(job, processing, now);
    Ok(json(StatusCode::OK, &job_info(job, now, View::Brief)))
}

fn info(req: &ApiRequest, id: &str) -> Result<Response, ApiError> {
    let now = req.sim.clock.now();
    let jobs = req.sim.bulk.lock();
    let job = jobs.ingest.get(id).ok_or_else(ApiError::not_found)?;
    Ok(json(StatusCode::OK, &job_info(job, now, View::Detailed)))
}

fn list(req: &ApiRequest) -> Result<Response, ApiError> {
    let now = req.sim.clock.now();
    let jobs = req.sim.bulk.lock();
    let records: Vec<Json> = jobs
        .ingest
        .all()
        .map(|job| job_info(job, now, View::Listed))
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"done": true, "records": records, "nextRecordsUrl": null}),
    ))
}

fn not_open(job: &Job, now: DateTime<Utc>) -> ApiError {
    bad_request(
        "INVALIDJOBSTATE",
        format!(
            "Job {} is not Open: its state is {}",
            job.id,
            job.state(now).name()
        ),
    )
}

#[derive(Deserialize)]
struct StateChange {
    state: Option<String>,
}

fn change_state(req: &ApiRequest, id: &str) -> Result<Response, ApiError> {
    if req.sim.bulk.lock().ingest.get(id).is_none() {
        return Err(ApiError::not_found());
    }
    let change: StateChange = body(req)?;
    let now = req.sim.clock.now();
    let mut jobs = req.sim.bulk.lock();
    let processing = jobs.processing;
    let job = jobs.ingest.get_mut(id).ok_or_else(ApiError::not_found)?;
    let state = job.state(now);
    match change.state.as_deref() {
        Some("UploadComplete") if state == State::Open => Jobs::close(job, processing, now),
        Some("UploadComplete") => return Err(not_open(job, now)),
        Some("Aborted") if state.is_final() => {
            let already = match state {
                State::JobComplete => "Completed",
                other => other.name(),
            };
            return Err(bad_request(
                "INVALIDJOBSTATE",
                format!("Aborting already {already} Job not allowed"),
            ));
        }
        Some("Aborted") => {
            Jobs::abort(job, now);
            if job.outcomes.is_none() {
                let uploads = std::mem::take(&mut job.uploads);
                job.outcomes = Some(Arc::new(Outcomes::failed_job(String::new(), uploads)));
            }
        }
        other => {
            return Err(bad_request(
                "INVALIDJOBSTATE",
                format!(
                    "Invalid state: {}. An ingest job can be set to UploadComplete or Aborted",
                    other.unwrap_or_default()
                ),
            ))
        }
    }
    Ok(json(StatusCode::OK, &job_info(job, now, View::Brief)))
}

fn delete(req: &ApiRequest, id: &str) -> Result<Response, ApiError> {
    let now = req.sim.clock.now();
    let mut jobs = req.sim.bulk.lock();
    let job = jobs.ingest.get(id).ok_or_else(ApiError::not_found)?;
    let state = job.state(now);
    if matches!(state, State::Open | State::InProgress) {
        return Err(bad_request(
            "INVALIDJOBSTATE",
            format!(
                "Deleting a job in state {} is not allowed: only UploadComplete, JobComplete, Failed and Aborted jobs can be deleted",
                state.name()
            ),
        ));
    }
    let seq = job.seq;
    jobs.ingest.remove(seq);
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn upload(req: &mut ApiRequest, id: &str) -> Result<Response, ApiError> {
    let now = req.sim.clock.now();
    let format = {
        let jobs = req.sim.bulk.lock();
        let job = jobs.ingest.get(id).ok_or_else(ApiError::not_found)?;
        if job.state(now) != State::Open {
            return Err(not_open(job, now));
        }
        job.format
    };
    let content_type = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.to_ascii_lowercase().starts_with("text/csv") {
        return Err(bad_request(
            "INVALIDCONTENTTYPE",
            format!("Job data must be uploaded as text/csv, not '{content_type}'"),
        ));
    }
    let base64_len = req.body.len().div_ceil(3) * 4;
    if base64_len > MAX_UPLOAD_BASE64_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "EXCEEDED_MAX_SIZE_REQUEST",
            format!(
                "An upload may hold at most {} bytes once base64 encoded (about 100 MB of CSV); this one is {base64_len}",
                MAX_UPLOAD_BASE64_BYTES
            ),
        ));
    }
    // Parsed outside the lock: the cells are all this keeps of the body.
    let upload = Upload::parse(req.body, format);
    req.info.records = Some(upload.rows);
    let mut jobs = req.sim.bulk.lock();
    let job = jobs.ingest.get_mut(id).ok_or_else(ApiError::not_found)?;
    if job.state(now) != State::Open {
        return Err(not_open(job, now));
    }
    job.uploads.push(upload);
    Ok(StatusCode::CREATED.into_response())
}

fn results(req: &ApiRequest, id: &str, kind: &str) -> Result<Response, ApiError> {
    let now = req.sim.clock.now();
    let (outcomes, format) = {
        let jobs = req.sim.bulk.lock();
        let job = jobs.ingest.get(id).ok_or_else(ApiError::not_found)?;
        let state = job.state(now);
        let outcomes = job
            .outcomes
            .clone()
            .filter(|_| state.is_final())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::PRECONDITION_FAILED,
                    "JOB_NOT_COMPLETE",
                    format!(
                        "Job {} is not complete: its state is {}",
                        job.id,
                        state.name()
                    ),
                )
            })?;
        (outcomes, job.format)
    };
    let kind = match kind.to_ascii_lowercase().as_str() {
        "successfulresults" => Kind::Successful,
        "failedresults" => Kind::Failed,
        _ => Kind::Unprocessed,
    };
    let csv = outcomes.render(kind, format);
    let mut response = if accepts_gzip(req.headers) {
        (
            [(header::CONTENT_ENCODING, "gzip")],
            gzip(&[Bytes::from(csv)]),
        )
            .into_response()
    } else {
        csv.into_response()
    };
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=UTF-8"),
    );
    Ok(response)
}
