//! The publisher and the reader, each on a current-thread runtime of its own.

use super::encode::EventSchema;
use crate::cdc::connect::{self, Credentials};
use crate::cdc::status;
use crate::cdc::{Replay, StreamConfig};
use crate::client::SalesforceError;
use eventbus::pub_sub_client::PubSubClient;
use eventbus::tonic::transport::Channel;
use eventbus::tonic::Status;
use eventbus::{
    ErrorCode, FetchRequest, ProducerEvent, PublishRequest, ReplayPreset, SchemaRequest,
    TopicRequest,
};
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_stream::wrappers::ReceiverStream;

/// Events per Publish call, as Salesforce recommends.
pub const MAX_EVENTS_PER_REQUEST: usize = 200;
/// Bytes per Publish call (Salesforce's recommendation; gRPC's limit is 4 MB).
pub const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;
/// Bytes per event payload.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// What a ProducerEvent adds to its payload in a request, at most: its id,
/// schema id and protobuf framing.
const EVENT_OVERHEAD: usize = 64;

/// Why one event was not published.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishError {
    /// `PUBLISH` (or `UNKNOWN`, `COMMIT`): the Pub/Sub API's error code for
    /// an event the server refused; `ENCODE` for one that could not be
    /// encoded with the topic's schema; `TOO_LARGE` for a payload over 1 MB.
    pub code: String,
    pub message: String,
    /// The JSON field at fault, for encoding errors.
    pub field: Option<String>,
}

/// One event's outcome: its replay id once published.
pub type EventResult = Result<Vec<u8>, PublishError>;

/// A replay id as the outbox lists it: in hex.
pub fn replay_hex(replay_id: &[u8]) -> String {
    replay_id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The replay id `replay_hex` wrote; None for anything else.
pub fn replay_of_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

struct Topic {
    schema_id: String,
    schema: Arc<EventSchema>,
}

pub struct Publisher {
    runtime: tokio::runtime::Runtime,
    client: PubSubClient<Channel>,
    credentials: Credentials,
    timeout: Duration,
    user_id: String,
    topics: HashMap<String, Topic>,
    /// Masked in every error.
    access_token: String,
}

async fn within<T>(
    timeout: Duration,
    what: &str,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<T, SalesforceError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(answer) => answer.map_err(|s| status::error(&s)),
        Err(_) => Err(SalesforceError::Network(format!(
            "the Pub/Sub API's {what} timed out after {timeout:?}"
        ))),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, SalesforceError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SalesforceError::Config(format!("cannot start a tokio runtime: {e}")))
}

impl Publisher {
    /// Connects to the Pub/Sub API as `config` says (its `topic`, `replay`
    /// and `batch` are not used). `user_id` fills each event's
    /// `CreatedById` (Salesforce sets it to the publishing user anyway).
    pub fn connect(config: &StreamConfig, user_id: &str) -> Result<Publisher, SalesforceError> {
        let runtime = runtime()?;
        let credentials = Credentials::of(config)?;
        let channel = runtime
            .block_on(connect::channel(config))
            .map_err(|e| e.redacted(&config.access_token))?;
        Ok(Publisher {
            runtime,
            client: PubSubClient::new(channel).max_decoding_message_size(16 * 1024 * 1024),
            credentials,
            timeout: config.timeout,
            user_id: user_id.to_string(),
            topics: HashMap::new(),
            access_token: config.access_token.clone(),
        })
    }

    /// The topic's schema, fetched once: GetTopic (which must allow
    /// publishing), then GetSchema for its schema id.
    fn topic(&mut self, name: &str) -> Result<Arc<EventSchema>, SalesforceError> {
        if let Some(t) = self.topics.get(name) {
            return Ok(t.schema.clone());
        }
        let (timeout, credentials) = (self.timeout, self.credentials.clone());
        let mut client = self.client.clone();
        let (info, json) = self.runtime.block_on(async {
            let info = within(
                timeout,
                "GetTopic",
                client.get_topic(credentials.request(TopicRequest {
                    topic_name: name.to_string(),
                })),
            )
            .await?
            .into_inner();
            if !info.can_publish {
                return Err(SalesforceError::Api {
                    status: 403,
                    code: "INSUFFICIENT_ACCESS".into(),
                    message: format!("events cannot be published on {name}: the Pub/Sub API says the topic is not publishable (only platform events, /event/Name__e, are)"),
                });
            }
            let json = within(
                timeout,
                "GetSchema",
                client.get_schema(credentials.request(SchemaRequest {
                    schema_id: info.schema_id.clone(),
                })),
            )
            .await?
            .into_inner()
            .schema_json;
            Ok((info, json))
        })?;
        let schema = Arc::new(EventSchema::parse(&json).map_err(SalesforceError::BadResponse)?);
        self.topics.insert(
            name.to_string(),
            Topic {
                schema_id: info.schema_id,
                schema: schema.clone(),
            },
        );
        Ok(schema)
    }

