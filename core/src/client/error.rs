//! What can go wrong talking to Salesforce.

use serde::Deserialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum SalesforceError {
    /// An error answer from the API, with Salesforce's errorCode.
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The token endpoint refused the credentials.
    Login { error: String, description: String },
    /// No connection could be made: the request never left.
    ConnectFailed(String),
    /// The connection failed after the request may have been sent.
    Network(String),
    /// No answer came within the request timeout. Not tried again: a
    /// server that hangs would hold the caller for the timeout each time.
    TimedOut(String),
    /// An answer that is not what the API documents.
    BadResponse(String),
    /// The statement was cancelled while waiting (statement_timeout, ^C).
    Cancelled,
    /// The connection settings cannot work.
    Config(String),
}

impl SalesforceError {
    /// Whether a write whose call failed this way may have been applied:
    /// the request may have reached Salesforce and no answer said otherwise.
    pub fn may_have_applied(&self) -> bool {
        match self {
            // Salesforce answered: an error for the whole call applies nothing.
            SalesforceError::Api { .. } => false,
            SalesforceError::ConnectFailed(_)
            | SalesforceError::Login { .. }
            | SalesforceError::Config(_) => false,
            SalesforceError::Network(_)
            | SalesforceError::TimedOut(_)
            | SalesforceError::BadResponse(_)
            | SalesforceError::Cancelled => true,
        }
    }

    /// Worth trying again after a pause.
    pub fn is_retryable(&self) -> bool {
        match self {
            SalesforceError::ConnectFailed(_)
            | SalesforceError::Network(_)
            | SalesforceError::TimedOut(_) => true,
            SalesforceError::Api { status, code, .. } => {
                *status >= 500 || code == "UNABLE_TO_LOCK_ROW"
            }
            _ => false,
        }
    }

    pub fn is_invalid_session(&self) -> bool {
        matches!(self, SalesforceError::Api { code, .. } if code == "INVALID_SESSION_ID")
    }

    pub fn api_code(&self) -> Option<&str> {
        match self {
            SalesforceError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The error with every occurrence of `secret` in its text masked, for
    /// messages that quote what a server or a library said.
    pub fn redacted(self, secret: &str) -> SalesforceError {
        if secret.is_empty() {
            return self;
        }
        let mask = |s: String| s.replace(secret, "********");
        match self {
            SalesforceError::Api {
                status,
                code,
                message,
            } => SalesforceError::Api {
                status,
                code: mask(code),
                message: mask(message),
            },
            SalesforceError::Login { error, description } => SalesforceError::Login {
                error: mask(error),
                description: mask(description),
            },
            SalesforceError::ConnectFailed(m) => SalesforceError::ConnectFailed(mask(m)),
            SalesforceError::Network(m) => SalesforceError::Network(mask(m)),
            SalesforceError::TimedOut(m) => SalesforceError::TimedOut(mask(m)),
            SalesforceError::BadResponse(m) => SalesforceError::BadResponse(mask(m)),
            SalesforceError::Config(m) => SalesforceError::Config(mask(m)),
            SalesforceError::Cancelled => SalesforceError::Cancelled,
        }
    }
}

impl fmt::Display for SalesforceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SalesforceError::Api { code, message, .. } => {
                write!(f, "Salesforce {code}: {}", message.trim())
            }
            SalesforceError::Login { error, description } => {
                write!(f, "Salesforce login failed: {error}: {description}")
            }
            SalesforceError::ConnectFailed(m)
            | SalesforceError::Network(m)
            | SalesforceError::TimedOut(m) => {
                write!(f, "cannot reach Salesforce: {m}")
            }
            SalesforceError::BadResponse(m) => write!(f, "unexpected answer from Salesforce: {m}"),
            SalesforceError::Cancelled => {
                write!(f, "canceling statement while waiting for Salesforce")
            }
            SalesforceError::Config(m) => write!(f, "{m}"),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiErrorBody {
    message: String,
    error_code: String,
}

#[derive(Deserialize)]
struct LoginErrorBody {
    error: String,
    #[serde(default)]
    error_description: String,
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    s
}

/// The error an unsuccessful answer carries: Salesforce's error array, an
/// OAuth error object, or else the status and the start of the body.
pub fn from_response(status: u16, body: &[u8]) -> SalesforceError {
    if let Ok(errors) = serde_json::from_slice::<Vec<ApiErrorBody>>(body) {
        if let Some(first) = errors.into_iter().next() {
            return SalesforceError::Api {
                status,
                code: first.error_code,
                message: first.message,
            };
        }
    }
    if let Ok(e) = serde_json::from_slice::<LoginErrorBody>(body) {
        return SalesforceError::Login {
            error: e.error,
            description: e.error_description,
        };
    }
    let code = match status {
        503 => "SERVER_UNAVAILABLE",
        500..=599 => "SERVER_ERROR",
        414 => "URI_TOO_LONG",
        431 => "REQUEST_HEADER_FIELDS_TOO_LARGE",
        _ => "HTTP_ERROR",
    };
    SalesforceError::Api {
        status,
        code: code.into(),
        message: format!("HTTP {status}: {}", excerpt(body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_error_shape() {
        let api = from_response(
            400,
            br#"[{"message":"No such column","errorCode":"INVALID_FIELD"}]"#,
        );
        assert_eq!(api.api_code(), Some("INVALID_FIELD"));
        assert!(!api.is_retryable());
        let login = from_response(
            400,
            br#"{"error":"invalid_grant","error_description":"authentication failure"}"#,
        );
        assert_eq!(
            login.to_string(),
            "Salesforce login failed: invalid_grant: authentication failure"
        );
        let html = from_response(503, b"<html>down</html>");
        assert!(html.is_retryable());
        assert_eq!(html.api_code(), Some("SERVER_UNAVAILABLE"));
        assert!(from_response(
            401,
            br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#
        )
        .is_invalid_session());
        assert!(from_response(
            400,
            br#"[{"message":"x","errorCode":"UNABLE_TO_LOCK_ROW"}]"#
        )
        .is_retryable());
    }

    #[test]
    fn redaction_masks_a_secret_everywhere() {
        let e = SalesforceError::Api {
            status: 401,
            code: "INVALID_SESSION_ID".into(),
            message: "token 00D!abc is bad, 00D!abc".into(),
        };
        assert_eq!(
            e.clone().redacted("00D!abc").to_string(),
            "Salesforce INVALID_SESSION_ID: token ******** is bad, ********"
        );
        assert_eq!(e.clone().redacted(""), e);
        assert_eq!(
            SalesforceError::Network("x 00D!abc".into()).redacted("00D!abc"),
            SalesforceError::Network("x ********".into())
        );
    }
}
