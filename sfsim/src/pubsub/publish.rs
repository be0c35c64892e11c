//! Publishing platform events: Publish (one request, one response) and
//! PublishStream (a response for every request of the stream). Each event
//! is checked on its own and gets its own PublishResult, matched to it by
//! its id (the correlation key): a replay id once it is on the bus, or an
//! error. Change event channels refuse publishing.

use super::auth::Caller;
use super::calls;
use super::platform::PlatformSchema;
use super::replay;
use super::service::find_topic;
use super::status::{
    code_name, failure, AUTH_ERROR, PUBLISH_REQUEST_TOO_LARGE, SERVICE_UNAVAILABLE, TOPIC_MISMATCH,
    TOPIC_NOT_PERMITTED,
};
use super::topics::Topic;
use crate::event_defs::EventDef;
use crate::request_log::RpcCall;
use crate::sim::Sim;
use chrono::{DateTime, Utc};
use eventbus::prost::Message;
use eventbus::tonic::{Code, Status, Streaming};
use eventbus::{Error, ErrorCode, ProducerEvent, PublishRequest, PublishResponse, PublishResult};
use std::sync::Arc;
use tokio::sync::mpsc;

/// A PublishRequest may hold at most this much (Salesforce recommends it;
/// gRPC's own limit is 4 MB).
pub const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;
/// An event's payload may be at most this large.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// The platform event a topic name names, if events may be published on it.
pub fn publishable(sim: &Sim, name: &str, rpc_id: &str) -> Result<Arc<EventDef>, Status> {
    let topic = find_topic(sim, name, rpc_id)?;
    let Topic::Event(event) = &topic else {
        return Err(failure(
            Code::PermissionDenied,
            TOPIC_NOT_PERMITTED,
            format!(
                "Publishing to {} isn't allowed: change events are published by Salesforce.",
                topic.name()
            ),
            rpc_id,
        ));
    };
    let org = sim.org.read();
    Ok(org.event(event).expect("a parsed topic's event").clone())
}

/// One PublishRequest's answer. The whole request fails only for its topic
/// or its size; events fail one by one.
pub fn publish(
    sim: &Sim,
    caller: &Caller,
    request: PublishRequest,
    rpc_id: &str,
) -> Result<PublishResponse, Status> {
    let def = publishable(sim, &request.topic_name, rpc_id)?;
    let size = request.encoded_len();
    if size > MAX_REQUEST_BYTES {
        return Err(failure(
            Code::InvalidArgument,
            PUBLISH_REQUEST_TOO_LARGE,
            format!(
                "The publish request is {size} bytes; a request can hold at most {MAX_REQUEST_BYTES} bytes."
            ),
            rpc_id,
        ));
    }
    let schema = sim.pubsub.event_schema(&def);
    let user = caller.user(sim).unwrap_or_default();
    let now = sim.clock.now();
    let results = request
        .events
        .into_iter()
        .map(|event| publish_one(sim, &schema, &user, event, now))
        .collect();
    Ok(PublishResponse {
        results,
        schema_id: schema.id.to_string(),
        rpc_id: rpc_id.to_string(),
    })
}

fn publish_one(
    sim: &Sim,
    schema: &PlatformSchema,
    user: &str,
    event: ProducerEvent,
    now: DateTime<Utc>,
) -> PublishResult {
    let failed = |msg: String| PublishResult {
        replay_id: vec![],
        error: Some(Error {
            code: ErrorCode::Publish as i32,
            msg,
        }),
        correlation_key: event.id.clone(),
    };
    if event.payload.len() > MAX_EVENT_BYTES {
        return failed(format!(
            "The event is {} bytes; an event can be at most {MAX_EVENT_BYTES} bytes.",
            event.payload.len()
        ));
    }
    if event.schema_id != *schema.id {
        return failed(format!(
            "The schema ID {} isn't the schema of {}: publish with schema ID {}.",
            event.schema_id, schema.event.name, schema.id
        ));
    }
    let payload = match schema.stamp(&event.payload, now, user) {
        Ok(payload) => payload,
        Err(refusal) => return failed(refusal.message),
    };
    if !sim.pubsub.take_publish(now) {
        return failed(
            "LIMIT_EXCEEDED: The number of published platform event messages exceeded the hourly publishing limit."
                .into(),
        );
    }
    let (replay_id, _) =
        sim.pubsub
            .publish_event(&schema.event.name, schema.id.clone(), payload, now);
    PublishResult {
        replay_id: replay::encode(replay_id),
        error: None,
        correlation_key: event.id.clone(),
    }
}

