//! Salesforce's Pub/Sub API, the gRPC service behind Change Data Capture and
//! platform events: the messages of package `eventbus.v1` and tonic's client
//! (`pub_sub_client::PubSubClient`) and server (`pub_sub_server`) for it.
//!
//! The protocol is `proto/pubsub_api.proto`, written from Salesforce's
//! published message definitions; field numbers follow them, so the client
//! speaks to Salesforce's `api.pubsub.salesforce.com:7443` and the server
//! answers Salesforce's own clients. Calls carry the metadata
//! [`ACCESS_TOKEN`], [`INSTANCE_URL`] and [`TENANT_ID`]; errors carry
//! Salesforce's own code in the trailer [`ERROR_CODE`].

pub use prost;
pub use tonic;

/// Metadata keys every call carries.
pub const ACCESS_TOKEN: &str = "accesstoken";
pub const INSTANCE_URL: &str = "instanceurl";
pub const TENANT_ID: &str = "tenantid";
/// Trailer holding Salesforce's error code, e.g.
/// `sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted`.
pub const ERROR_CODE: &str = "error-code";

/// Most events a Subscribe call may have requested and not yet received.
pub const MAX_REQUESTED: i32 = 100;

tonic::include_proto!("eventbus.v1");