    /// A publisher as a REST session's user, on the Pub/Sub API its
    /// server names.
    pub fn for_session(
        session: &mut crate::client::session::Session,
    ) -> Result<Publisher, SalesforceError> {
        let config = StreamConfig::for_session(session, "", crate::cdc::Replay::Latest, 1)?;
        Publisher::connect(&config, "")
    }

    /// Publishes `events` (each a JSON object of the event's fields) on
    /// `topic` (`/event/Name__e`). Answers one result per event, in input
    /// order; an error for the whole call (topic refused, token dead,
    /// connection lost) is the outer error, and then events of earlier
    /// calls of this publish may already be published (their results are
    /// lost with the error).
    /// The first event that cannot be published as it is (a field the
    /// topic lacks, a wrong type, too large), found without sending any:
    /// for a caller that must publish all or none.
    pub fn check(
        &mut self,
        topic: &str,
        events: &[Map<String, Json>],
    ) -> Result<Option<(usize, PublishError)>, SalesforceError> {
        let token = self.access_token.clone();
        let schema = self.topic(topic).map_err(|e| e.redacted(&token))?;
        let now = chrono::Utc::now().timestamp_millis();
        for (i, event) in events.iter().enumerate() {
            match schema.encode(event, now, &self.user_id) {
                Err(e) => {
                    return Ok(Some((
                        i,
                        PublishError {
                            code: "ENCODE".into(),
                            message: e.message,
                            field: e.field,
                        },
                    )))
                }
                Ok(p) if p.len() > MAX_EVENT_BYTES => {
                    return Ok(Some((
                        i,
                        PublishError {
                            code: "TOO_LARGE".into(),
                            message: format!(
                                "the event is {} bytes encoded; an event can be at most {MAX_EVENT_BYTES}",
                                p.len()
                            ),
                            field: None,
                        },
                    )))
                }
                Ok(_) => {}
            }
        }
        Ok(None)
    }

    /// What the bus will carry of `event`'s own fields once published on
    /// `topic`: the event encoded with the topic's schema and decoded
    /// again, without the `CreatedDate` and `CreatedById` Salesforce sets.
    /// None if it cannot be encoded (then it was never published).
    pub fn canonical(
        &mut self,
        topic: &str,
        event: &Map<String, Json>,
    ) -> Result<Option<Map<String, Json>>, SalesforceError> {
        let token = self.access_token.clone();
        let schema = self.topic(topic).map_err(|e| e.redacted(&token))?;
        Ok(schema
            .encode(event, 0, "")
            .ok()
            .and_then(|payload| schema.decode(&payload).ok())
            .map(own_fields))
    }

    pub fn publish(
        &mut self,
        topic: &str,
        events: &[Map<String, Json>],
    ) -> Result<Vec<EventResult>, SalesforceError> {
        let token = self.access_token.clone();
        self.publish_inner(topic, events)
            .map_err(|e| e.redacted(&token))
    }

    fn publish_inner(
        &mut self,
        topic: &str,
        events: &[Map<String, Json>],
    ) -> Result<Vec<EventResult>, SalesforceError> {
        let schema = self.topic(topic)?;
        let schema_id = self.topics[topic].schema_id.clone();
        let now = chrono::Utc::now().timestamp_millis();
        let mut results: Vec<Option<EventResult>> = vec![None; events.len()];
        let mut batch: Vec<ProducerEvent> = Vec::new();
        let mut batch_bytes = 0;
        for (i, event) in events.iter().enumerate() {
            let payload = match schema.encode(event, now, &self.user_id) {
                Ok(p) => p,
                Err(e) => {
                    results[i] = Some(Err(PublishError {
                        code: "ENCODE".into(),
                        message: e.message,
                        field: e.field,
                    }));
                    continue;
                }
            };
            if payload.len() > MAX_EVENT_BYTES {
                results[i] = Some(Err(PublishError {
                    code: "TOO_LARGE".into(),
                    message: format!(
                        "the event is {} bytes encoded; an event can be at most {MAX_EVENT_BYTES}",
                        payload.len()
                    ),
                    field: None,
                }));
                continue;
            }
            let size = payload.len() + EVENT_OVERHEAD;
            if batch.len() == MAX_EVENTS_PER_REQUEST || batch_bytes + size > MAX_REQUEST_BYTES {
                self.send(topic, std::mem::take(&mut batch), &mut results)?;
                batch_bytes = 0;
            }
            batch_bytes += size;
            batch.push(ProducerEvent {
                id: i.to_string(),
                schema_id: schema_id.clone(),
                payload,
                headers: vec![],
            });
        }
        if !batch.is_empty() {
            self.send(topic, batch, &mut results)?;
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(PublishError {
                        code: "UNKNOWN".into(),
                        message: "the Pub/Sub API answered no result for the event".into(),
                        field: None,
                    })
                })
            })
            .collect())
    }

    /// One Publish call; its results go to the events' places by
    /// correlation key (each event's index).
    fn send(
        &mut self,
        topic: &str,
        events: Vec<ProducerEvent>,
        results: &mut [Option<EventResult>],
    ) -> Result<(), SalesforceError> {
        let request = self.credentials.request(PublishRequest {
            topic_name: topic.to_string(),
            events,
            auth_refresh: String::new(),
        });
        let mut client = self.client.clone();
        let timeout = self.timeout;
        let response = self
            .runtime
            .block_on(within(timeout, "Publish", client.publish(request)))?
            .into_inner();
        for r in response.results {
            let Some(slot) = r
                .correlation_key
                .parse::<usize>()
                .ok()
                .and_then(|i| results.get_mut(i))
            else {
                continue;
            };
            *slot = Some(match r.error {
                None => Ok(r.replay_id),
                Some(e) => Err(PublishError {
                    code: ErrorCode::try_from(e.code)
                        .map_or("UNKNOWN", |c| c.as_str_name())
                        .to_string(),
                    message: e.msg,
                    field: None,
                }),
            });
        }
        Ok(())
    }
}

