//! `/__sim/...`: the control API tests and demos use to inspect the request
//! log, change limits, move time, and edit records as a person would in
//! Salesforce. Not part of the Salesforce surface; never counted.

use super::errors::{json, ApiError};
use crate::faults::{BadValue, EchoToken, FaultRates};
use crate::org::Undo;
use crate::orgs::Orgs;
use crate::sim::Sim;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use std::sync::Arc;

fn object_body(body: &Bytes) -> Result<Map<String, Json>, ApiError> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body).map_err(ApiError::bad_json)? {
        Json::Object(m) => Ok(m),
        _ => Err(ApiError::bad_json("expected a JSON object")),
    }
}

/// `/__sim/...` is the first org's control API and `/__sim/orgs/{k}/...`
/// org k's; `/__sim/orgs` lists the orgs and `/__sim/oauth/approve`
/// answers an authorize request for whichever org the username is in.
pub async fn dispatch(
    State(orgs): State<Arc<Orgs>>,
    Path(rest): Path<String>,
    method: Method,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let (sim, segments) = match (method.as_str(), segments.as_slice()) {
        ("GET", ["orgs"]) => return list_orgs(&orgs),
        ("POST", ["outage"]) => {
            return outage(&orgs, &body).unwrap_or_else(IntoResponse::into_response)
        }
        (_, ["orgs", number, rest @ ..]) => {
            match number.parse().ok().and_then(|n: usize| orgs.get(n)) {
                Some(sim) => (sim.clone(), rest),
                None => return ApiError::not_found().into_response(),
            }
        }
        ("POST", ["oauth", "approve"]) => {
            return approve(&orgs, &body).unwrap_or_else(IntoResponse::into_response)
        }
        _ => (orgs.first().clone(), segments.as_slice()),
    };
    sim.run_due_bulk_jobs();
    control(&sim, method.as_str(), segments, &params, &body)
        .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /__sim/outage {"seconds": N}`: the whole server goes down for N
/// seconds: its port refuses connections and those open are cut, then it
/// listens again with every org as it was. Timed, since this API is down
/// with the rest.
fn outage(orgs: &Arc<Orgs>, body: &Bytes) -> Result<Response, ApiError> {
    let seconds = object_body(body)?
        .get("seconds")
        .and_then(Json::as_f64)
        .filter(|s| *s > 0.0 && *s <= 3600.0)
        .ok_or_else(|| ApiError::bad_json("seconds is required: more than 0, at most 3600"))?;
    // It starts once this answer is on its way.
    let start = std::time::Duration::from_millis(100);
    let until = std::time::Instant::now() + start + std::time::Duration::from_secs_f64(seconds);
    let orgs = orgs.clone();
    tokio::spawn(async move {
        tokio::time::sleep(start).await;
        orgs.outage.send_replace(Some(until));
    });
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /__sim/orgs`: every org's number, id, admin username and fixed
/// refresh token.
fn list_orgs(orgs: &Orgs) -> Response {
    let list: Vec<Json> = orgs
        .all()
        .iter()
        .map(|sim| {
            let org = sim.org.read();
            serde_json::json!({
                "org": sim.config.number,
                "org_id": org.org_id,
                "admin_username": org.logins.first().map(|l| l.username.as_str()),
                "refresh_token": sim.config.demo_refresh_token(),
            })
        })
        .collect();
    json(StatusCode::OK, &serde_json::json!({"orgs": list}))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    /// Empty (or left out) for an authorize request that named no state.
    #[serde(default)]
    state: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    deny: bool,
}

/// `POST /__sim/oauth/approve`: the customer answers the authorize page,
/// logging in as `username` and allowing access, or declining (`deny`).
/// Answers where Salesforce would send the browser.
fn approve(orgs: &Orgs, body: &Bytes) -> Result<Response, ApiError> {
    let answer: Answer = serde_json::from_slice(body).map_err(ApiError::bad_json)?;
    let no_request = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no authorize request waits with state '{}'", answer.state),
        )
    };
    let redirect = if answer.deny {
        let pending = orgs.deny(&answer.state).ok_or_else(no_request)?;
        let mut params = vec![
            ("error", "access_denied"),
            ("error_description", "end-user denied authorization"),
        ];
        if !pending.state.is_empty() {
            params.push(("state", &pending.state));
        }
        super::oauth::callback(&pending.redirect_uri, &params)
    } else {
        let username = answer
            .username
            .as_deref()
            .ok_or_else(|| ApiError::bad_json("username (or deny) is required"))?;
        let approved = orgs.approve(&answer.state, username).map_err(|e| match e {
            None => no_request(),
            Some(message) => ApiError::new(StatusCode::BAD_REQUEST, "INVALID_LOGIN", message),
        })?;
        let mut params = vec![("code", approved.code.as_str())];
        if !approved.pending.state.is_empty() {
            params.push(("state", &approved.pending.state));
        }
        super::oauth::callback(&approved.pending.redirect_uri, &params)
    };
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"redirect": redirect}),
    ))
}

