//! `/services/data/vNN.N/...`: authentication, API usage, and the resources
//! other than sObject Collections.

use super::errors::{json, ApiError};
use super::oauth::bearer;
use super::LogInfo;
use crate::cursors::Cursor;
use crate::faults::Fault;
use crate::org::{Org, Record, Undo};
use crate::render::{all_fields, record_url, RecordList, RecordView};
use crate::schema::{FieldType, ObjectDef};
use crate::sim::{Sim, NEWEST_API_VERSION, OLDEST_API_VERSION};
use crate::soql::aggregate::AggregatePlan;
use crate::soql::children::include_deleted_children;
use crate::soql::plan::{self, Node, Projection};
use crate::soql::{exec, group};
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use std::sync::Arc;

pub const MAX_PAGE_SIZE: usize = 2_000;
pub const MIN_PAGE_SIZE: usize = 200;
/// Pages hold at most this many records when two or more long text areas are selected.
pub const LONG_TEXT_PAGE_SIZE: usize = 200;
/// Upsert answers 200 rather than 204 for an update from this version on.
const UPSERT_200_SINCE: f64 = 46.0;

pub async fn versions() -> Response {
    let list: Vec<Json> = (OLDEST_API_VERSION..=NEWEST_API_VERSION)
        .map(|v| serde_json::json!({"label": format!("Release {v}"), "url": format!("/services/data/v{v}.0"), "version": format!("{v}.0")}))
        .collect();
    json(StatusCode::OK, &list)
}

/// One authenticated data API request.
pub struct ApiRequest<'a> {
    pub sim: &'a Sim,
    pub version: &'a str,
    pub method: Method,
    pub headers: &'a HeaderMap,
    pub params: HashMap<String, String>,
    pub body: &'a Bytes,
    pub user: &'a str,
    pub info: LogInfo,
    /// The request's writes, so a composite call with allOrNone can take
    /// them back after a later subrequest fails; the request is their
    /// transaction.
    pub undo: Undo,
}

impl ApiRequest<'_> {
    pub fn json_body(&self) -> Result<Json, ApiError> {
        serde_json::from_slice(self.body).map_err(ApiError::bad_json)
    }

    pub fn object_body(&self) -> Result<Map<String, Json>, ApiError> {
        match self.json_body()? {
            Json::Object(map) => Ok(map),
            _ => Err(ApiError::bad_json(
                "Cannot deserialize instance of SObject from START_ARRAY value",
            )),
        }
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

pub async fn dispatch(
    Extension(sim): Extension<Arc<Sim>>,
    Path(rest): Path<String>,
    uri: Uri,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let version = match segments.first().and_then(|v| v.strip_prefix('v')) {
        Some(v) if Sim::supported_version(v) => v.to_string(),
        _ => return ApiError::not_found().into_response(),
    };
    sim.run_due_bulk_jobs();
    let now = sim.clock.now();
    let token = bearer(&headers).unwrap_or_default();
    let user = sim.auth.lock().user_of(token, now).map(str::to_string);
    let Some(user) = user else {
        let mut r = ApiError::invalid_session().into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
        return r;
    };
    let composite = segments[1..] == ["composite"];
    // Bulk job calls write no records, so no record lock can refuse them;
    // a composite call writes only if one of its subrequests does.
    let writes_records = method != Method::GET
        && segments.get(1) != Some(&"jobs")
        && (!composite || super::composite::writes_records(&body));
    let fault = sim.faults.lock().draw(writes_records);
    if fault == Some(Fault::ServerUnavailable) {
        let info = LogInfo::default();
        let mut r = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVER_UNAVAILABLE",
            "Server unavailable",
        )
        .into_response();
        r.extensions_mut().insert(info);
        return r;
    }
    let counted = sim.usage.lock().take(now);
    let params = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let mut req = ApiRequest {
        sim: &sim,
        version: &version,
        method,
        headers: &headers,
        params,
        body: &body,
        user: &user,
        info: LogInfo {
            counted,
            ..LogInfo::default()
        },
        undo: Undo::new(&format!("com/salesforce/api/rest/{version}")),
    };
    let mut response = if !counted {
        ApiError::limit_exceeded().into_response()
    } else if sim.faults.lock().take_echo(req.method.as_str(), uri.path()) {
        echoed_token(token).into_response()
    } else if fault == Some(Fault::UnableToLockRow) {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access to this record or 1 records",
        )
        .into_response()
    } else {
        let _alone = composite.then(|| sim.transaction_gate.write());
        let _shared = (!composite).then(|| sim.transaction_gate.read());
        let response = route(&mut req, &segments[1..]).unwrap_or_else(IntoResponse::into_response);
        sim.commit();
        response
    };
    if fault == Some(Fault::DropConnection) {
        response = cut_off(response).await;
    }
    let usage = sim.usage.lock().header(now);
    response.headers_mut().insert(
        "Sforce-Limit-Info",
        HeaderValue::from_str(&usage).expect("ascii header"),
    );
    // The org's clock, which the control API may have moved ahead of real time.
    let date = now.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    response.headers_mut().insert(
        header::DATE,
        HeaderValue::from_str(&date).expect("ascii header"),
    );
    response.extensions_mut().insert(req.info);
    response
}

