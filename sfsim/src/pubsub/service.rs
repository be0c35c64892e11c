//! The `eventbus.v1.PubSub` service: GetTopic, GetSchema, Subscribe, and
//! Publish and PublishStream for platform events (change event topics
//! being Salesforce's alone to publish on).

use super::auth::authenticate;
use super::calls;
use super::publish;
use super::status::{code_name, failure, SCHEMA_NOT_FOUND, TOPIC_NOT_FOUND, TOPIC_NOT_PERMITTED};
use super::subscription;
use super::topics::Topic;
use crate::request_log::RpcCall;
use crate::sim::Sim;
use eventbus::pub_sub_server::PubSub;
use eventbus::tonic::{self, Code, Request, Response, Status, Streaming};
use eventbus::{
    FetchRequest, FetchResponse, PublishRequest, PublishResponse, SchemaInfo, SchemaRequest,
    TopicInfo, TopicRequest,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Responses a Subscribe stream may have ready before the client reads them.
const STREAM_BUFFER: usize = 4;
/// How long a Publish call armed to go unanswered holds its answer.
const UNANSWERED: Duration = Duration::from_secs(3600);

pub struct PubSubService {
    resolve: super::Resolve,
    keepalive: Duration,
}

impl PubSubService {
    pub fn new(resolve: super::Resolve, keepalive: Duration) -> PubSubService {
        PubSubService { resolve, keepalive }
    }

    /// The org a call is for, by its access token.
    fn sim_for(&self, metadata: &tonic::metadata::MetadataMap) -> Arc<Sim> {
        let token = metadata
            .get(eventbus::ACCESS_TOKEN)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        (self.resolve)(token)
    }

    /// Runs a unary call as an authenticated caller of its org and logs it;
    /// the org's hang holds the call and its delay the answer.
    async fn unary<T>(
        &self,
        rpc: &'static str,
        topic: Option<String>,
        metadata: &tonic::metadata::MetadataMap,
        answer: impl FnOnce(&Sim, &str) -> Result<T, Status>,
    ) -> Result<Response<T>, Status> {
        let sim = self.sim_for(metadata);
        sim.stall.wait_while_hung().await;
        let rpc_id = super::uuid();
        let result = authenticate(&sim, metadata, &rpc_id).and_then(|_| answer(&sim, &rpc_id));
        let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
        calls::log(
            &sim,
            RpcCall {
                rpc,
                topic,
                events: None,
                grpc_status: Some(code_name(code)),
            },
        );
        sim.stall.delay().await;
        result.map(Response::new)
    }
}

/// The topic a request names, if the org has it.
pub fn find_topic(sim: &Sim, name: &str, rpc_id: &str) -> Result<Topic, Status> {
    Topic::parse(name, &sim.org.read()).ok_or_else(|| {
        failure(
            Code::NotFound,
            TOPIC_NOT_FOUND,
            format!("Topic not found: {name}"),
            rpc_id,
        )
    })
}

/// Whether the topic's events can be subscribed to: every object's
/// channel is, one object's only while the object is selected for CDC.
pub fn can_subscribe(sim: &Sim, topic: &Topic) -> bool {
    match topic {
        Topic::AllChanges => true,
        Topic::Object(object) => sim.pubsub.is_selected(object),
        Topic::Event(_) => true,
    }
}

pub fn not_permitted(topic: &Topic, rpc_id: &str) -> Status {
    let detail = match topic {
        Topic::Object(object) => format!("; select {object} for Change Data Capture"),
        Topic::AllChanges | Topic::Event(_) => String::new(),
    };
    failure(
        Code::PermissionDenied,
        TOPIC_NOT_PERMITTED,
        format!(
            "The topic {} isn't available to subscribe to{detail}.",
            topic.name()
        ),
        rpc_id,
    )
}

#[tonic::async_trait]
impl PubSub for PubSubService {
    type SubscribeStream = ReceiverStream<Result<FetchResponse, Status>>;
    type PublishStreamStream = ReceiverStream<Result<PublishResponse, Status>>;

    async fn subscribe(
        &self,
        request: Request<Streaming<FetchRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let sim = self.sim_for(request.metadata());
        sim.stall.wait_while_hung().await;
        let rpc_id = super::uuid();
        let caller = match authenticate(&sim, request.metadata(), &rpc_id) {
            Ok(caller) => caller,
            Err(status) => {
                subscription::log_end(&sim, None, status.code());
                sim.stall.delay().await;
                return Err(status);
            }
        };
        let (out, responses) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(subscription::run(
            subscription::Call {
                sim: sim.clone(),
                caller,
                rpc_id,
                keepalive: self.keepalive,
                latest: sim.pubsub.tip(),
            },
            request.into_inner(),
            out,
        ));
        sim.stall.delay().await;
        Ok(Response::new(ReceiverStream::new(responses)))
    }

    async fn get_schema(
        &self,
        request: Request<SchemaRequest>,
    ) -> Result<Response<SchemaInfo>, Status> {
        let id = request.get_ref().schema_id.clone();
        self.unary("GetSchema", None, request.metadata(), |sim, rpc_id| {
            let json = sim.pubsub.schema_json(&id).ok_or_else(|| {
                failure(
                    Code::NotFound,
                    SCHEMA_NOT_FOUND,
                    format!("Schema not found: {id}"),
                    rpc_id,
                )
            })?;
            Ok(SchemaInfo {
                schema_json: json.to_string(),
                schema_id: id.clone(),
                rpc_id: rpc_id.to_string(),
            })
        })
        .await
    }

    async fn get_topic(
        &self,
        request: Request<TopicRequest>,
    ) -> Result<Response<TopicInfo>, Status> {
        let name = request.get_ref().topic_name.clone();
        self.unary(
            "GetTopic",
            Some(name.clone()),
            request.metadata(),
            |sim, rpc_id| {
                let topic = find_topic(sim, &name, rpc_id)?;
                let (tenant_guid, schema_id) = {
                    let org = sim.org.read();
                    let schema_id = match &topic {
                        // Events of every selected object travel here, each with its own schema.
                        Topic::AllChanges => String::new(),
                        Topic::Object(object) => {
                            let def = org.def(org.object(object).expect("a parsed topic's object"));
                            sim.pubsub.schema(def).id.to_string()
                        }
                        Topic::Event(event) => {
                            let def = org.event(event).expect("a parsed topic's event");
                            sim.pubsub.event_schema(def).id.to_string()
                        }
                    };
                    (org.org_id.clone(), schema_id)
                };
                Ok(TopicInfo {
                    topic_name: topic.name(),
                    tenant_guid,
                    // Only platform events are published by clients.
                    can_publish: matches!(topic, Topic::Event(_)),
                    can_subscribe: can_subscribe(sim, &topic),
                    schema_id,
                    rpc_id: rpc_id.to_string(),
                })
            },
        )
        .await
    }

    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        let sim = self.sim_for(request.metadata());
        sim.stall.wait_while_hung().await;
        let rpc_id = super::uuid();
        let name = request.get_ref().topic_name.clone();
        let answer = authenticate(&sim, request.metadata(), &rpc_id)
            .and_then(|caller| publish::publish(&sim, &caller, request.into_inner(), &rpc_id));
        publish::log_publish(&sim, name, &answer);
        if answer.is_ok() && sim.pubsub.state().faults.take_unanswered_publish() {
            // Published, and the answer never comes: the call ends when
            // the client gives up or goes away.
            tokio::time::sleep(UNANSWERED).await;
            return Err(Status::unavailable("the answer was lost"));
        }
        sim.stall.delay().await;
        answer.map(Response::new)
    }

    async fn publish_stream(
        &self,
        request: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<Self::PublishStreamStream>, Status> {
        let sim = self.sim_for(request.metadata());
        sim.stall.wait_while_hung().await;
        let rpc_id = super::uuid();
        let caller = match authenticate(&sim, request.metadata(), &rpc_id) {
            Ok(caller) => caller,
            Err(status) => {
                calls::log(
                    &sim,
                    RpcCall {
                        rpc: "PublishStream",
                        topic: None,
                        events: None,
                        grpc_status: Some(code_name(status.code())),
                    },
                );
                sim.stall.delay().await;
                return Err(status);
            }
        };
        let (out, responses) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(publish::stream(
            sim.clone(),
            caller,
            rpc_id,
            request.into_inner(),
            out,
        ));
        sim.stall.delay().await;
        Ok(Response::new(ReceiverStream::new(responses)))
    }
}