fn oauth_settings(sim: &Sim) -> Json {
    serde_json::json!({"rotate_refresh_tokens": sim.auth.lock().rotate_refresh_tokens})
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OAuthSettings {
    rotate_refresh_tokens: Option<bool>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Hang {
    #[serde(default = "yes")]
    on: bool,
}

fn yes() -> bool {
    true
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Delay {
    ms: u64,
}

fn faults(sim: &Sim) -> Json {
    let cdc = sim.pubsub.state().faults.clone();
    let f = sim.faults.lock();
    serde_json::json!({"rates": f.rates, "injected": f.injected, "echo_token": f.echo_token, "bad_value": f.bad_value, "cdc": cdc, "hang": sim.stall.hung(), "delay_ms": sim.stall.delay_ms()})
}

/// Arms the echo_token fault; a count of 0 disarms it.
fn arm_echo_token(sim: &Sim, body: &Bytes) -> Result<Response, ApiError> {
    let echo: EchoToken = serde_json::from_slice(body).map_err(ApiError::bad_json)?;
    sim.faults.lock().echo_token = (echo.remaining > 0).then_some(echo);
    Ok(json(StatusCode::OK, &faults(sim)))
}

/// Arms the bad_value fault for a field of the org; a count of 0 disarms it.
fn arm_bad_value(sim: &Sim, body: &Bytes) -> Result<Response, ApiError> {
    let mut bad: BadValue = serde_json::from_slice(body).map_err(ApiError::bad_json)?;
    {
        let org = sim.org.read();
        let object = org.object(&bad.object).ok_or_else(ApiError::not_found)?;
        let def = org.def(object);
        let field = def.field(&bad.field).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                format!("No such column '{}' on entity '{}'", bad.field, def.name),
            )
        })?;
        bad.object = def.name.clone();
        bad.field = field.name.clone();
    }
    sim.faults.lock().bad_value = (bad.remaining > 0).then_some(bad);
    Ok(json(StatusCode::OK, &faults(sim)))
}

/// A record whose change commits late: it becomes visible now with a
/// SystemModstamp `age_seconds` in the past, behind records already seen.
fn late_commit(sim: &Sim, body: &Bytes) -> Result<Response, ApiError> {
    let request = object_body(body)?;
    let object = request
        .get("object")
        .and_then(Json::as_str)
        .ok_or_else(|| ApiError::bad_json("object is required"))?;
    let age = request
        .get("age_seconds")
        .and_then(Json::as_i64)
        .ok_or_else(|| ApiError::bad_json("age_seconds is required"))?;
    let fields = request
        .get("fields")
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_default();
    let _shared = sim.transaction_gate.read();
    let mut org = sim.org.write();
    let index = org.object(object).ok_or_else(ApiError::not_found)?;
    let mut author = sim.author(&org.admin_user_id.clone());
    author.now -= chrono::Duration::seconds(age);
    let id = org.create(index, &fields, &author, &mut Undo::default())?;
    drop(org);
    sim.commit();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"id": id, "systemModstamp": crate::value::format_datetime(&author.now)}),
    ))
}

fn settings(sim: &Sim) -> Json {
    let deliveries = sim.pubsub.state().deliveries.daily_limit;
    let bulk = sim.bulk.lock();
    serde_json::json!({
        "daily_limit": sim.usage.lock().daily_limit,
        "token_lifetime_secs": sim.token_lifetime().num_seconds(),
        "bulk_job_processing_ms": bulk.processing.num_milliseconds(),
        "bulk_daily_job_limit": bulk.created.daily_limit,
        "bulk_results_page_bytes": bulk.results_page_bytes,
        "bulk_daily_batch_limit": bulk.ingest.batches.daily_limit,
        "bulk_daily_record_limit": bulk.ingest.records.daily_limit,
        "cdc_daily_delivery_limit": deliveries,
        "platform_event_hourly_publish_limit": sim.pubsub.state().published.limit,
    })
}