/// The echo_token fault's answer: Salesforce's unexpected-error layout with
/// the caller's access token where the ErrorId goes.
fn echoed_token(token: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "UNKNOWN_EXCEPTION",
        format!(
            "An unexpected error occurred. Please include this ErrorId if you contact support: {token}"
        ),
    )
}

/// The same answer, its body broken off halfway, as a dropped connection does.
async fn cut_off(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let half = bytes.slice(..bytes.len() / 2);
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(half),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "fault: connection dropped",
        )),
    ];
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(
        parts,
        axum::body::Body::from_stream(futures_util::stream::iter(chunks)),
    )
}

/// Answers one data API request; `segments` is its path after the version.
pub(super) fn route(req: &mut ApiRequest, segments: &[&str]) -> Result<Response, ApiError> {
    let method = req.method.as_str().to_string();
    let allow = |allowed: &str| Err(ApiError::method_not_allowed(&method, allowed));
    match segments {
        [] => match method.as_str() {
            "GET" => Ok(resources(req)),
            _ => allow("GET"),
        },
        ["limits"] => match method.as_str() {
            "GET" => Ok(limits(req)),
            _ => allow("GET"),
        },
        [kind @ ("query" | "queryAll")] => match method.as_str() {
            "GET" => query(req, *kind == "queryAll"),
            _ => allow("GET"),
        },
        ["query" | "queryAll", locator] => match method.as_str() {
            "GET" => query_more(req, locator),
            _ => allow("GET"),
        },
        ["sobjects"] => match method.as_str() {
            "GET" => Ok(describe_global(req)),
            _ => allow("GET"),
        },
        ["sobjects", object, rest @ ..] if req.sim.org.read().event(object).is_some() => {
            let def = req.sim.org.read().event(object).cloned();
            super::events::route(req, def.expect("checked above"), rest)
        }
        ["sobjects", object] => match method.as_str() {
            "GET" => sobject_info(req, object),
            "POST" => create(req, object),
            _ => allow("GET, HEAD, POST"),
        },
        ["sobjects", object, kind @ ("updated" | "deleted")] => match method.as_str() {
            "GET" => replication(req, object, kind),
            _ => allow("GET"),
        },
        ["sobjects", object, "describe"] => match method.as_str() {
            "GET" => describe(req, object),
            _ => allow("GET, HEAD"),
        },
        ["sobjects", object, id] => match method.as_str() {
            "GET" => read_record(req, object, id),
            "PATCH" => update(req, object, id),
            "DELETE" => delete(req, object, id),
            _ => allow("GET, PATCH, DELETE"),
        },
        ["sobjects", object, field, value] => by_field(req, object, field, value),
        ["composite"] => match method.as_str() {
            "GET" => Ok(super::composite::resources(req)),
            "POST" => super::composite::run(req),
            _ => allow("GET, POST"),
        },
        ["composite", "sobjects", rest @ ..] => super::collections::route(req, rest),
        ["jobs", "query", rest @ ..] => super::bulk::route(req, rest),
        ["jobs", "ingest", rest @ ..] => super::ingest::route(req, rest),
        ["tooling", "query"] => match method.as_str() {
            "GET" => super::tooling::query(req),
            _ => allow("GET"),
        },
        _ => Err(ApiError::not_found()),
    }
}

fn resources(req: &ApiRequest) -> Response {
    let base = format!("/services/data/v{}", req.version);
    let names = ["sobjects", "query", "queryAll", "limits", "composite"];
    let map: Map<String, Json> = names
        .iter()
        .map(|n| (n.to_string(), Json::String(format!("{base}/{n}"))))
        .collect();
    json(StatusCode::OK, &map)
}