/// An event's fields without those Salesforce sets when it publishes it.
pub fn own_fields(mut fields: Map<String, Json>) -> Map<String, Json> {
    fields.remove("CreatedDate");
    fields.remove("CreatedById");
    fields
}

/// A delivered platform event.
#[derive(Debug, Clone)]
pub struct PlatformEvent {
    pub replay_id: Vec<u8>,
    /// The event's EventUuid (the consumer event's id).
    pub event_uuid: String,
    pub schema_id: String,
    /// `CreatedDate` (ISO datetime), `CreatedById` and the custom fields.
    pub fields: Map<String, Json>,
}

/// Subscribes to `config.topic` (`/event/Name__e`) from `config.replay`,
/// collects events until `max` have come or `wait` has passed, then closes
/// the stream. Answers the events and the replay id to resume after (the
/// last event's, or the server's latest position from a keepalive; empty
/// when nothing came).
pub fn read(
    config: &StreamConfig,
    max: usize,
    wait: Duration,
) -> Result<(Vec<PlatformEvent>, Vec<u8>), SalesforceError> {
    let runtime = runtime()?;
    runtime
        .block_on(read_async(config, max, wait))
        .map_err(|e| e.redacted(&config.access_token))
}

async fn read_async(
    config: &StreamConfig,
    max: usize,
    wait: Duration,
) -> Result<(Vec<PlatformEvent>, Vec<u8>), SalesforceError> {
    let credentials = Credentials::of(config)?;
    let channel = connect::channel(config).await?;
    let mut client = PubSubClient::new(channel);
    let (preset, replay_id) = match &config.replay {
        Replay::Latest => (ReplayPreset::Latest, vec![]),
        Replay::Earliest => (ReplayPreset::Earliest, vec![]),
        Replay::After(id) => (ReplayPreset::Custom, id.clone()),
    };
    let wanted = (max.max(1) as i32).min(eventbus::MAX_REQUESTED);
    let (requests, queue) = tokio::sync::mpsc::channel(4);
    requests
        .try_send(FetchRequest {
            topic_name: config.topic.clone(),
            replay_preset: preset as i32,
            replay_id,
            num_requested: wanted,
            auth_refresh: String::new(),
        })
        .expect("a new queue has room");
    let mut responses = within(
        config.timeout,
        "Subscribe",
        client.subscribe(credentials.request(ReceiverStream::new(queue))),
    )
    .await?
    .into_inner();
    let deadline = Instant::now() + wait;
    let mut schemas: HashMap<String, Arc<EventSchema>> = HashMap::new();
    let (mut events, mut latest) = (Vec::new(), Vec::new());
    let mut outstanding = wanted;
    while events.len() < max {
        let left = deadline.saturating_duration_since(Instant::now());
        let response = match tokio::time::timeout(left, responses.message()).await {
            Err(_) => break,
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => break,
            Ok(Err(s)) => return Err(status::error(&s)),
        };
        latest = response.latest_replay_id;
        for e in response.events {
            outstanding -= 1;
            let Some(event) = e.event else { continue };
            let schema = match schemas.get(&event.schema_id) {
                Some(s) => s.clone(),
                None => {
                    let json = within(
                        config.timeout,
                        "GetSchema",
                        client.get_schema(credentials.request(SchemaRequest {
                            schema_id: event.schema_id.clone(),
                        })),
                    )
                    .await?
                    .into_inner()
                    .schema_json;
                    let s =
                        Arc::new(EventSchema::parse(&json).map_err(SalesforceError::BadResponse)?);
                    schemas.insert(event.schema_id.clone(), s.clone());
                    s
                }
            };
            let fields = schema
                .decode(&event.payload)
                .map_err(SalesforceError::BadResponse)?;
            latest = e.replay_id.clone();
            events.push(PlatformEvent {
                replay_id: e.replay_id,
                event_uuid: event.id,
                schema_id: event.schema_id,
                fields,
            });
        }
        if outstanding <= 0 && events.len() < max {
            let more = ((max - events.len()) as i32).min(eventbus::MAX_REQUESTED);
            outstanding = more;
            let _ = requests
                .send(FetchRequest {
                    num_requested: more,
                    ..FetchRequest::default()
                })
                .await;
        }
    }
    Ok((events, latest))
}
