//! Error responses in Salesforce's shape: a JSON array of
//! `{"message", "errorCode", "fields"}`.

use crate::org::RecordError;
use crate::soql::SoqlError;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    message: &'a str,
    error_code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: &'a Option<Vec<String>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: None,
        }
    }

    pub fn not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    }

    pub fn invalid_session() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )
    }

    pub fn limit_exceeded() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        )
    }

    pub fn method_not_allowed(method: &str, allowed: &str) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("HTTP Method '{method}' not allowed. Allowed are {allowed}"),
        )
    }

    pub fn bad_json(detail: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            detail.to_string(),
        )
    }
}

impl From<SoqlError> for ApiError {
    fn from(e: SoqlError) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, e.code, e.message)
    }
}

impl From<RecordError> for ApiError {
    fn from(e: RecordError) -> ApiError {
        let status = if e.is_not_found() {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError {
            status,
            code: e.code,
            message: e.message,
            fields: Some(e.fields),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = [Body {
            message: &self.message,
            error_code: self.code,
            fields: &self.fields,
        }];
        json(self.status, &body)
    }
}

pub fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
            bytes,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
