//! The Subscribe stream, on the subscription's runtime: it asks for
//! `batch` events at a time, asks for more once they have all come and the
//! caller is keeping up, decodes what comes with each schema fetched once,
//! and passes items (or the failure that ends the stream) to the caller.

use super::connect::{self, Credentials};
use super::schema::EventSchema;
use super::{decode, status, Replay, StreamConfig, StreamItem};
use crate::client::SalesforceError;
use eventbus::pub_sub_client::PubSubClient;
use eventbus::tonic::transport::Channel;
use eventbus::tonic::{Status, Streaming};
use eventbus::{FetchRequest, FetchResponse, ReplayPreset, SchemaRequest};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tokio::sync::{mpsc as tokio_mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;

/// Batches of events handed over and not yet taken before the stream
/// stops asking for more.
const MAX_BACKLOG: usize = 4;

pub type Items = mpsc::Sender<Result<StreamItem, SalesforceError>>;

/// Batches handed to the caller and not yet taken.
#[derive(Default)]
pub struct Backlog {
    queued: AtomicUsize,
    taken: Notify,
}

impl Backlog {
    fn put(&self) {
        self.queued.fetch_add(1, Ordering::SeqCst);
    }

    /// The caller took a batch.
    pub fn take(&self) {
        self.queued.fetch_sub(1, Ordering::SeqCst);
        self.taken.notify_one();
    }

    async fn room(&self) {
        while self.queued.load(Ordering::SeqCst) >= MAX_BACKLOG {
            self.taken.notified().await;
        }
    }
}

pub struct Stream {
    client: PubSubClient<Channel>,
    credentials: Credentials,
    timeout: Duration,
    batch: i32,
    /// Events asked for and not yet received.
    outstanding: i32,
    requests: tokio_mpsc::Sender<FetchRequest>,
    responses: Streaming<FetchResponse>,
    schemas: HashMap<String, Arc<EventSchema>>,
}

/// A call's answer, or its failure or timeout as an error.
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

impl Stream {
    /// Connects and subscribes. A refused token fails here; a refused topic
    /// or replay id fails the stream's first read, as Salesforce answers it.
    pub async fn open(config: &StreamConfig) -> Result<Stream, SalesforceError> {
        let credentials = Credentials::of(config)?;
        let channel = connect::channel(config).await?;
        let mut client = PubSubClient::new(channel);
        let batch = config.batch.clamp(1, eventbus::MAX_REQUESTED);
        let (preset, replay_id) = match &config.replay {
            Replay::Latest => (ReplayPreset::Latest, vec![]),
            Replay::Earliest => (ReplayPreset::Earliest, vec![]),
            Replay::After(id) => (ReplayPreset::Custom, id.clone()),
        };
        let (requests, queue) = tokio_mpsc::channel(4);
        requests
            .try_send(FetchRequest {
                topic_name: config.topic.clone(),
                replay_preset: preset as i32,
                replay_id,
                num_requested: batch,
                auth_refresh: String::new(),
            })
            .expect("a new queue has room");
        let request = credentials.request(ReceiverStream::new(queue));
        let responses = within(config.timeout, "Subscribe", client.subscribe(request))
            .await?
            .into_inner();
        Ok(Stream {
            client,
            credentials,
            timeout: config.timeout,
            batch,
            outstanding: batch,
            requests,
            responses,
            schemas: HashMap::new(),
        })
    }

    /// Serves the caller until the stream fails or the caller goes.
    pub async fn run(mut self, items: Items, backlog: Arc<Backlog>) {
        loop {
            let wants_more = self.outstanding <= 0;
            let response = tokio::select! {
                _ = backlog.room(), if wants_more => {
                    let more = FetchRequest {
                        num_requested: self.batch,
                        ..FetchRequest::default()
                    };
                    if self.requests.send(more).await.is_err() {
                        let _ = items.send(Err(closed()));
                        return;
                    }
                    self.outstanding = self.batch;
                    continue;
                }
                response = self.responses.message() => response,
            };
            let item = match response {
                Ok(Some(response)) => self.item(response).await,
                Ok(None) => Err(closed()),
                Err(s) => Err(status::error(&s)),
            };
            if matches!(item, Ok(StreamItem::Events { .. })) {
                backlog.put();
            }
            let failed = item.is_err();
            if items.send(item).is_err() || failed {
                return;
            }
        }
    }

    async fn item(&mut self, response: FetchResponse) -> Result<StreamItem, SalesforceError> {
        let latest_replay_id = response.latest_replay_id;
        if response.events.is_empty() {
            return Ok(StreamItem::Keepalive { latest_replay_id });
        }
        self.outstanding -= response.events.len() as i32;
        let mut events = Vec::with_capacity(response.events.len());
        for consumer in response.events {
            let event = consumer
                .event
                .ok_or_else(|| SalesforceError::BadResponse("an event without a body".into()))?;
            let schema = self.schema(&event.schema_id).await?;
            let decoded = decode::event(&schema, &event.payload, consumer.replay_id)
                .map_err(SalesforceError::BadResponse)?;
            events.push(decoded);
        }
        Ok(StreamItem::Events {
            events,
            latest_replay_id,
        })
    }

    async fn schema(&mut self, id: &str) -> Result<Arc<EventSchema>, SalesforceError> {
        if let Some(schema) = self.schemas.get(id) {
            return Ok(schema.clone());
        }
        let request = self.credentials.request(SchemaRequest {
            schema_id: id.to_string(),
        });
        let info = within(self.timeout, "GetSchema", self.client.get_schema(request))
            .await?
            .into_inner();
        let schema =
            Arc::new(EventSchema::parse(&info.schema_json).map_err(SalesforceError::BadResponse)?);
        self.schemas.insert(id.to_string(), schema.clone());
        Ok(schema)
    }
}

fn closed() -> SalesforceError {
    SalesforceError::Network("the Pub/Sub API closed the stream".into())
}