const SETTINGS: &[&str] = &[
    "daily_limit",
    "token_lifetime_secs",
    "bulk_job_processing_ms",
    "bulk_daily_job_limit",
    "bulk_results_page_bytes",
    "bulk_daily_batch_limit",
    "bulk_daily_record_limit",
    "cdc_daily_delivery_limit",
    "platform_event_hourly_publish_limit",
];

/// Applies the changed settings, each checked before any is applied.
fn change_settings(sim: &Sim, changes: &Map<String, Json>) -> Result<(), ApiError> {
    if let Some(key) = changes.keys().find(|k| !SETTINGS.contains(&k.as_str())) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            format!("unknown setting '{key}'"),
        ));
    }
    let number = |key: &str, min: u64| -> Result<Option<u64>, ApiError> {
        changes
            .get(key)
            .map(|v| {
                v.as_u64().filter(|n| *n >= min).ok_or_else(|| {
                    ApiError::bad_json(format!("{key} must be a whole number of at least {min}"))
                })
            })
            .transpose()
    };
    let daily_limit = number("daily_limit", 0)?;
    let token_lifetime = number("token_lifetime_secs", 1)?;
    let processing_ms = number("bulk_job_processing_ms", 0)?;
    let daily_job_limit = number("bulk_daily_job_limit", 0)?;
    let page_bytes = number("bulk_results_page_bytes", 1)?;
    let batch_limit = number("bulk_daily_batch_limit", 0)?;
    let record_limit = number("bulk_daily_record_limit", 0)?;
    let deliveries = number("cdc_daily_delivery_limit", 0)?;
    if let Some(limit) = number("platform_event_hourly_publish_limit", 0)? {
        sim.pubsub.state().published.limit = limit;
    }
    if let Some(limit) = deliveries {
        sim.pubsub.state().deliveries.daily_limit = limit;
    }
    if let Some(limit) = daily_limit {
        sim.usage.lock().daily_limit = limit;
    }
    if let Some(secs) = token_lifetime {
        sim.set_token_lifetime(secs as i64);
    }
    let mut bulk = sim.bulk.lock();
    if let Some(ms) = processing_ms {
        bulk.processing = chrono::Duration::milliseconds(ms as i64);
    }
    if let Some(limit) = daily_job_limit {
        bulk.created.daily_limit = limit;
    }
    if let Some(bytes) = page_bytes {
        bulk.results_page_bytes = bytes as usize;
    }
    if let Some(limit) = batch_limit {
        bulk.ingest.batches.daily_limit = limit;
    }
    if let Some(limit) = record_limit {
        bulk.ingest.records.daily_limit = limit;
    }
    Ok(())
}