fn limits(req: &ApiRequest) -> Response {
    let now = req.sim.clock.now();
    let (bulk_jobs, bulk_batches) = {
        let mut jobs = req.sim.bulk.lock();
        let max = jobs.created.daily_limit;
        let batches = &mut jobs.ingest.batches;
        let batch_max = batches.daily_limit;
        let batches_used = batches.used(now);
        (
            serde_json::json!({"Max": max, "Remaining": max.saturating_sub(jobs.created.used(now))}),
            serde_json::json!({"Max": batch_max, "Remaining": batch_max.saturating_sub(batches_used)}),
        )
    };
    let published = {
        let mut state = req.sim.pubsub.state();
        let max = state.published.limit;
        serde_json::json!({"Max": max, "Remaining": max.saturating_sub(state.published.used(now))})
    };
    let mut usage = req.sim.usage.lock();
    let used = usage.used(now);
    let max = usage.daily_limit;
    let fixed = |max: u64| serde_json::json!({"Max": max, "Remaining": max});
    json(
        StatusCode::OK,
        &serde_json::json!({
            "ConcurrentAsyncGetReportInstances": fixed(200),
            "DailyApiRequests": {"Max": max, "Remaining": max.saturating_sub(used)},
            "DailyAsyncApexExecutions": fixed(250_000),
            "DailyBulkApiBatches": bulk_batches,
            "DailyBulkV2QueryFileStorageMB": fixed(976_562),
            "DailyBulkV2QueryJobs": bulk_jobs,
            "DataStorageMB": fixed(1_024),
            "FileStorageMB": fixed(1_024),
            "HourlyPublishedPlatformEvents": published,
        }),
    )
}

fn object_def(org: &Org, name: &str) -> Result<(usize, Arc<ObjectDef>), ApiError> {
    let object = org.object(name).ok_or_else(ApiError::not_found)?;
    Ok((object, org.def(object).clone()))
}

fn describe_global(req: &ApiRequest) -> Response {
    let org = req.sim.org.read();
    let sobjects: Vec<Json> = org
        .objects
        .iter()
        .map(|o| o.def.sobject_summary(req.version))
        .chain(org.events.iter().map(|e| e.sobject_summary(req.version)))
        .collect();
    json(
        StatusCode::OK,
        &serde_json::json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects}),
    )
}

fn sobject_info(req: &ApiRequest, name: &str) -> Result<Response, ApiError> {
    let org = req.sim.org.read();
    let (_, def) = object_def(&org, name)?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"objectDescribe": def.sobject_summary(req.version), "recentItems": []}),
    ))
}

fn describe(req: &ApiRequest, name: &str) -> Result<Response, ApiError> {
    let org = req.sim.org.read();
    let (object, def) = object_def(&org, name)?;
    let since = req
        .headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok());
    // What a user may see is fixed by the org data, so the schema's change
    // time dates every user's describe.
    if since.is_some_and(|s| org.schema_changed_at.timestamp() <= s.timestamp()) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let access = org.field_access(req.user);
    let children = org
        .child_relationships(object)
        .into_iter()
        .filter(|(child, field)| access.can_see(*child, *field))
        .map(|(child, field)| {
            let f = &org.def(child).fields[field];
            serde_json::json!({
                "cascadeDelete": false,
                "childSObject": org.def(child).name,
                "deprecatedAndHidden": false,
                "field": f.name,
                "junctionIdListNames": [],
                "junctionReferenceTo": [],
                "relationshipName": f.child_relationship_name,
                "restrictedDelete": false,
            })
        })
        .collect();
    let mut response = json(
        StatusCode::OK,
        &def.describe(req.version, |field| access.can_see(object, field), children),
    );
    let modified = org
        .schema_changed_at
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    response.headers_mut().insert(
        header::LAST_MODIFIED,
        HeaderValue::from_str(&modified).expect("ascii date"),
    );
    Ok(response)
}

fn replication(req: &ApiRequest, name: &str, kind: &str) -> Result<Response, ApiError> {
    let date = |key: &str| {
        req.param(key)
            .and_then(crate::value::parse_datetime)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_REPLICATION_DATE",
                    format!("{key} must be an ISO 8601 date and time"),
                )
            })
    };
    let (start, end) = (date("start")?, date("end")?);
    let now = req.sim.clock.now();
    let org = req.sim.org.read();
    let (object, _) = object_def(&org, name)?;
    let fmt = crate::value::format_datetime;
    if kind == "updated" {
        let (ids, latest) = crate::replication::updated(&org, object, start, end, now)?;
        return Ok(json(
            StatusCode::OK,
            &serde_json::json!({"ids": ids, "latestDateCovered": fmt(&latest)}),
        ));
    }
    let d = crate::replication::deleted(&org, object, start, end, now)?;
    let records: Vec<Json> = d
        .records
        .iter()
        .map(|(id, at)| serde_json::json!({"id": id, "deletedDate": fmt(at)}))
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"deletedRecords": records, "earliestDateAvailable": fmt(&d.earliest_date_available), "latestDateCovered": fmt(&d.latest_date_covered)}),
    ))
}

