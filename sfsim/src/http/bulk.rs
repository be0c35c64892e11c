//! `/services/data/vNN.N/jobs/query...`: Bulk API 2.0 query jobs (create,
//! list, info, abort, delete) and their results, CSV pages walked with
//! `Sforce-Locator`.

use super::data::ApiRequest;
use super::errors::{json, ApiError};
use crate::bulk::refusals::check;
use crate::bulk::results::{ColumnDelimiter, CsvFormat, LineEnding};
use crate::bulk::{Job, NewJob, Operation, State};
use crate::ids;
use crate::value::format_datetime;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value as Json;
use std::io::Write;

/// Query jobs exist from this API version on.
const FIRST_VERSION: f64 = 47.0;
/// Jobs per page of the job list.
const JOB_LIST_PAGE: usize = 1_000;
/// Key prefix of job list locators, Salesforce's query locator prefix.
const LIST_LOCATOR_PREFIX: &str = "01g";
const LOCATORS: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

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
            "PATCH" => abort(req, id),
            "DELETE" => delete(req, id),
            _ => allow("GET, PATCH, DELETE"),
        },
        [id, "results"] => match method.as_str() {
            "GET" => results(req, id),
            _ => allow("GET"),
        },
        _ => Err(ApiError::not_found()),
    }
}

pub(super) fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

/// The request body; a field of the wrong type is answered as Salesforce's
/// JSON binding answers it.
pub(super) fn body<T: DeserializeOwned>(req: &ApiRequest) -> Result<T, ApiError> {
    serde_json::from_slice(req.body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => bad_request(
            "API_ERROR",
            format!(
                "Value does not match expected type at [line:{}, column:{}]",
                e.line(),
                e.column()
            ),
        ),
        _ => ApiError::bad_json(e),
    })
}

#[derive(Clone, Copy, PartialEq)]
enum View {
    /// The answer to create and abort calls.
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
        "concurrencyMode": "Parallel",
        "contentType": "CSV",
        "apiVersion": job.api_version.parse::<f64>().unwrap_or_default(),
    });
    let map = info.as_object_mut().expect("a JSON object");
    if view != View::Brief {
        map.insert("jobType".into(), "V2Query".into());
    }
    map.insert("lineEnding".into(), job.format.line_ending.name().into());
    map.insert("columnDelimiter".into(), job.format.delimiter.name().into());
    if view == View::Detailed {
        map.insert(
            "numberRecordsProcessed".into(),
            job.records_processed(now).into(),
        );
        map.insert("retries".into(), 0.into());
        map.insert("totalProcessingTime".into(), job.processing_ms(now).into());
        if let Some(message) = job.error_message(now) {
            map.insert("errorMessage".into(), message.into());
        }
    }
    info
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRequest {
    operation: Option<String>,
    query: Option<String>,
    content_type: Option<String>,
    column_delimiter: Option<String>,
    line_ending: Option<String>,
}

fn create(req: &mut ApiRequest) -> Result<Response, ApiError> {
    let request: CreateRequest = body(req)?;
    req.info.soql = request.query.clone();
    let operation = match request.operation.as_deref() {
        Some("query") => Operation::Query,
        Some("queryAll") => Operation::QueryAll,
        Some(other) => {
            return Err(bad_request(
                "API_ERROR",
                format!("Invalid operation: {other}. A query job's operation is query or queryAll"),
            ))
        }
        None => return Err(bad_request("API_ERROR", "The operation is required")),
    };
    let soql = request
        .query
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| bad_request("API_ERROR", "A query job needs a query"))?;
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
    let (object, work) = {
        let org = req.sim.org.read();
        let accepted = check(&org, &soql, org.field_access(req.user))?;
        (org.def(accepted.object).name.clone(), accepted.work)
    };
    let now = req.sim.clock.now();
    let new = NewJob {
        operation,
        object,
        soql,
        created_by: req.user.to_string(),
        api_version: req.version.to_string(),
        format: CsvFormat {
            delimiter,
            line_ending,
        },
        work,
    };
    let mut jobs = req.sim.bulk.lock();
    let job = jobs.create(new, now).map_err(|reached| {
        bad_request(
            "LIMIT_EXCEEDED",
            format!(
                "Max bulk v2 query jobs ({}) per 24 hrs has been reached",
                reached.limit
            ),
        )
    })?;
    Ok(json(StatusCode::OK, &job_info(job, now, View::Brief)))
}

