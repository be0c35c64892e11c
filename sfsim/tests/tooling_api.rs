//! The Tooling API's query of `PlatformEventChannelMember`: which objects
//! the org has selected for Change Data Capture, over HTTP.

mod common;

use common::{error_code, Org, V};
use reqwest::blocking::Response;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sfsim::server::Options;
use sfsim::sim::DEFAULT_DAILY_LIMIT;

const MEMBERS: &str =
    "SELECT Id, DeveloperName, EventChannel, SelectedEntity FROM PlatformEventChannelMember WHERE EventChannel = 'ChangeEvents'";

fn tooling_query(org: &Org, token: Option<&str>, soql: &str) -> Response {
    let r = org
        .http
        .get(org.url(&format!("{V}/tooling/query")))
        .query(&[("q", soql)]);
    match token {
        Some(t) => r.bearer_auth(t),
        None => r,
    }
    .send()
    .unwrap()
}

/// A successful Tooling query's answer.
fn members(org: &Org, soql: &str) -> Value {
    let r = tooling_query(org, Some(org.token.as_str()), soql);
    assert_eq!(r.status(), StatusCode::OK, "{soql}");
    r.json().unwrap()
}

fn select(org: &Org, objects: &[&str]) {
    org.control(Method::POST, "cdc", json!({ "objects": objects }));
}

fn entities(answer: &Value) -> Vec<String> {
    answer["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["SelectedEntity"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_cdc_selection_is_listed_exactly() {
    let org = Org::demo();
    assert_eq!(
        members(&org, MEMBERS),
        json!({"size": 0, "totalSize": 0, "done": true, "queryLocator": null, "entityTypeName": null, "records": []}),
        "nothing is selected at first"
    );
    select(&org, &["Account", "invoice__c"]);
    let answer = members(&org, MEMBERS);
    assert_eq!(
        (
            &answer["size"],
            &answer["totalSize"],
            &answer["done"],
            &answer["entityTypeName"]
        ),
        (
            &json!(2),
            &json!(2),
            &json!(true),
            &json!("PlatformEventChannelMember")
        )
    );
    let records = answer["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    for (record, entity) in records
        .iter()
        .zip(["AccountChangeEvent", "Invoice__ChangeEvent"])
    {
        let id = record["Id"].as_str().unwrap();
        assert!(id.len() == 18 && id.starts_with("0v8"), "{id}");
        assert_eq!(
            record,
            &json!({
                "attributes": {
                    "type": "PlatformEventChannelMember",
                    "url": format!("{V}/tooling/sobjects/PlatformEventChannelMember/{id}"),
                },
                "Id": id,
                "DeveloperName": format!("ChangeEvents_{entity}"),
                "EventChannel": "ChangeEvents",
                "SelectedEntity": entity,
            })
        );
        let keys: Vec<&String> = record.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "attributes",
                "Id",
                "DeveloperName",
                "EventChannel",
                "SelectedEntity"
            ]
        );
    }
    let unfiltered = members(
        &org,
        "SELECT Id, DeveloperName, EventChannel, SelectedEntity FROM PlatformEventChannelMember",
    );
    assert_eq!(unfiltered, answer, "the WHERE keeps every member");
    let subset = members(
        &org,
        "select selectedentity, id from PlatformEventChannelMember where eventchannel = 'ChangeEvents'",
    );
    let keys: Vec<&String> = subset["records"][1].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["attributes", "SelectedEntity", "Id"]);
    assert_eq!(
        entities(&subset),
        ["AccountChangeEvent", "Invoice__ChangeEvent"]
    );
    let one = members(
        &org,
        "SELECT FullName FROM PlatformEventChannelMember WHERE SelectedEntity = 'Invoice__ChangeEvent'",
    );
    assert_eq!(
        one["records"][0]["FullName"],
        "ChangeEvents_Invoice__ChangeEvent"
    );
}

#[test]
fn a_deselected_object_disappears() {
    let org = Org::demo();
    select(&org, &["Account", "Invoice__c"]);
    let before = members(&org, MEMBERS);
    select(&org, &["Invoice__c"]);
    let after = members(&org, MEMBERS);
    assert_eq!(entities(&after), ["Invoice__ChangeEvent"]);
    assert_eq!(
        after["records"][0], before["records"][1],
        "the member still selected is unchanged"
    );
    select(&org, &[]);
    assert_eq!(members(&org, MEMBERS)["totalSize"], 0);
    select(&org, &["Account"]);
    assert_eq!(
        members(&org, MEMBERS)["records"][0]["Id"],
        before["records"][0]["Id"],
        "an object's member keeps its Id"
    );
}

