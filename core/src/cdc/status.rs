//! A Pub/Sub API failure as the errors the REST client gives, so callers
//! renew tokens, retry and report alike whichever API failed.

use crate::client::SalesforceError;
use eventbus::tonic::{Code, Status};

/// Salesforce's error code for a replay id it refuses: malformed, never
/// issued, or older than the retention window.
const REPLAY_ID_CORRUPTED: &str = "replayid.corrupted";

pub fn error(status: &Status) -> SalesforceError {
    let trailer = status
        .metadata()
        .get(eventbus::ERROR_CODE)
        .and_then(|v| v.to_str().ok());
    let message = status.message().to_string();
    let api = |status: u16, code: &str| SalesforceError::Api {
        status,
        code: code.to_string(),
        message: message.clone(),
    };
    match status.code() {
        Code::Unauthenticated => api(401, "INVALID_SESSION_ID"),
        Code::InvalidArgument if trailer.is_some_and(|c| c.ends_with(REPLAY_ID_CORRUPTED)) => {
            api(400, "REPLAY_ID_INVALID")
        }
        // The 24-hour event delivery allocation: as REST's daily limit.
        Code::ResourceExhausted => api(403, "REQUEST_LIMIT_EXCEEDED"),
        Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded | Code::Aborted => {
            SalesforceError::Network(format!("the Pub/Sub API stream failed: {message}"))
        }
        // Salesforce's own failures carry its error code; one without came
        // from the connection.
        Code::Unknown if trailer.is_none() => {
            SalesforceError::Network(format!("the Pub/Sub API stream failed: {message}"))
        }
        code => {
            let http = match code {
                Code::NotFound => 404,
                Code::PermissionDenied => 403,
                Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
                Code::AlreadyExists => 409,
                Code::Unimplemented => 501,
                _ => 500,
            };
            api(http, trailer.unwrap_or(code_name(code)))
        }
    }
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::NotFound => "NOT_FOUND",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::DataLoss => "DATA_LOSS",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventbus::tonic::metadata::{MetadataMap, MetadataValue};

    fn with_code(code: Code, error_code: &'static str) -> Status {
        let mut trailers = MetadataMap::new();
        trailers.insert(eventbus::ERROR_CODE, MetadataValue::from_static(error_code));
        Status::with_metadata(code, "refused rpcId: 1", trailers)
    }

    #[test]
    fn statuses_map_to_rest_errors() {
        let expired = error(&with_code(
            Code::Unauthenticated,
            "sfdc.platform.eventbus.grpc.service.auth.error",
        ));
        assert!(expired.is_invalid_session());
        let replay = error(&with_code(
            Code::InvalidArgument,
            "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted",
        ));
        assert_eq!(replay.api_code(), Some("REPLAY_ID_INVALID"));
        assert!(!replay.is_retryable());
        let unavailable = error(&with_code(
            Code::Unavailable,
            "sfdc.platform.eventbus.grpc.service.unavailable",
        ));
        assert!(matches!(unavailable, SalesforceError::Network(_)));
        assert!(error(&Status::unknown("connection reset")).is_retryable());
        assert_eq!(
            error(&with_code(Code::ResourceExhausted, "x")).api_code(),
            Some("REQUEST_LIMIT_EXCEEDED")
        );
        let denied = error(&with_code(
            Code::PermissionDenied,
            "sfdc.platform.eventbus.grpc.topic.permission.denied",
        ));
        assert_eq!(
            denied,
            SalesforceError::Api {
                status: 403,
                code: "sfdc.platform.eventbus.grpc.topic.permission.denied".into(),
                message: "refused rpcId: 1".into()
            }
        );
        assert_eq!(
            error(&Status::not_found("no")).api_code(),
            Some("NOT_FOUND")
        );
        assert!(error(&Status::internal("boom")).is_retryable());
    }
}