fn info(req: &ApiRequest, id: &str) -> Result<Response, ApiError> {
    let now = req.sim.clock.now();
    let jobs = req.sim.bulk.lock();
    let job = jobs.get(id).ok_or_else(ApiError::not_found)?;
    Ok(json(StatusCode::OK, &job_info(job, now, View::Detailed)))
}

#[derive(Deserialize)]
struct StateChange {
    state: Option<String>,
}

fn abort(req: &ApiRequest, id: &str) -> Result<Response, ApiError> {
    if req.sim.bulk.lock().get(id).is_none() {
        return Err(ApiError::not_found());
    }
    let change: StateChange = body(req)?;
    if change.state.as_deref() != Some("Aborted") {
        return Err(bad_request(
            "INVALIDJOBSTATE",
            format!(
                "Invalid state: {}. A query job can only be set to Aborted",
                change.state.unwrap_or_default()
            ),
        ));
    }
    let now = req.sim.clock.now();
    let mut jobs = req.sim.bulk.lock();
    match jobs.abort(id, now) {
        None => Err(ApiError::not_found()),
        Some(Err(state)) => {
            let already = match state {
                State::JobComplete => "Completed",
                other => other.name(),
            };
            Err(bad_request(
                "INVALIDJOBSTATE",
                format!("Aborting already {already} Job not allowed"),
            ))
        }
        Some(Ok(job)) => Ok(json(StatusCode::OK, &job_info(job, now, View::Brief))),
    }
}

fn delete(req: &ApiRequest, id: &str) -> Result<Response, ApiError> {
    let now = req.sim.clock.now();
    match req.sim.bulk.lock().delete(id, now) {
        None => Err(ApiError::not_found()),
        Some(Err(state)) => Err(bad_request(
            "INVALIDJOBSTATE",
            format!(
                "Deleting a job in state {} is not allowed: only JobComplete, Failed and Aborted jobs can be deleted",
                state.name()
            ),
        )),
        Some(Ok(())) => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// Whether sfsim's jobs (Bulk API 2.0 query jobs, run in parallel, without
/// PK chunking) pass one list filter; an unknown value is an error.
fn passes(
    req: &ApiRequest,
    name: &str,
    accepted: &[&str],
    refused: &[&str],
) -> Result<bool, ApiError> {
    match req.param(name) {
        None => Ok(true),
        Some(v) if accepted.iter().any(|a| a.eq_ignore_ascii_case(v)) => Ok(true),
        Some(v) if refused.iter().any(|r| r.eq_ignore_ascii_case(v)) => Ok(false),
        Some(v) => Err(bad_request("API_ERROR", format!("Invalid {name}: {v}"))),
    }
}

fn invalid_locator() -> ApiError {
    bad_request("INVALID_QUERY_LOCATOR", "invalid query locator")
}

/// `GET /jobs/query`: every job of the org, oldest first, a thousand a page.
fn list(req: &ApiRequest) -> Result<Response, ApiError> {
    let filters: [(&str, &[&str], &[&str]); 3] = [
        (
            "jobType",
            &["V2Query"],
            &["Classic", "V2Ingest", "BigObjectIngest"],
        ),
        ("concurrencyMode", &["Parallel"], &["Serial"]),
        ("isPkChunkingEnabled", &["false"], &["true"]),
    ];
    let mut matching = true;
    for (name, accepted, refused) in filters {
        matching &= passes(req, name, accepted, refused)?;
    }
    // A locator names the last job listed and how many were listed so far.
    let (after, listed) = match req.param("queryLocator") {
        None => (0, 0),
        Some(locator) => locator
            .rsplit_once('-')
            .and_then(|(id, n)| {
                Some((
                    ids::sequence(id, LIST_LOCATOR_PREFIX)?,
                    n.parse::<usize>().ok()?,
                ))
            })
            .ok_or_else(invalid_locator)?,
    };
    let now = req.sim.clock.now();
    let jobs = req.sim.bulk.lock();
    let mut page: Vec<&Job> = if matching {
        jobs.after(after).take(JOB_LIST_PAGE + 1).collect()
    } else {
        vec![]
    };
    let more = page.len() > JOB_LIST_PAGE;
    page.truncate(JOB_LIST_PAGE);
    let next_records_url = page.last().filter(|_| more).map(|last| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair(
            "queryLocator",
            &format!(
                "{}-{}",
                ids::generate(LIST_LOCATOR_PREFIX, last.seq()),
                listed + page.len()
            ),
        );
        for (name, ..) in filters {
            if let Some(v) = req.param(name) {
                query.append_pair(name, v);
            }
        }
        format!(
            "/services/data/v{}/jobs/query?{}",
            req.version,
            query.finish()
        )
    });
    let records: Vec<Json> = page
        .iter()
        .map(|job| job_info(job, now, View::Listed))
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"done": next_records_url.is_none(), "records": records, "nextRecordsUrl": next_records_url}),
    ))
}