fn control(
    sim: &Sim,
    method: &str,
    segments: &[&str],
    params: &HashMap<String, String>,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let ok = |v: Json| Ok(json(StatusCode::OK, &v));
    match (method, segments) {
        ("GET", ["requests"]) => {
            let since = params
                .get("since")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            ok(serde_json::json!({"requests": sim.log.lock().since(since)}))
        }
        ("DELETE", ["requests"]) => {
            sim.log.lock().clear();
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        ("GET", ["usage"]) => {
            let now = sim.clock.now();
            let delivered = sim.pubsub.state().deliveries.used(now);
            let mut usage = sim.usage.lock();
            let used = usage.used(now);
            ok(serde_json::json!({
                "api_requests_used": used,
                "daily_limit": usage.daily_limit,
                "remaining": usage.daily_limit.saturating_sub(used),
                "requests_seen": usage.requests_seen,
                "cdc_events_delivered": delivered,
            }))
        }
        ("GET", ["settings"]) => ok(settings(sim)),
        ("PATCH", ["settings"]) => {
            change_settings(sim, &object_body(body)?)?;
            ok(settings(sim))
        }
        ("GET", ["time"]) => {
            ok(serde_json::json!({"now": crate::value::format_datetime(&sim.clock.now())}))
        }
        ("POST", ["time", "advance"]) => {
            let seconds = object_body(body)?
                .get("seconds")
                .and_then(Json::as_i64)
                .ok_or_else(|| ApiError::bad_json("seconds is required"))?;
            sim.clock.advance(chrono::Duration::seconds(seconds));
            ok(serde_json::json!({"now": crate::value::format_datetime(&sim.clock.now())}))
        }
        ("POST", ["reset"]) => {
            sim.reset()
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "RESET_FAILED", e))?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        ("POST", ["tokens", "expire"]) => {
            sim.auth.lock().expire_all();
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        ("POST", ["objects", object, "fields"]) => add_fields(sim, object, body),
        ("GET", ["faults"]) => ok(faults(sim)),
        ("PATCH", ["faults"]) => {
            let rates: FaultRates = serde_json::from_slice(body).map_err(ApiError::bad_json)?;
            sim.faults.lock().set_rates(rates);
            ok(faults(sim))
        }
        ("POST", ["faults", "late_commit"]) => late_commit(sim, body),
        ("POST", ["faults", "echo_token"]) => arm_echo_token(sim, body),
        ("POST", ["faults", "bad_value"]) => arm_bad_value(sim, body),
        ("POST", ["faults", "hang"]) => {
            // No body (or null) sets the hang.
            let hang: Option<Hang> = if body.is_empty() {
                None
            } else {
                serde_json::from_slice(body).map_err(ApiError::bad_json)?
            };
            sim.stall.set_hang(hang.is_none_or(|h| h.on));
            ok(faults(sim))
        }
        ("DELETE", ["faults", "hang"]) => {
            sim.stall.set_hang(false);
            ok(faults(sim))
        }
        ("POST", ["faults", "delay_ms"]) => {
            let delay: Delay = serde_json::from_slice(body).map_err(ApiError::bad_json)?;
            sim.stall.set_delay_ms(delay.ms);
            ok(faults(sim))
        }
        ("GET", ["oauth"]) => ok(oauth_settings(sim)),
        ("POST" | "PATCH", ["oauth"]) => {
            let settings: OAuthSettings =
                serde_json::from_slice(body).map_err(ApiError::bad_json)?;
            if let Some(rotate) = settings.rotate_refresh_tokens {
                sim.auth.lock().rotate_refresh_tokens = rotate;
            }
            ok(oauth_settings(sim))
        }
        ("POST", ["faults", fault])
            if fault.starts_with("cdc_") || *fault == "publish_unanswered" =>
        {
            super::cdc::arm(sim, fault, body)?;
            ok(faults(sim))
        }
        ("GET", ["events"]) => Ok(super::events::list(sim)),
        ("GET", ["events", event]) => super::events::show(sim, event),
        ("POST", ["events", event]) => super::events::publish(sim, event, body),
        ("GET", ["cdc"]) => Ok(super::cdc::show(sim)),
        ("POST", ["cdc"]) => super::cdc::select(sim, body),
        (_, ["records", object, rest @ ..]) => record_edit(sim, method, object, rest, params, body),
        _ => Err(ApiError::not_found()),
    }
}

/// Adds fields to an object, as an admin would in Setup; existing records read them as null.
fn add_fields(sim: &Sim, object: &str, body: &Bytes) -> Result<Response, ApiError> {
    let specs: Vec<crate::schema::FieldSpec> =
        serde_json::from_slice(body).map_err(ApiError::bad_json)?;
    let mut org = sim.org.write();
    let index = org.object(object).ok_or_else(ApiError::not_found)?;
    for spec in &specs {
        if org.def(index).field(&spec.name).is_some() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "DUPLICATE_DEVELOPER_NAME",
                format!("field {} already exists", spec.name),
            ));
        }
    }
    let now = sim.clock.now();
    for spec in specs {
        org.add_field(index, spec.into_def(), now);
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"fields": org.def(index).fields.len()}),
    ))
}

/// Edits made as the admin user through Salesforce's UI would make them.
fn record_edit(
    sim: &Sim,
    method: &str,
    object: &str,
    rest: &[&str],
    params: &HashMap<String, String>,
    body: &Bytes,
) -> Result<Response, ApiError> {
    // Not while a composite call is running, whose rollback would undo this.
    let _shared = sim.transaction_gate.read();
    let mut org = sim.org.write();
    let index = org.object(object).ok_or_else(ApiError::not_found)?;
    let author = sim.author(&org.admin_user_id.clone());
    let id = match (method, rest) {
        ("POST", []) => org.create(index, &object_body(body)?, &author, &mut Undo::default())?,
        ("PATCH", [id]) => org.update(
            index,
            id,
            &object_body(body)?,
            &author,
            &mut Undo::default(),
        )?,
        ("DELETE", [id]) if params.get("hard").is_some_and(|h| h == "true") => {
            org.hard_delete(index, id, &author, &mut Undo::default())?
        }
        ("DELETE", [id]) => org.delete(index, id, &author, &mut Undo::default())?,
        ("POST", [id, "undelete"]) => org.undelete(index, id, &author)?,
        _ => return Err(ApiError::not_found()),
    };
    drop(org);
    sim.commit();
    Ok(json(StatusCode::OK, &serde_json::json!({"id": id})))
}