fn page_size(req: &ApiRequest, long_text_fields: usize) -> usize {
    let hint = req
        .headers
        .get("Sforce-Query-Options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|p| p.trim().strip_prefix("batchSize="))
        })
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(MAX_PAGE_SIZE)
        .clamp(MIN_PAGE_SIZE, MAX_PAGE_SIZE);
    if long_text_fields >= 2 {
        hint.min(LONG_TEXT_PAGE_SIZE)
    } else {
        hint
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Page<'a> {
    total_size: usize,
    done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_records_url: Option<String>,
    records: RecordList<'a>,
}

fn page(
    req: &mut ApiRequest,
    org: &Org,
    cursor: &Cursor,
    locator: Option<&str>,
    start: usize,
) -> Response {
    let rows = &cursor.rows;
    let end = (start + cursor.page_size).min(rows.len());
    let next_records_url = locator
        .filter(|_| end < rows.len())
        .map(|id| format!("/services/data/v{}/query/{id}-{end}", req.version));
    req.info.records = Some(end - start);
    let def = org.def(cursor.object);
    let planted = planted_value(req.sim, def, &cursor.nodes, end > start);
    let body = Page {
        total_size: rows.len(),
        done: next_records_url.is_none(),
        next_records_url,
        records: RecordList {
            org,
            def,
            records: &rows[start..end],
            nodes: &cursor.nodes,
            version: req.version,
            planted: planted.as_ref().map(|(field, raw)| (*field, raw)),
        },
    };
    json(StatusCode::OK, &body)
}

/// The bad_value fault's field and value, when it plants one in an answer
/// of `def` records selecting `nodes`; an answer without records has none.
pub fn planted_value(
    sim: &Sim,
    def: &ObjectDef,
    nodes: &[Node],
    has_records: bool,
) -> Option<(usize, Json)> {
    sim.faults.lock().plant(&def.name, |field| {
        let index = def.field_index(field)?;
        let selected = nodes
            .iter()
            .any(|n| matches!(n, Node::Field { index: i, .. } if *i == index));
        (has_records && selected).then_some(index)
    })
}

fn count_answer(req: &mut ApiRequest, total: usize) -> Response {
    req.info.records = Some(0);
    json(
        StatusCode::OK,
        &serde_json::json!({"totalSize": total, "done": true, "records": []}),
    )
}

/// An aggregate query's one and only batch: it has no query locator, so
/// more rows than a batch holds are refused.
fn aggregate_answer(
    req: &mut ApiRequest,
    org: &Org,
    plan: &plan::Plan,
    agg: &AggregatePlan,
    include_deleted: bool,
) -> Result<Response, ApiError> {
    let rows = group::run(org, plan, agg, include_deleted);
    if agg.count_only {
        return Ok(count_answer(req, rows.len()));
    }
    if rows.len() > group::MAX_AGGREGATE_ROWS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "Aggregate query does not support queryMore(), use LIMIT to restrict the results to a single batch",
        ));
    }
    req.info.records = Some(rows.len());
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "totalSize": rows.len(),
            "done": true,
            "records": group::to_records(agg, &rows),
        }),
    ))
}

/// The statement of a query resource's `q`, logged with the request.
pub(super) fn soql_param(req: &mut ApiRequest) -> Result<String, ApiError> {
    let soql = req.param("q").map(str::to_string).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query string has to be specified",
        )
    })?;
    req.info.soql = Some(soql.clone());
    Ok(soql)
}

