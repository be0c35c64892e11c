//! One Subscribe stream. The first FetchRequest names the topic and where
//! to start; every FetchRequest adds to the events requested (at most 100
//! outstanding). Events go out only against that demand; with nothing to
//! send the stream gets an empty keepalive response after `keepalive`.

use super::auth::Caller;
use super::calls;
use super::replay::{self, Start, StoredEvent};
use super::service::{can_subscribe, find_topic, not_permitted};
use super::status::{
    code_name, failure, AUTH_ERROR, LIMIT_EXCEEDED, REPLAY_ID_CORRUPTED, SERVICE_UNAVAILABLE,
    TOPIC_MISMATCH,
};
use super::topics::Topic;
use crate::request_log::RpcCall;
use crate::sim::Sim;
use eventbus::tonic::{Code, Status, Streaming};
use eventbus::{ConsumerEvent, FetchRequest, FetchResponse, ProducerEvent, ReplayPreset};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

type Out = mpsc::Sender<Result<FetchResponse, Status>>;

/// The Subscribe call a stream serves.
pub struct Call {
    pub sim: Arc<Sim>,
    pub caller: Caller,
    pub rpc_id: String,
    pub keepalive: Duration,
    /// The bus's tip when the call arrived: where LATEST starts, so every
    /// event published once the client holds the stream reaches it.
    pub latest: u64,
}

struct Subscription {
    call: Call,
    topic: Topic,
    /// The replay id after which the next events come.
    position: u64,
    /// Events requested and not yet delivered.
    pending: i32,
}

pub fn log_end(sim: &Sim, topic: Option<String>, code: Code) {
    calls::log(
        sim,
        RpcCall {
            rpc: "Subscribe",
            topic,
            events: None,
            grpc_status: Some(code_name(code)),
        },
    );
}

/// Serves the stream until the client goes, the server ends it, or it fails.
pub async fn run(call: Call, mut inbound: Streaming<FetchRequest>, out: Out) {
    // Watched from the start, so a stream being opened is dropped too.
    let drops = call.sim.pubsub.watch_drops();
    let Ok(Some(first)) = inbound.message().await else {
        return;
    };
    let sim = call.sim.clone();
    let subscription = Subscription::open(call, &first);
    let (topic, ended) = match subscription {
        Ok(mut s) => {
            s.request(first.num_requested);
            let ended = s.serve(inbound, &out, drops).await;
            (s.topic.name(), ended)
        }
        Err(status) => (first.topic_name.clone(), Err(status)),
    };
    let code = ended.as_ref().map_or_else(Status::code, |_| Code::Ok);
    log_end(&sim, Some(topic), code);
    if let Err(status) = ended {
        let _ = out.send(Err(status)).await;
    }
}

fn replay_id_invalid(rpc_id: &str) -> Status {
    failure(
        Code::InvalidArgument,
        REPLAY_ID_CORRUPTED,
        "The Replay ID validation failed: it is malformed, was never issued, or is older than the 72-hour retention window.",
        rpc_id,
    )
}

impl Subscription {
    fn open(call: Call, first: &FetchRequest) -> Result<Subscription, Status> {
        let sim = &call.sim;
        let topic = find_topic(sim, &first.topic_name, &call.rpc_id)?;
        if !can_subscribe(sim, &topic) {
            return Err(not_permitted(&topic, &call.rpc_id));
        }
        let start = match ReplayPreset::try_from(first.replay_preset) {
            Ok(ReplayPreset::Latest) => None,
            Ok(ReplayPreset::Earliest) => Some(Start::Earliest),
            Ok(ReplayPreset::Custom) => Some(Start::After(&first.replay_id)),
            Err(_) => return Err(replay_id_invalid(&call.rpc_id)),
        };
        let position = match start {
            None => call.latest,
            Some(start) => sim
                .pubsub
                .start(start, sim.clock.now())
                .ok_or_else(|| replay_id_invalid(&call.rpc_id))?,
        };
        Ok(Subscription {
            call,
            topic,
            position,
            pending: 0,
        })
    }

    fn request(&mut self, n: i32) {
        self.pending = (self.pending + n.max(0)).min(eventbus::MAX_REQUESTED);
    }

    /// A later FetchRequest: more demand, on the same topic if it names one.
    fn more(&mut self, request: FetchRequest) -> Result<(), Status> {
        let named = &request.topic_name;
        if !named.is_empty()
            && find_topic(&self.call.sim, named, &self.call.rpc_id).ok() != Some(self.topic.clone())
        {
            return Err(failure(
                Code::InvalidArgument,
                TOPIC_MISMATCH,
                format!(
                    "A FetchRequest names {named}, but the stream subscribes to {}.",
                    self.topic.name()
                ),
                &self.call.rpc_id,
            ));
        }
        self.request(request.num_requested);
        Ok(())
    }

