//! One subrequest run through the data API's router, as a request of its
//! own would be, and what it answered as a `compositeResponse` entry.

use super::references::percent_decode;
use super::Resolved;
use crate::http::data::{route, ApiRequest};
use crate::http::errors::ApiError;
use crate::http::LogInfo;
use crate::org::Undo;
use crate::request_log::LoggedRequest;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use serde_json::{Map, Value as Json};

/// One subrequest's entry in `compositeResponse`.
pub struct Answer {
    pub body: Json,
    pub headers: Map<String, Json>,
    pub status: u16,
}

impl Answer {
    /// PROCESSING_HALTED: the subrequest did not run, or its work was undone.
    pub fn halted(message: &str) -> Answer {
        Answer {
            body: serde_json::json!([{"errorCode": "PROCESSING_HALTED", "message": message}]),
            headers: Map::new(),
            status: StatusCode::BAD_REQUEST.as_u16(),
        }
    }

    /// Whether the subrequest failed. Under allOrNone an sObject Collections
    /// call fails when any of its records does; otherwise a collection
    /// answers 200 whatever its records' fates.
    pub fn failed(&self, all_or_none: bool) -> bool {
        let record_failed = || {
            self.body.as_array().is_some_and(|results| {
                results
                    .iter()
                    .any(|r| r.get("success") == Some(&Json::Bool(false)))
            })
        };
        self.status >= 400 || (all_or_none && record_failed())
    }
}

/// Runs one subrequest through the data API's router as the calling user,
/// uncounted. Answers what it answered, its log entry and its writes.
pub fn execute(parent: &ApiRequest, resolved: &Resolved) -> (Answer, LoggedRequest, Undo) {
    let sub = resolved.sub;
    let (path, query) = match resolved.url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (resolved.url.as_str(), None),
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &sub.headers {
        headers.insert(name.clone(), value.clone());
    }
    let body_bytes = resolved
        .body
        .as_ref()
        .map(|b| Bytes::from(b.to_string()))
        .unwrap_or_default();
    // Decoded, as the router decodes a request's own path.
    let decoded: Vec<String> = path
        .trim_start_matches("/services/data/")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let version = segments
        .first()
        .and_then(|v| v.strip_prefix('v'))
        .filter(|v| crate::sim::Sim::supported_version(v))
        .unwrap_or_default()
        .to_string();
    let method = Method::from_bytes(sub.method.as_bytes()).unwrap_or(Method::GET);
    let mut sub_req = ApiRequest {
        sim: parent.sim,
        version: &version,
        method,
        headers: &headers,
        params: url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect(),
        body: &body_bytes,
        user: parent.user,
        info: LogInfo::default(),
        undo: parent.undo.joining(),
    };
    // A reference may have changed the version part into something unknown.
    let response = if version.is_empty() {
        ApiError::not_found().into_response()
    } else {
        route(&mut sub_req, &segments[1..]).unwrap_or_else(IntoResponse::into_response)
    };
    let answer = answer_of(response);
    let logged = LoggedRequest {
        seq: 0,
        at: crate::value::format_datetime(&parent.sim.clock.now()),
        method: sub.method.clone(),
        path: path.to_string(),
        query: query.map(str::to_string),
        soql: sub_req.info.soql,
        status: answer.status,
        counted: false,
        records: sub_req.info.records,
        body: resolved.body.clone().filter(|_| sub.method != "GET"),
        via: Some("composite"),
        parent_seq: None,
        reference_id: Some(sub.reference_id.clone()),
        rpc: None,
    };
    (answer, logged, sub_req.undo)
}

/// `location` as Salesforce spells it in `httpHeaders`: `Location`.
fn header_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn answer_of(response: Response) -> Answer {
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "content-type" | "content-length"))
        .filter_map(|(name, value)| {
            let value = value.to_str().ok()?;
            Some((header_case(name.as_str()), Json::String(value.to_string())))
        })
        .collect();
    // Every handler answers from memory, so its body is ready at once.
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .now_or_never()
        .and_then(Result::ok)
        .unwrap_or_default();
    let body = if bytes.is_empty() {
        Json::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Answer {
        body,
        headers,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::super::ROLLED_BACK;
    use super::*;

    #[test]
    fn header_names_take_salesforce_case() {
        assert_eq!(header_case("location"), "Location");
        assert_eq!(header_case("last-modified"), "Last-Modified");
    }

    #[test]
    fn collections_fail_by_record_only_under_all_or_none() {
        let answer = Answer {
            body: serde_json::json!([{"id": "a", "success": true}, {"success": false, "errors": []}]),
            headers: Map::new(),
            status: 200,
        };
        assert!(answer.failed(true));
        assert!(!answer.failed(false));
        assert!(Answer::halted(ROLLED_BACK).failed(false));
    }
}
