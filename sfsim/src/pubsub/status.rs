//! The Pub/Sub API's failures: a gRPC status whose message ends with the
//! call's RPC id, as Salesforce's do, and Salesforce's own error code in
//! the `error-code` trailer.

use eventbus::tonic::metadata::{MetadataMap, MetadataValue};
use eventbus::tonic::{Code, Status};

pub const AUTH_ERROR: &str = "sfdc.platform.eventbus.grpc.service.auth.error";
pub const REPLAY_ID_CORRUPTED: &str =
    "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted";
pub const LIMIT_EXCEEDED: &str = "sfdc.platform.eventbus.grpc.subscription.limit.exceeded";
pub const SERVICE_UNAVAILABLE: &str = "sfdc.platform.eventbus.grpc.service.unavailable";
// sfsim's choices, in Salesforce's style; the documentation lists none for these.
pub const TOPIC_NOT_FOUND: &str = "sfdc.platform.eventbus.grpc.topic.notfound";
pub const TOPIC_NOT_PERMITTED: &str = "sfdc.platform.eventbus.grpc.topic.permission.denied";
pub const TOPIC_MISMATCH: &str = "sfdc.platform.eventbus.grpc.subscription.topic.mismatch";
pub const PUBLISH_REQUEST_TOO_LARGE: &str = "sfdc.platform.eventbus.grpc.publish.request.too.large";
pub const SCHEMA_NOT_FOUND: &str = "sfdc.platform.eventbus.grpc.schema.notfound";

pub fn failure(
    code: Code,
    error_code: &'static str,
    message: impl std::fmt::Display,
    rpc_id: &str,
) -> Status {
    let mut trailers = MetadataMap::new();
    trailers.insert(eventbus::ERROR_CODE, MetadataValue::from_static(error_code));
    Status::with_metadata(code, format!("{message} rpcId: {rpc_id}"), trailers)
}

/// The canonical name of a gRPC status code, as the request log shows it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