fn query(req: &mut ApiRequest, include_deleted: bool) -> Result<Response, ApiError> {
    let soql = soql_param(req)?;
    let org = req.sim.org.read();
    let mut plan = plan::plan_as(&org, &soql, org.field_access(req.user))?;
    let projection = std::mem::replace(&mut plan.projection, Projection::Count);
    let mut nodes = match projection {
        Projection::Count => {
            let rows = exec::run(&org, &plan, include_deleted);
            return Ok(count_answer(req, rows.len()));
        }
        Projection::Aggregate(agg) => {
            return aggregate_answer(req, &org, &plan, &agg, include_deleted)
        }
        Projection::Fields(nodes) => nodes,
    };
    if include_deleted {
        include_deleted_children(&mut nodes);
    }
    let nodes = Arc::new(nodes);
    let rows = exec::run(&org, &plan, include_deleted);
    let page_size = page_size(req, plan.long_text_fields);
    let rows = Arc::new(rows);
    let cursor = Cursor::new(plan.object, nodes, rows, page_size, soql);
    let locator = (cursor.rows.len() > page_size)
        .then(|| req.sim.cursors.lock().open(&cursor, req.sim.clock.now()));
    Ok(page(req, &org, &cursor, locator.as_deref(), 0))
}

fn query_more(req: &mut ApiRequest, locator: &str) -> Result<Response, ApiError> {
    let now = req.sim.clock.now();
    let (cursor, start) = req
        .sim
        .cursors
        .lock()
        .resolve(locator, now)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_QUERY_LOCATOR",
                "invalid query locator",
            )
        })?;
    req.info.soql = Some(cursor.soql.clone());
    let id = locator.rsplit_once('-').map(|(id, _)| id.to_string());
    let org = req.sim.org.read();
    Ok(page(req, &org, &cursor, id.as_deref(), start))
}

fn created(req: &ApiRequest, object: &str, id: &str) -> Response {
    let mut r = json(
        StatusCode::CREATED,
        &serde_json::json!({"id": id, "success": true, "errors": []}),
    );
    if let Ok(v) = HeaderValue::from_str(&record_url(req.version, object, id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn create(req: &mut ApiRequest, name: &str) -> Result<Response, ApiError> {
    let body = req.object_body()?;
    let mut org = req.sim.org.write();
    let (object, def) = object_def(&org, name)?;
    let id = org.create(object, &body, &req.sim.author(req.user), &mut req.undo)?;
    Ok(created(req, &def.name, &id))
}

/// The fields named in a `fields=` parameter, or all the user may see.
fn requested_fields(
    def: &ObjectDef,
    visible: impl Fn(usize) -> bool,
    fields: Option<&str>,
) -> Result<Vec<Node>, ApiError> {
    let Some(list) = fields else {
        return Ok(all_fields(def, visible));
    };
    list.split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|name| {
            def.field_index(name).filter(|i| visible(*i)).map(|index| Node::Field { name: def.fields[index].name.clone(), index }).ok_or_else(|| {
                ApiError::new(StatusCode::BAD_REQUEST, "INVALID_FIELD", format!("No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.", def.name))
            })
        })
        .collect()
}

fn record_response(
    req: &ApiRequest,
    org: &Org,
    object: usize,
    rec: &Record,
) -> Result<Response, ApiError> {
    let def = org.def(object);
    let access = org.field_access(req.user);
    let nodes = requested_fields(def, |f| access.can_see(object, f), req.param("fields"))?;
    Ok(json(
        StatusCode::OK,
        &RecordView {
            org,
            def,
            rec,
            nodes: &nodes,
            version: req.version,
            by_name: false,
            planted: None,
        },
    ))
}

fn live<'o>(org: &'o Org, object: usize, id: &str) -> Result<&'o Arc<Record>, ApiError> {
    org.record(object, id)
        .filter(|r| !r.is_deleted(org.def(object)))
        .ok_or_else(ApiError::not_found)
}

fn read_record(req: &ApiRequest, name: &str, id: &str) -> Result<Response, ApiError> {
    let org = req.sim.org.read();
    let (object, _) = object_def(&org, name)?;
    let rec = live(&org, object, id)?;
    record_response(req, &org, object, rec)
}

