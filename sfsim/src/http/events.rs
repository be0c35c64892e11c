//! Platform events over REST and the control API: `sobjects/Name__e`
//! describes and publishes an event (as a Flow or an external app creating
//! one would), sObject Collections create publishes several, and
//! `/__sim/events/...` publishes for tests and shows what was published on
//! a topic and how many Subscribe streams received each event.

use super::data::ApiRequest;
use super::errors::{json, ApiError};
use crate::event_defs::EventDef;
use crate::org::RecordError;
use crate::sim::Sim;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use serde_json::{json as j, Map, Value as Json};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A published event: the id REST answers, its replay id and EventUuid.
pub struct Published {
    pub id: String,
    pub replay_id: u64,
    pub uuid: String,
}

/// Publishes one event from a JSON body of its custom fields, as `user`.
pub fn publish_record(
    sim: &Sim,
    def: &Arc<EventDef>,
    body: &Map<String, Json>,
    user: &str,
) -> Result<Published, RecordError> {
    let schema = sim.pubsub.event_schema(def);
    let now = sim.clock.now();
    let payload = schema
        .from_json(body, now, user)
        .map_err(|r| RecordError::new(r.code, r.message, r.field.into_iter().collect()))?;
    if !sim.pubsub.take_publish(now) {
        return Err(RecordError::new(
            "LIMIT_EXCEEDED",
            "The number of published platform event messages exceeded the hourly publishing limit.",
            vec![],
        ));
    }
    let (replay_id, uuid) = sim
        .pubsub
        .publish_event(&def.name, schema.id.clone(), payload, now);
    Ok(Published {
        // Salesforce's answer carries an Id that names no record and is not
        // unique; the event is identified by its replay id and EventUuid.
        id: format!("{}xx0000000001AAA", def.key_prefix),
        replay_id,
        uuid,
    })
}

fn record_error(e: RecordError) -> ApiError {
    let mut error = ApiError::new(StatusCode::BAD_REQUEST, e.code, e.message);
    error.fields = Some(e.fields);
    error
}

/// `/sobjects/Name__e[/...]` for a platform event.
pub fn route(
    req: &mut ApiRequest,
    def: Arc<EventDef>,
    rest: &[&str],
) -> Result<Response, ApiError> {
    let method = req.method.as_str().to_string();
    let allow = |allowed: &str| Err(ApiError::method_not_allowed(&method, allowed));
    match rest {
        [] => match method.as_str() {
            "GET" => Ok(json(
                StatusCode::OK,
                &j!({"objectDescribe": def.sobject_summary(req.version), "recentItems": []}),
            )),
            "POST" => {
                let body = req.object_body()?;
                let published =
                    publish_record(req.sim, &def, &body, req.user).map_err(record_error)?;
                req.info.records = Some(1);
                // High-volume events are published asynchronously: success,
                // with OPERATION_ENQUEUED and the EventUuid among the errors.
                Ok(json(
                    StatusCode::CREATED,
                    &j!({"id": published.id, "success": true, "errors": [
                        {"statusCode": "OPERATION_ENQUEUED", "message": published.uuid, "fields": []}
                    ]}),
                ))
            }
            _ => allow("GET, HEAD, POST"),
        },
        ["describe"] => match method.as_str() {
            "GET" => Ok(json(StatusCode::OK, &def.describe(req.version))),
            _ => allow("GET, HEAD"),
        },
        ["eventSchema"] => match method.as_str() {
            "GET" => {
                let schema = req.sim.pubsub.event_schema(&def);
                let mut body: Json = serde_json::from_str(&schema.json).expect("schemas are JSON");
                body["uuid"] = j!(*schema.id);
                Ok(json(StatusCode::OK, &body))
            }
            _ => allow("GET"),
        },
        // Events are not stored: there is no record to read, change or delete.
        _ => Err(ApiError::not_found()),
    }
}

fn event_def(sim: &Sim, name: &str) -> Result<Arc<EventDef>, ApiError> {
    sim.org
        .read()
        .event(name)
        .cloned()
        .ok_or_else(ApiError::not_found)
}

fn replay_text(replay_id: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(replay_id.to_be_bytes())
}

/// `GET /__sim/events`: the org's platform events and the hourly allocation.
pub fn list(sim: &Sim) -> Response {
    let events: Vec<Arc<EventDef>> = sim.org.read().events.clone();
    let now = sim.clock.now();
    let events: Vec<Json> = events
        .iter()
        .map(|def| {
            let schema = sim.pubsub.event_schema(def);
            let state = sim.pubsub.state();
            let published = state.log.events().filter(|e| *e.object == def.name).count();
            j!({"name": def.name, "topic": format!("/event/{}", def.name), "schema_id": *schema.id, "retained": published})
        })
        .collect();
    let mut state = sim.pubsub.state();
    let limit = state.published.limit;
    let used = state.published.used(now);
    json(
        StatusCode::OK,
        &j!({"events": events, "hourly_published": used, "hourly_publish_limit": limit}),
    )
}

/// `GET /__sim/events/{Name__e}`: every retained event of the topic, oldest first.
pub fn show(sim: &Sim, name: &str) -> Result<Response, ApiError> {
    let def = event_def(sim, name)?;
    let schema = sim.pubsub.event_schema(&def);
    let state = sim.pubsub.state();
    let events: Vec<Json> = state
        .log
        .events()
        .filter(|e| *e.object == def.name)
        .map(|e| {
            j!({
                "replay_id": replay_text(e.replay_id),
                "event_uuid": e.uuid,
                "schema_id": *e.schema_id,
                "published_at": crate::value::format_datetime(&e.published_at),
                "payload": schema.to_json(&e.payload),
                "deliveries": e.deliveries.load(Ordering::Relaxed),
            })
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &j!({"topic": format!("/event/{}", def.name), "events": events}),
    ))
}

/// `POST /__sim/events/{Name__e}`: publishes one event as the admin would
/// from a Flow; answers its replay id and EventUuid.
pub fn publish(sim: &Sim, name: &str, body: &Bytes) -> Result<Response, ApiError> {
    let def = event_def(sim, name)?;
    let body = match serde_json::from_slice(body).map_err(ApiError::bad_json)? {
        Json::Object(m) => m,
        _ => return Err(ApiError::bad_json("expected a JSON object")),
    };
    let admin = sim.org.read().admin_user_id.clone();
    let published = publish_record(sim, &def, &body, &admin).map_err(record_error)?;
    Ok(json(
        StatusCode::OK,
        &j!({"topic": format!("/event/{}", def.name), "replay_id": replay_text(published.replay_id), "event_uuid": published.uuid}),
    ))
}