fn log(sim: &Sim, rpc: &'static str, topic: String, published: Option<usize>, code: Code) {
    calls::log(
        sim,
        RpcCall {
            rpc,
            topic: Some(topic),
            events: published,
            grpc_status: Some(code_name(code)),
        },
    );
}

/// How many events of a response went on the bus.
fn published(response: &PublishResponse) -> usize {
    response
        .results
        .iter()
        .filter(|r| r.error.is_none())
        .count()
}

type Out = mpsc::Sender<Result<PublishResponse, Status>>;

/// Serves a PublishStream call: authenticated once, then each request of
/// the stream is published and answered in turn. The first request names
/// the topic; a later one naming another ends the stream with
/// INVALID_ARGUMENT. The hang holds requests; dropping streams ends it.
pub async fn stream(
    sim: Arc<Sim>,
    caller: Caller,
    rpc_id: String,
    mut inbound: Streaming<PublishRequest>,
    out: Out,
) {
    let mut drops = sim.pubsub.watch_drops();
    let mut topic: Option<String> = None;
    loop {
        let request = tokio::select! {
            request = inbound.message() => request,
            _ = drops.changed() => {
                let _ = out.send(Err(failure(
                    Code::Unavailable,
                    SERVICE_UNAVAILABLE,
                    "The stream was closed by the server; publish again.",
                    &rpc_id,
                ))).await;
                return;
            }
            _ = out.closed() => return,
        };
        let Ok(Some(mut request)) = request else {
            return;
        };
        sim.stall.wait_while_hung().await;
        let answer = match &topic {
            None => Ok(()),
            Some(first) if request.topic_name.is_empty() || request.topic_name == *first => {
                request.topic_name = first.clone();
                Ok(())
            }
            Some(first) => Err(failure(
                Code::InvalidArgument,
                TOPIC_MISMATCH,
                format!(
                    "A PublishRequest names {}, but the stream publishes to {first}.",
                    request.topic_name
                ),
                &rpc_id,
            )),
        }
        .and_then(|_| {
            if caller.is_valid(&sim) {
                Ok(())
            } else {
                Err(failure(
                    Code::Unauthenticated,
                    AUTH_ERROR,
                    "The session expired: the access token is no longer valid.",
                    &rpc_id,
                ))
            }
        });
        let name = request.topic_name.clone();
        let answer = answer.and_then(|_| publish(&sim, &caller, request, &rpc_id));
        let code = answer.as_ref().map_or_else(Status::code, |_| Code::Ok);
        log(
            &sim,
            "PublishStream",
            name.clone(),
            answer.as_ref().ok().map(published),
            code,
        );
        let failed = answer.is_err();
        if topic.is_none() && !failed {
            topic = Some(name);
        }
        sim.stall.delay().await;
        if out.send(answer).await.is_err() || failed {
            return;
        }
    }
}

/// The log entry of a unary Publish call.
pub fn log_publish(sim: &Sim, topic: String, answer: &Result<PublishResponse, Status>) {
    let code = answer.as_ref().map_or_else(Status::code, |_| Code::Ok);
    log(
        sim,
        "Publish",
        topic,
        answer.as_ref().ok().map(published),
        code,
    );
}