pub(super) fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let refused = |p: &str| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f64>().ok())
                    .is_some_and(|q| q == 0.0)
            };
            parts.next().is_some_and(|c| c.eq_ignore_ascii_case("gzip")) && !parts.any(refused)
        })
}

pub(super) fn gzip(parts: &[Bytes]) -> Vec<u8> {
    let size: usize = parts.iter().map(Bytes::len).sum();
    let mut encoder = GzEncoder::new(Vec::with_capacity(size / 4), Compression::fast());
    for part in parts {
        encoder.write_all(part).expect("compressing into memory");
    }
    encoder.finish().expect("compressing into memory")
}

/// `GET /jobs/query/{id}/results`: the page of CSV at `locator` (the first
/// without one) of at most `maxRecords` records; `Sforce-Locator` names the
/// next page, or is `null` on the last.
fn results(req: &mut ApiRequest, id: &str) -> Result<Response, ApiError> {
    let now = req.sim.clock.now();
    let (results, page_bytes) = {
        let jobs = req.sim.bulk.lock();
        let job = jobs.get(id).ok_or_else(ApiError::not_found)?;
        req.info.soql = Some(job.soql.clone());
        if job.api_version != req.version {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "API_ERROR",
                format!(
                    "This job was created with API version {}: get its results with the same version",
                    job.api_version
                ),
            ));
        }
        let results = job.results(now).cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "JOB_NOT_COMPLETE",
                format!(
                    "Job {} is not complete: its state is {}",
                    job.id,
                    job.state(now).name()
                ),
            )
        })?;
        (results, jobs.results_page_bytes)
    };
    let max_records = match req.param("maxRecords") {
        None => usize::MAX,
        Some(v) => v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
            bad_request(
                "API_ERROR",
                format!("maxRecords must be a whole number above 0, not '{v}'"),
            )
        })?,
    };
    let start = match req.param("locator").filter(|l| !l.is_empty()) {
        None => 0,
        Some(locator) => LOCATORS
            .decode(locator)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|start| *start < results.len())
            .ok_or_else(invalid_locator)?,
    };
    let end = results.page_end(start, max_records, page_bytes);
    let next_locator = if end < results.len() {
        LOCATORS.encode(end.to_string())
    } else {
        "null".to_string()
    };
    req.info.records = Some(end - start);
    let page = results.page(start, end);
    let mut response = if accepts_gzip(req.headers) {
        ([(header::CONTENT_ENCODING, "gzip")], gzip(&page)).into_response()
    } else {
        // The page's slices go out as they are, without copying them into one.
        let length = page.iter().map(Bytes::len).sum::<usize>();
        let chunks = page.map(Ok::<_, std::io::Error>);
        (
            [(header::CONTENT_LENGTH, length.to_string())],
            Body::from_stream(futures_util::stream::iter(chunks)),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=UTF-8"),
    );
    headers.insert("Sforce-NumberOfRecords", HeaderValue::from(end - start));
    headers.insert(
        "Sforce-Locator",
        HeaderValue::from_str(&next_locator).expect("base64 is a header value"),
    );
    Ok(response)
}
