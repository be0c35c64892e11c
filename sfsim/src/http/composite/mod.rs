//! The Composite resource, `POST /composite`: up to 25 subrequests run in
//! order, each by the handler a request of its own would reach, as one API
//! request and one transaction. Later subrequests can use earlier results
//! through `@{referenceId.path}`; with `allOrNone` a failure takes back every
//! write of the call.

mod execute;
mod references;
mod request;

use super::data::ApiRequest;
use super::errors::{json, ApiError};
use crate::org::Undo;
use axum::http::StatusCode;
use axum::response::Response;
use execute::{execute, Answer};
use references::Results;
use request::{Resource, Subrequest};
use serde_json::Value as Json;

pub use request::writes_records;

/// What every subrequest but the failed one answers under allOrNone.
const ROLLED_BACK: &str =
    "The transaction was rolled back since another operation in the same transaction failed.";

/// `GET /composite`: the composite resources sfsim serves.
pub fn resources(req: &ApiRequest) -> Response {
    json(
        StatusCode::OK,
        &serde_json::json!({"sobjects": format!("/services/data/v{}/composite/sobjects", req.version)}),
    )
}

pub fn run(req: &mut ApiRequest) -> Result<Response, ApiError> {
    let call = request::parse(req.body)?;
    let mut answers: Vec<Answer> = Vec::with_capacity(call.subrequests.len());
    let mut results = Results::new();
    let mut undo = Undo::default();
    let mut failed_at = None;
    for (i, sub) in call.subrequests.iter().enumerate() {
        let answer = if failed_at.is_some() {
            Answer::halted(ROLLED_BACK)
        } else {
            match resolve(sub, &results, call.all_or_none) {
                Err(unresolved) => Answer::halted(&unresolved.message()),
                Ok(resolved) => {
                    let (answer, logged, writes) = execute(req, &resolved);
                    req.info.subrequests.push(logged);
                    undo.append(writes);
                    answer
                }
            }
        };
        let failed = answer.failed(call.all_or_none);
        results.insert(
            sub.reference_id.clone(),
            (!failed).then(|| answer.body.clone()),
        );
        answers.push(answer);
        if failed && call.all_or_none && failed_at.is_none() {
            req.sim.org.write().rollback(std::mem::take(&mut undo));
            failed_at = Some(i);
        }
    }
    if let Some(failed) = failed_at {
        for answer in &mut answers[..failed] {
            *answer = Answer::halted(ROLLED_BACK);
        }
    }
    let entries: Vec<Json> = answers
        .into_iter()
        .zip(&call.subrequests)
        .map(|(a, sub)| {
            serde_json::json!({
                "body": a.body,
                "httpHeaders": a.headers,
                "httpStatusCode": a.status,
                "referenceId": sub.reference_id,
            })
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"compositeResponse": entries}),
    ))
}

/// A subrequest with its references replaced, ready to run.
struct Resolved<'s> {
    sub: &'s Subrequest,
    url: String,
    body: Option<Json>,
}

fn resolve<'s>(
    sub: &'s Subrequest,
    results: &Results,
    all_or_none: bool,
) -> Result<Resolved<'s>, references::Unresolved> {
    let mut url = references::in_url(&sub.url, results)?;
    let mut body = sub
        .body
        .as_ref()
        .map(|b| references::in_json(b, results))
        .transpose()?;
    // A composite allOrNone overrides the allOrNone of its collections.
    if all_or_none && sub.resource() == Some(Resource::Collections) {
        if sub.method == "DELETE" {
            url = force_all_or_none_param(&url);
        } else if let Some(Json::Object(map)) = body.as_mut() {
            map.insert("allOrNone".into(), Json::Bool(true));
        }
    }
    Ok(Resolved { sub, url, body })
}

fn force_all_or_none_param(url: &str) -> String {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let kept = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("allOrNone="));
    let params: Vec<&str> = kept.chain(["allOrNone=true"]).collect();
    format!("{path}?{}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_deletes_are_forced_all_or_none() {
        assert_eq!(
            force_all_or_none_param("/x/composite/sobjects?ids=a,b&allOrNone=false"),
            "/x/composite/sobjects?ids=a,b&allOrNone=true"
        );
        assert_eq!(
            force_all_or_none_param("/x/composite/sobjects"),
            "/x/composite/sobjects?allOrNone=true"
        );
    }
}