    fn response(&self, events: Vec<ConsumerEvent>) -> FetchResponse {
        FetchResponse {
            events,
            latest_replay_id: replay::encode(self.position),
            rpc_id: self.call.rpc_id.clone(),
            pending_num_requested: self.pending,
        }
    }

    /// Sends what is deliverable now; answers whether anything was sent and
    /// when events held back by the delay fault become deliverable.
    async fn deliver(&mut self, out: &Out) -> Result<(bool, Option<Instant>), Status> {
        let sim = &self.call.sim;
        let now = sim.clock.now();
        let fetched = sim
            .pubsub
            .fetch(&self.topic, self.position, self.pending as usize, now);
        let held_until = fetched.held_until.map(Instant::from_std);
        if fetched.events.is_empty() {
            self.position = fetched.position;
            return Ok((false, held_until));
        }
        let allowed = sim.pubsub.deliver(fetched.events.len() as u64, now) as usize;
        if allowed == 0 {
            return Err(failure(
                Code::ResourceExhausted,
                LIMIT_EXCEEDED,
                "You have exceeded the event delivery limit for your org.",
                &self.call.rpc_id,
            ));
        }
        let events: Vec<StoredEvent> = fetched.events.into_iter().take(allowed).collect();
        for e in &events {
            e.deliveries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.position = events.last().map_or(self.position, |e| e.replay_id);
        self.pending -= events.len() as i32;
        calls::log(
            sim,
            RpcCall {
                rpc: "Subscribe",
                topic: Some(self.topic.name()),
                events: Some(events.len()),
                grpc_status: None,
            },
        );
        let response = self.response(events.into_iter().map(consumer_event).collect());
        if out.send(Ok(response)).await.is_err() {
            return Ok((false, None));
        }
        Ok((true, held_until))
    }

    fn dropped(&self) -> Status {
        failure(
            Code::Unavailable,
            SERVICE_UNAVAILABLE,
            "The stream was closed by the server; subscribe again.",
            &self.call.rpc_id,
        )
    }

    async fn keepalive(&mut self, out: &Out) -> bool {
        let sim = &self.call.sim;
        self.position = sim
            .pubsub
            .fetch(&self.topic, self.position, 0, sim.clock.now())
            .position;
        out.send(Ok(self.response(vec![]))).await.is_ok()
    }

    async fn serve(
        &mut self,
        mut inbound: Streaming<FetchRequest>,
        out: &Out,
        mut drops: tokio::sync::watch::Receiver<u64>,
    ) -> Result<(), Status> {
        let mut tip = self.call.sim.pubsub.watch_tip();
        let mut keepalive_at = Instant::now() + self.call.keepalive;
        let mut requests_open = true;
        loop {
            if drops.has_changed().unwrap_or(false) {
                return Err(self.dropped());
            }
            // While the org hangs the stream sends nothing, keepalives included.
            if self.call.sim.stall.hung() {
                tokio::select! {
                    _ = self.call.sim.stall.wait_while_hung() => {}
                    _ = drops.changed() => return Err(self.dropped()),
                    _ = out.closed() => return Ok(()),
                }
                keepalive_at = Instant::now() + self.call.keepalive;
                continue;
            }
            if !self.call.caller.is_valid(&self.call.sim) {
                return Err(failure(
                    Code::Unauthenticated,
                    AUTH_ERROR,
                    "The session expired: the access token is no longer valid.",
                    &self.call.rpc_id,
                ));
            }
            let mut held_until = None;
            if self.pending > 0 {
                let (sent, held) = self.deliver(out).await?;
                if out.is_closed() {
                    return Ok(());
                }
                if sent {
                    keepalive_at = Instant::now() + self.call.keepalive;
                    continue;
                }
                held_until = held;
            }
            tokio::select! {
                request = inbound.message(), if requests_open => match request {
                    Ok(Some(request)) => self.more(request)?,
                    // The client sends no more requests; what it asked for still comes.
                    Ok(None) => requests_open = false,
                    Err(_) => return Ok(()),
                },
                _ = tip.changed() => {}
                _ = drops.changed() => return Err(self.dropped()),
                _ = sleep_until(keepalive_at) => {
                    if self.call.sim.stall.hung() {
                        continue;
                    }
                    if !self.keepalive(out).await {
                        return Ok(());
                    }
                    keepalive_at = Instant::now() + self.call.keepalive;
                }
                _ = sleep_until(held_until.unwrap_or(keepalive_at)), if held_until.is_some() => {}
                _ = out.closed() => return Ok(()),
            }
        }
    }
}

fn consumer_event(e: StoredEvent) -> ConsumerEvent {
    ConsumerEvent {
        event: Some(ProducerEvent {
            id: e.uuid,
            schema_id: e.schema_id.to_string(),
            payload: e.payload.to_vec(),
            headers: vec![],
        }),
        replay_id: replay::encode(e.replay_id),
    }
}