fn update(req: &mut ApiRequest, name: &str, id: &str) -> Result<Response, ApiError> {
    let body = req.object_body()?;
    let mut org = req.sim.org.write();
    let (object, _) = object_def(&org, name)?;
    org.update(object, id, &body, &req.sim.author(req.user), &mut req.undo)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn delete(req: &mut ApiRequest, name: &str, id: &str) -> Result<Response, ApiError> {
    let mut org = req.sim.org.write();
    let (object, _) = object_def(&org, name)?;
    org.delete(object, id, &req.sim.author(req.user), &mut req.undo)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `/sobjects/{Obj}/{ExternalIdField}/{value}` and `/sobjects/{Obj}/{id}/{Base64Field}`.
fn by_field(
    req: &mut ApiRequest,
    name: &str,
    field: &str,
    value: &str,
) -> Result<Response, ApiError> {
    let blob_field = {
        let org = req.sim.org.read();
        let (object, def) = object_def(&org, name)?;
        let access = org.field_access(req.user);
        let blob = def
            .field_index(value)
            .filter(|i| access.can_see(object, *i))
            .map(|i| &def.fields[i]);
        match blob {
            Some(f) if f.ftype == FieldType::Base64 && def.field(field).is_none() => {
                Some(f.name.clone())
            }
            _ => None,
        }
    };
    if let Some(blob_field) = blob_field {
        return blob(req, name, field, &blob_field);
    }
    let (object, def, field_index) = {
        let org = req.sim.org.read();
        let (object, def) = object_def(&org, name)?;
        let access = org.field_access(req.user);
        let index = def
            .field_index(field)
            .filter(|i| def.fields[*i].external_id || *i == def.system.id)
            .filter(|i| access.can_see(object, *i))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    format!(
                        "Provided external ID field does not exist or is not accessible: {field}"
                    ),
                )
            })?;
        (object, def, index)
    };
    let key_value = crate::value::Value::text(value);
    let matches = |org: &Org| -> Vec<String> {
        if field_index == def.system.id {
            live(org, object, value)
                .map(|r| vec![r.id().to_string()])
                .unwrap_or_default()
        } else {
            org.objects[object].find(field_index, &key_value)
        }
    };
    let multiple = |ids: &[String]| -> Response {
        let urls: Vec<String> = ids
            .iter()
            .map(|id| record_url(req.version, &def.name, id))
            .collect();
        json(StatusCode::MULTIPLE_CHOICES, &urls)
    };
    match req.method.as_str() {
        "GET" => {
            let org = req.sim.org.read();
            match matches(&org).as_slice() {
                [] => Err(ApiError::not_found()),
                [one] => record_response(req, &org, object, live(&org, object, one)?),
                many => Ok(multiple(many)),
            }
        }
        "DELETE" => {
            let mut org = req.sim.org.write();
            match matches(&org).as_slice() {
                [] => Err(ApiError::not_found()),
                [one] => {
                    org.delete(
                        object,
                        &one.clone(),
                        &req.sim.author(req.user),
                        &mut req.undo,
                    )?;
                    Ok(StatusCode::NO_CONTENT.into_response())
                }
                many => Ok(multiple(many)),
            }
        }
        "PATCH" => {
            let mut body = req.object_body()?;
            let mut org = req.sim.org.write();
            let author = req.sim.author(req.user);
            match matches(&org).as_slice() {
                [] if field_index == def.system.id => Err(ApiError::not_found()),
                [] => {
                    body.insert(
                        def.fields[field_index].name.clone(),
                        Json::String(value.to_string()),
                    );
                    let id = org.create(object, &body, &author, &mut req.undo)?;
                    let mut r = created(req, &def.name, &id);
                    *r.body_mut() = axum::body::Body::from(serde_json::json!({"id": id, "success": true, "errors": [], "created": true}).to_string());
                    Ok(r)
                }
                [one] => {
                    let id = org.update(object, &one.clone(), &body, &author, &mut req.undo)?;
                    if req
                        .version
                        .parse::<f64>()
                        .is_ok_and(|v| v >= UPSERT_200_SINCE)
                    {
                        Ok(json(
                            StatusCode::OK,
                            &serde_json::json!({"id": id, "success": true, "errors": [], "created": false}),
                        ))
                    } else {
                        Ok(StatusCode::NO_CONTENT.into_response())
                    }
                }
                many => Ok(multiple(many)),
            }
        }
        other => Err(ApiError::method_not_allowed(other, "GET, PATCH, DELETE")),
    }
}

fn blob(req: &ApiRequest, name: &str, id: &str, field: &str) -> Result<Response, ApiError> {
    if req.method != Method::GET {
        return Err(ApiError::method_not_allowed(req.method.as_str(), "GET"));
    }
    let org = req.sim.org.read();
    let (object, def) = object_def(&org, name)?;
    let rec = live(&org, object, id)?;
    let index = def.field_index(field).expect("checked by the caller");
    let bytes = rec
        .get(index)
        .as_str()
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .ok_or_else(ApiError::not_found)?;
    Ok(([(header::CONTENT_TYPE, "application/octetstream")], bytes).into_response())
}