#[test]
fn another_channel_has_no_members() {
    let org = Org::demo();
    select(&org, &["Account", "Contact", "Invoice__c"]);
    let other = members(
        &org,
        "SELECT Id, DeveloperName, EventChannel, SelectedEntity FROM PlatformEventChannelMember WHERE EventChannel = 'Order_Channel__chn'",
    );
    assert_eq!(
        (&other["totalSize"], &other["records"]),
        (&json!(0), &json!([]))
    );
    let one = members(
        &org,
        "SELECT Id FROM PlatformEventChannelMember WHERE EventChannel = 'ChangeEvents' AND SelectedEntity = 'ContactChangeEvent'",
    );
    assert_eq!(one["totalSize"], 1);
}

#[test]
fn a_token_is_needed() {
    let org = Org::demo();
    select(&org, &["Account"]);
    let r = tooling_query(&org, None, MEMBERS);
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Token");
    assert_eq!(error_code(&r.json().unwrap()), "INVALID_SESSION_ID");
    let r = tooling_query(&org, Some("00D5g000004SIMx!nope"), MEMBERS);
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&r.json().unwrap()), "INVALID_SESSION_ID");
}

#[test]
fn the_query_is_logged_and_counted_as_a_rest_query() {
    let org = Org::demo();
    select(&org, &["Account", "Invoice__c"]);
    org.clear_log();
    let used = org.api_requests_used();
    let r = tooling_query(&org, Some(org.token.as_str()), MEMBERS);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["sforce-limit-info"],
        format!("api-usage={}/{DEFAULT_DAILY_LIMIT}", used + 1).as_str()
    );
    assert_eq!(org.api_requests_used(), used + 1);
    let log = org.requests();
    let last = log.last().unwrap();
    assert_eq!(
        (
            &last["method"],
            &last["path"],
            &last["soql"],
            &last["status"],
            &last["counted"],
            &last["records"]
        ),
        (
            &json!("GET"),
            &json!(format!("{V}/tooling/query")),
            &json!(MEMBERS),
            &json!(200),
            &json!(true),
            &json!(2)
        )
    );
}

#[test]
fn the_daily_limit_and_faults_apply() {
    let org = Org::start(Options {
        daily_limit: 1,
        ..Options::demo()
    });
    org.control(Method::PATCH, "faults", json!({"server_unavailable": 1.0}));
    let r = tooling_query(&org, Some(org.token.as_str()), MEMBERS);
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&r.json().unwrap()), "SERVER_UNAVAILABLE");
    assert_eq!(
        org.api_requests_used(),
        0,
        "a refused request is not counted"
    );
    org.control(Method::PATCH, "faults", json!({}));
    assert_eq!(
        tooling_query(&org, Some(org.token.as_str()), MEMBERS).status(),
        StatusCode::OK
    );
    let r = tooling_query(&org, Some(org.token.as_str()), MEMBERS);
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(&r.json().unwrap()), "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(org.requests().last().unwrap()["counted"], false);
}

#[test]
fn other_objects_and_bad_statements_are_refused() {
    let org = Org::demo();
    let refused = |soql: &str| {
        let r = tooling_query(&org, Some(org.token.as_str()), soql);
        let status = r.status();
        let body: Value = r.json().unwrap();
        (status, error_code(&body).to_string(), body)
    };
    let (status, code, body) = refused("SELECT Id FROM ApexClass");
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_TYPE")
    );
    assert!(body[0]["message"]
        .as_str()
        .unwrap()
        .contains("sObject type 'ApexClass' is not supported."));
    for (soql, expected) in [
        ("SELECT Id PlatformEventChannelMember", "MALFORMED_QUERY"),
        (
            "SELECT Nope FROM PlatformEventChannelMember",
            "INVALID_FIELD",
        ),
    ] {
        let (status, code, _) = refused(soql);
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, expected),
            "{soql}"
        );
    }
    select(&org, &["Account", "Contact"]);
    let (status, code, _) = refused("SELECT FullName FROM PlatformEventChannelMember");
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "MALFORMED_QUERY"),
        "FullName needs a single row"
    );
    let r = org.get(&format!("{V}/tooling/query"));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&r.json().unwrap()), "MALFORMED_QUERY");
    let r = org.send(Method::POST, &format!("{V}/tooling/query"), json!({}));
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = org
        .http
        .get(org.url("/services/data/v46.0/tooling/query"))
        .query(&[("q", MEMBERS)])
        .bearer_auth(&org.token)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&r.json().unwrap()), "INVALID_TYPE");
}
