//! A composite call's body, read and checked before any subrequest runs:
//! Salesforce refuses the whole call when it is malformed or over its limits.

use crate::http::errors::ApiError;
use crate::sim::Sim;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashSet};

pub const MAX_SUBREQUESTS: usize = 25;
/// Of which at most this many are queries (query, queryAll, a
/// `nextRecordsUrl` page) or sObject Collections calls.
pub const MAX_QUERIES_AND_COLLECTIONS: usize = 5;
/// Subrequests inherit these from the composite call and may not set them.
const INHERITED_HEADERS: [&str; 3] = ["accept", "authorization", "content-type"];
const METHODS: [&str; 5] = ["GET", "POST", "PATCH", "PUT", "DELETE"];
const DATA_PREFIX: &str = "/services/data/";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    #[serde(default)]
    all_or_none: bool,
    /// Read only to check its type: sfsim always runs subrequests in order,
    /// one of the orders collation allows.
    #[serde(default, rename = "collateSubrequests")]
    _collate_subrequests: Option<bool>,
    composite_request: Vec<SubrequestBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubrequestBody {
    method: String,
    url: String,
    reference_id: Option<String>,
    #[serde(default)]
    body: Option<Json>,
    #[serde(default)]
    http_headers: BTreeMap<String, String>,
}

pub struct CompositeRequest {
    pub all_or_none: bool,
    pub subrequests: Vec<Subrequest>,
}

pub struct Subrequest {
    pub method: String,
    /// As sent: `/services/data/vNN.N/...`, perhaps holding `@{...}` references.
    pub url: String,
    pub reference_id: String,
    pub body: Option<Json>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// The resources a subrequest may reach, by the path after the version.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Resource {
    SObjects,
    /// query, queryAll, or a `nextRecordsUrl` page.
    Query,
    Collections,
}

impl Resource {
    pub fn of(path_after_version: &str) -> Option<Resource> {
        let mut segments = path_after_version.split('/').filter(|s| !s.is_empty());
        match (segments.next(), segments.next()) {
            (Some("sobjects"), _) => Some(Resource::SObjects),
            (Some("query" | "queryAll"), _) => Some(Resource::Query),
            (Some("composite"), Some("sobjects")) => Some(Resource::Collections),
            _ => None,
        }
    }
}

impl Subrequest {
    /// The path after `/services/data/vNN.N/`, without the query string.
    pub fn path_after_version(url: &str) -> Option<&str> {
        let path = url.split(['?', '#']).next().unwrap_or_default();
        let rest = path.strip_prefix(DATA_PREFIX)?;
        let (version, after) = rest.split_once('/')?;
        let version = version.strip_prefix('v')?;
        Sim::supported_version(version).then_some(after)
    }

    pub fn resource(&self) -> Option<Resource> {
        Subrequest::path_after_version(&self.url).and_then(Resource::of)
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "INVALID_INPUT", message)
}

fn limit_exceeded(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "LIMIT_EXCEEDED", message)
}

fn valid_reference_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn headers(
    reference_id: &str,
    given: BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, ApiError> {
    given
        .into_iter()
        .map(|(name, value)| {
            if INHERITED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(invalid(format!(
                    "Subrequest {reference_id} sets the {name} header, which subrequests inherit from the composite request"
                )));
            }
            match (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value)) {
                (Ok(n), Ok(v)) => Ok((n, v)),
                _ => Err(invalid(format!(
                    "Subrequest {reference_id} has an invalid header: {name}"
                ))),
            }
        })
        .collect()
}

fn subrequest(spec: SubrequestBody, seen: &mut HashSet<String>) -> Result<Subrequest, ApiError> {
    let reference_id = spec
        .reference_id
        .ok_or_else(|| invalid("Each subrequest needs a referenceId"))?;
    if !valid_reference_id(&reference_id) {
        return Err(invalid(format!(
            "Invalid referenceId '{reference_id}': a referenceId contains only letters, numbers and underscores ('_')"
        )));
    }
    if !seen.insert(reference_id.clone()) {
        return Err(invalid(format!(
            "Duplicate ReferenceId provided in the request: {reference_id}"
        )));
    }
    if !METHODS.contains(&spec.method.as_str()) {
        return Err(invalid(format!(
            "Subrequest {reference_id}: invalid method '{}'. It is one of GET, POST, PATCH, PUT and DELETE",
            spec.method
        )));
    }
    let sub = Subrequest {
        method: spec.method,
        headers: headers(&reference_id, spec.http_headers)?,
        url: spec.url,
        body: spec.body,
        reference_id,
    };
    if sub.resource().is_none() {
        return Err(invalid(format!(
            "Subrequest {}: composite does not support the resource {}",
            sub.reference_id, sub.url
        )));
    }
    Ok(sub)
}

/// The call's subrequests, or the answer refusing the whole call.
pub fn parse(bytes: &[u8]) -> Result<CompositeRequest, ApiError> {
    let body: Body = serde_json::from_slice(bytes).map_err(ApiError::bad_json)?;
    if body.composite_request.len() > MAX_SUBREQUESTS {
        return Err(limit_exceeded(format!(
            "The request can’t contain more than {MAX_SUBREQUESTS} operations."
        )));
    }
    let mut seen = HashSet::new();
    let subrequests = body
        .composite_request
        .into_iter()
        .map(|spec| subrequest(spec, &mut seen))
        .collect::<Result<Vec<_>, _>>()?;
    let heavy = subrequests
        .iter()
        .filter(|s| matches!(s.resource(), Some(Resource::Query | Resource::Collections)))
        .count();
    if heavy > MAX_QUERIES_AND_COLLECTIONS {
        return Err(limit_exceeded(format!(
            "The request can’t contain more than {MAX_QUERIES_AND_COLLECTIONS} query or sObject Collections operations."
        )));
    }
    Ok(CompositeRequest {
        all_or_none: body.all_or_none,
        subrequests,
    })
}

/// Whether any subrequest would write; a body that does not parse writes nothing.
pub fn writes_records(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Body>(bytes)
        .is_ok_and(|b| b.composite_request.iter().any(|s| s.method != "GET"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: Json) -> (&'static str, String) {
        match parse(body.to_string().as_bytes()) {
            Err(e) => (e.code, e.message),
            Ok(_) => panic!("accepted {body}"),
        }
    }

    fn get(reference_id: &str, url: &str) -> Json {
        serde_json::json!({"method": "GET", "url": url, "referenceId": reference_id})
    }

    #[test]
    fn resources_are_classified_by_path() {
        let of = |url: &str| Subrequest::path_after_version(url).and_then(Resource::of);
        assert_eq!(
            of("/services/data/v62.0/query?q=SELECT+Id+FROM+Lead"),
            Some(Resource::Query)
        );
        assert_eq!(
            of("/services/data/v62.0/query/01gX-2000"),
            Some(Resource::Query)
        );
        assert_eq!(
            of("/services/data/v62.0/queryAll/?q=x"),
            Some(Resource::Query)
        );
        assert_eq!(
            of("/services/data/v62.0/sobjects/Lead/deleted/?start=a&end=b"),
            Some(Resource::SObjects)
        );
        assert_eq!(
            of("/services/data/v62.0/composite/sobjects?ids=a"),
            Some(Resource::Collections)
        );
        assert_eq!(of("/services/data/v62.0/limits"), None);
        assert_eq!(of("/services/data/v62.0/composite"), None);
        assert_eq!(of("/services/data/v99.0/query?q=x"), None);
        assert_eq!(of("/services/data/query?q=x"), None);
    }

    #[test]
    fn malformed_calls_are_refused_whole() {
        assert_eq!(
            parse(b"{not json").err().map(|e| e.code),
            Some("JSON_PARSER_ERROR")
        );
        assert_eq!(refused(serde_json::json!({})).0, "JSON_PARSER_ERROR");
        let q = "/services/data/v62.0/query?q=SELECT+Id+FROM+Lead";
        let missing = serde_json::json!({"compositeRequest": [{"method": "GET", "url": q}]});
        assert_eq!(refused(missing).0, "INVALID_INPUT");
        let bad = serde_json::json!({"compositeRequest": [get("a-b", q)]});
        assert_eq!(refused(bad).0, "INVALID_INPUT");
        let twice = serde_json::json!({"compositeRequest": [get("a", q), get("a", q)]});
        assert!(refused(twice).1.contains("Duplicate ReferenceId"));
        let lower = serde_json::json!({"compositeRequest": [{"method": "get", "url": q, "referenceId": "a"}]});
        assert_eq!(refused(lower).0, "INVALID_INPUT");
        let header = serde_json::json!({"compositeRequest": [{"method": "GET", "url": q, "referenceId": "a", "httpHeaders": {"Authorization": "Bearer x"}}]});
        assert_eq!(refused(header).0, "INVALID_INPUT");
        let limits =
            serde_json::json!({"compositeRequest": [get("a", "/services/data/v62.0/limits")]});
        assert_eq!(refused(limits).0, "INVALID_INPUT");
    }

    #[test]
    fn limits_count_subrequests_and_queries() {
        let describe = "/services/data/v62.0/sobjects/Lead/describe";
        let q = "/services/data/v62.0/query?q=SELECT+Id+FROM+Lead";
        let many: Vec<Json> = (0..26).map(|i| get(&format!("d{i}"), describe)).collect();
        assert_eq!(
            refused(serde_json::json!({"compositeRequest": many})),
            (
                "LIMIT_EXCEEDED",
                "The request can’t contain more than 25 operations.".to_string()
            )
        );
        let mut mixed: Vec<Json> = (0..20).map(|i| get(&format!("d{i}"), describe)).collect();
        mixed.extend((0..5).map(|i| get(&format!("q{i}"), q)));
        assert!(parse(
            serde_json::json!({"compositeRequest": mixed.clone()})
                .to_string()
                .as_bytes()
        )
        .is_ok());
        mixed[0] = get(
            "more",
            "/services/data/v62.0/composite/sobjects/Lead?ids=x&fields=Id",
        );
        assert_eq!(
            refused(serde_json::json!({"compositeRequest": mixed})).0,
            "LIMIT_EXCEEDED"
        );
    }

    #[test]
    fn only_calls_with_a_write_write() {
        let q = "/services/data/v62.0/query?q=x";
        let reads = serde_json::json!({"compositeRequest": [get("a", q)]});
        assert!(!writes_records(reads.to_string().as_bytes()));
        let write = serde_json::json!({"compositeRequest": [get("a", q), {"method": "POST", "url": "/services/data/v62.0/sobjects/Lead", "referenceId": "b", "body": {}}]});
        assert!(writes_records(write.to_string().as_bytes()));
        assert!(!writes_records(b"nope"));
    }
}
